import math
from types import SimpleNamespace

import pytest
import torch

from rewards import RewardSuite
from rlreason.advantages import group_advantages, normalised_per_group


def test_leave_one_out_baseline_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    adv = group_advantages(rewards, group_size=4, scale="none", baseline="leave_one_out")
    # r_i - mean of the other three: 1 - 1/3, 0 - 2/3, 0 - 2/3, 1 - 1/3
    assert torch.allclose(adv, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    # RLOO = G / (G - 1) times the mean-baseline advantage
    assert torch.allclose(adv, group_advantages(rewards, 4, "none") * 4 / 3)


def test_batch_scale_divides_by_the_batch_std():
    rewards = torch.tensor([0.0, 2.0, 1.0, 1.0])
    adv = group_advantages(rewards, group_size=2, scale="batch", eps=0.0)
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, 0.0, 0.0]) / rewards.std())


def test_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match="leave_one_out"):
        group_advantages(torch.zeros(4), 2, baseline="median")


def weighted(per_function: dict, weights: dict) -> list[float]:
    specs = [SimpleNamespace(name=name, weight=w, args={}) for name, w in weights.items()]
    return RewardSuite(specs).total(per_function)


def test_normalise_each_reward_gives_every_function_the_same_scale():
    # format on a 0/1 scale, math_accuracy on a 0/1000 scale; two groups of two
    per_function = {"format": [1.0, 0.0, 0.0, 1.0], "math_accuracy": [0.0, 1000.0, 0.0, 0.0]}
    weights = {"format": 1.0, "math_accuracy": 1.0}
    total = weighted(normalised_per_group(per_function, group_size=2, eps=0.0), weights)
    z = 1 / math.sqrt(2)  # (x - mean) / sample std of two distinct values
    # group 1: f0 -> (+z, -z), f1 -> (-z, +z): they cancel; group 2: f0 -> (-z, +z), f1 ties -> 0
    assert total == pytest.approx([0.0, 0.0, -z, z], abs=1e-9)
    plain = weighted(per_function, weights)
    assert plain[1] - plain[0] == 999  # without it the large-scale reward decides alone


def test_normalise_each_ignores_missing_scores_in_the_group_statistics():
    normalised = normalised_per_group({"math_accuracy": [1.0, 3.0, None]}, group_size=3, eps=0.0)
    s = math.sqrt(2)  # mean 2, sample std sqrt(2) over the two present scores
    assert normalised["math_accuracy"][:2] == pytest.approx([-1 / s, 1 / s])
    assert normalised["math_accuracy"][2] is None  # and counts as 0 in the weighted sum
    assert weighted(normalised, {"math_accuracy": 1.0}) == pytest.approx([-1 / s, 1 / s, 0.0])
