import math

import pytest
import torch

from rlreason.advantages import group_advantages, total_rewards


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


def test_total_rewards_treats_missing_scores_as_zero():
    per_function = torch.tensor([[1.0, float("nan")], [0.0, 2.0]])
    assert torch.equal(total_rewards(per_function, torch.tensor([1.0, 0.5]), 2), torch.tensor([1.0, 1.0]))


def test_normalise_each_reward_gives_every_function_the_same_scale():
    # function 0 on a 0/1 scale, function 1 on a 0/1000 scale; two groups of two
    per_function = torch.tensor([[1.0, 0.0], [0.0, 1000.0], [0.0, 0.0], [1.0, 0.0]])
    total = total_rewards(per_function, torch.tensor([1.0, 1.0]), group_size=2, normalise_each=True, eps=0.0)
    z = 1 / math.sqrt(2)  # (x - mean) / sample std of two distinct values
    # group 1: f0 -> (+z, -z), f1 -> (-z, +z): they cancel; group 2: f0 -> (-z, +z), f1 ties -> 0
    assert torch.allclose(total, torch.tensor([0.0, 0.0, -z, z]), atol=1e-6)
    plain = total_rewards(per_function, torch.tensor([1.0, 1.0]), group_size=2)
    assert plain[1] - plain[0] == 999  # without it the large-scale reward decides alone


def test_normalise_each_ignores_missing_scores_in_the_group_statistics():
    per_function = torch.tensor([[1.0], [3.0], [float("nan")]])
    total = total_rewards(per_function, torch.tensor([1.0]), group_size=3, normalise_each=True, eps=0.0)
    s = math.sqrt(2)  # mean 2, sample std sqrt(2) over the two present scores
    assert torch.allclose(total, torch.tensor([-1 / s, 1 / s, 0.0]))
