import math

import pytest
import torch

from rlreason.advantages import group_advantages
from rlreason.logprobs import token_logprobs
from rlreason.losses import BatchTotals, LossConfig, policy_loss


def test_equal_rewards_in_a_group_give_zero_advantage():
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    for scale in ("group", "batch", "none"):
        adv = group_advantages(rewards, group_size=3, scale=scale)
        assert torch.equal(adv[:3], torch.zeros(3))
        assert adv[3:].abs().sum() > 0


def test_group_advantages_by_hand():
    rewards = torch.tensor([0.0, 1.0, 2.0, 5.0, 5.0, 5.0])
    # group 1: mean 1, sample std 1 -> (-1, 0, 1) / (1 + eps); group 2 ties: 0 / (0 + eps)
    adv = group_advantages(rewards, group_size=3, scale="group", eps=1e-4)
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]) / (1 + 1e-4))
    # Dr. GRPO: centred only
    assert torch.allclose(group_advantages(rewards, 3, "none"), torch.tensor([-1.0, 0, 1, 0, 0, 0]))


def test_token_logprobs_equals_log_softmax_gather():
    logits = torch.randn(5, 7, 11)
    ids = torch.randint(0, 11, (5, 7))
    expected = torch.log_softmax(logits / 0.7, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, ids, temperature=0.7, chunk=2), expected, atol=1e-6)


def hand_loss_case():
    # two sequences: lengths 2 and 1 (third position is padding)
    logprobs = torch.tensor([[math.log(0.5), math.log(0.3), 0.0], [math.log(0.9), 0.0, 0.0]])
    old = torch.tensor([[math.log(0.25), math.log(0.3), 0.0], [math.log(0.6), 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    return logprobs, old, mask, adv


@pytest.mark.parametrize("loss_type, expected", [
    # seq 1 tokens: ratio 2 -> clipped at 1.2 (A>0): -1.2 ; ratio 1: -1   -> mean -1.1
    # seq 2 token: ratio 1.5, A=-2: min(1.5*-2, 1.2*-2) = -3 -> loss +3    -> mean 3
    ("grpo", ((-1.2 - 1.0) / 2 + 3.0) / 2),
    ("bnpo", (-1.2 - 1.0 + 3.0) / 3),
    ("dr_grpo", (-1.2 - 1.0 + 3.0) / (2 * 4)),
])
def test_clipped_loss_by_hand(loss_type, expected):
    logprobs, old, mask, adv = hand_loss_case()
    cfg = LossConfig(loss_type=loss_type, epsilon=0.2, max_completion_length=4)
    loss, stats = policy_loss(logprobs, old, adv, mask, cfg, BatchTotals(2, 3))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["clipped_high"].item() == 1  # seq 1 token 1: ratio 2 > 1.2 with A > 0
    assert stats["clipped_low"].item() == 0


def test_clip_higher_widens_only_the_upper_side():
    logprobs, old, mask, adv = hand_loss_case()
    cfg = LossConfig(loss_type="bnpo", epsilon=0.2, epsilon_high=1.5)
    loss, stats = policy_loss(logprobs, old, adv, mask, cfg, BatchTotals(2, 3))
    # ratio 2 is now inside (0.8, 2.5): unclipped -2 ; ratio 1.5 with A<0 uses max -> -3 -> +3
    assert loss.item() == pytest.approx((-2.0 - 1.0 + 3.0) / 3)
    assert stats["clipped_high"].item() == 0


def test_k3_kl_term_by_hand():
    logprobs = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    cfg = LossConfig(loss_type="grpo", beta=0.1)
    loss, stats = policy_loss(logprobs, logprobs, torch.tensor([0.0]), torch.ones(1, 1), cfg,
                              BatchTotals(1, 1), ref_logprobs=ref)
    kl = 0.5 - math.log(0.5) - 1  # exp(ref - logp) - (ref - logp) - 1 with ref - logp = log 0.5
    assert stats["kl"].item() == pytest.approx(kl)
    assert loss.item() == pytest.approx(0.1 * kl)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo"])
def test_micro_batches_sum_to_the_full_batch_loss(loss_type):
    torch.manual_seed(1)
    logprobs = torch.randn(6, 5, dtype=torch.float64) * 0.1 - 1
    old = torch.randn(6, 5, dtype=torch.float64) * 0.1 - 1
    mask = (torch.rand(6, 5) > 0.3).double()
    mask[:, 0] = 1
    adv = torch.randn(6, dtype=torch.float64)
    cfg = LossConfig(loss_type=loss_type, max_completion_length=5)
    totals = BatchTotals(6, int(mask.sum()))
    full, _ = policy_loss(logprobs, old, adv, mask, cfg, totals)
    parts = sum(policy_loss(logprobs[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], cfg, totals)[0]
                for i in range(0, 6, 2))
    assert parts.item() == pytest.approx(full.item(), rel=1e-12)


def test_gradient_raises_logprob_of_positive_advantage():
    logprobs = torch.tensor([[-1.0], [-1.0]], requires_grad=True)
    loss, _ = policy_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 1),
                          LossConfig(), BatchTotals(2, 2))
    loss.backward()
    # gradient descent moves against the gradient: up for A > 0, down for A < 0
    assert logprobs.grad[0, 0] < 0 < logprobs.grad[1, 0]
