import math
from types import SimpleNamespace

import pytest
import torch

from rewards import RewardSuite
from rlreason.advantages import group_advantages, normalised_per_group, scored_totals


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


NAN = float("nan")


@pytest.mark.parametrize("scale", ["group", "none"])
@pytest.mark.parametrize("baseline", ["mean", "leave_one_out"])
def test_an_unscored_completion_is_out_of_its_group(scale, baseline):
    """A group [1, ?, 0, 1] gives the scored three the advantages of the group [1, 0, 1] and the
    unscored one 0: it is not a 0 that pulls the mean down."""
    with_gap = group_advantages(torch.tensor([1.0, NAN, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]), 4, scale, baseline)
    alone = group_advantages(torch.tensor([1.0, 0.0, 1.0]), 3, scale, baseline)
    assert torch.allclose(with_gap[[0, 2, 3]], alone) and with_gap[1] == 0
    assert torch.allclose(with_gap[4:], group_advantages(torch.tensor([0.0, 1.0, 1.0, 0.0]), 4, scale, baseline))
    assert not with_gap.isnan().any()


def test_a_group_with_fewer_than_two_scored_completions_has_no_advantage():
    adv = group_advantages(torch.tensor([NAN, 1.0, NAN, NAN, NAN, NAN]), 3, "group")
    assert torch.equal(adv, torch.zeros(6))


def test_the_batch_scale_counts_scored_completions_only():
    rewards = torch.tensor([0.0, 2.0, NAN, 1.0, 1.0, NAN])
    adv = group_advantages(rewards, group_size=3, scale="batch", eps=0.0)
    scored = torch.tensor([0.0, 2.0, 1.0, 1.0])
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, 0.0, 0.0, 0.0, 0.0]) / scored.std())


def test_without_gaps_advantages_are_grpos():
    rewards = torch.rand(32)
    grouped = rewards.view(-1, 8)
    textbook = (grouped - grouped.mean(dim=1, keepdim=True)) / (grouped.std(dim=1, keepdim=True) + 1e-4)
    assert torch.allclose(group_advantages(rewards, 8), textbook.reshape(-1), atol=1e-6)


def test_a_missing_score_beside_scores_leaves_the_completion_unscored():
    per_function = {
        # applies to the first prompt only (a mixed dataset): no gap
        "math_accuracy": [1.0, 0.0, None, None],
        # failed on one completion of the second group, scored the other
        "format": [1.0, 1.0, None, 0.5],
        # logged only (weight 0): its gap changes nothing
        "length": [None, 1.0, 1.0, 1.0],
    }
    total = weighted(per_function, {"math_accuracy": 1.0, "format": 0.5, "length": 0.0})
    trained, left_out = scored_totals(per_function, total, 2, ["math_accuracy", "format"])
    assert trained[:2].tolist() == [1.5, 0.5] and trained[2].isnan() and trained[3] == 0.25
    assert left_out == {"format": 1}
    assert group_advantages(trained, 2)[2:].tolist() == [0.0, 0.0]
