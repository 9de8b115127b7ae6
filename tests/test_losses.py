import math

import pytest
import torch

from rlreason.advantages import group_advantages
from rlreason.logprobs import token_logprobs, token_logprobs_and_entropy
from rlreason.losses import (VARIANTS, BatchTotals, LossConfig, entropy_bonus, mismatch_kl, policy_loss,
                             rollout_correction, off_policy_sequences, high_entropy_tokens)
from rlreason.sequences import right_padded, sequence_logprobs


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


@pytest.mark.parametrize("loss_type", [name for name in VARIANTS if name not in ("clip_cov", "kl_cov")])
def test_micro_batches_sum_to_the_full_batch_loss(loss_type):
    """Every loss but Clip-Cov and KL-Cov, whose covariance is taken per micro-batch (as verl takes it)."""
    torch.manual_seed(1)
    logprobs = torch.randn(6, 5, dtype=torch.float64) * 0.1 - 1
    old = torch.randn(6, 5, dtype=torch.float64) * 0.1 - 1
    mask = (torch.rand(6, 5) > 0.3).double()
    mask[:, 0] = 1
    adv = torch.randn(6, dtype=torch.float64)
    cfg = LossConfig(loss_type=loss_type, beta=0.1, max_completion_length=5)
    totals = BatchTotals(6, int(mask.sum()))
    ref = old - 0.05
    full, _ = policy_loss(logprobs, old, adv, mask, cfg, totals, ref)
    parts = sum(policy_loss(logprobs[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], cfg, totals,
                            ref[i:i + 2])[0]
                for i in range(0, 6, 2))
    assert parts.item() == pytest.approx(full.item(), rel=1e-12)


def test_gradient_raises_logprob_of_positive_advantage():
    logprobs = torch.tensor([[-1.0], [-1.0]], requires_grad=True)
    loss, _ = policy_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 1),
                          LossConfig(), BatchTotals(2, 2))
    loss.backward()
    # gradient descent moves against the gradient: up for A > 0, down for A < 0
    assert logprobs.grad[0, 0] < 0 < logprobs.grad[1, 0]


def test_dapo_defaults_to_clip_higher_and_token_level_aggregation():
    logprobs, old, mask, adv = hand_loss_case()
    cfg = LossConfig(loss_type="dapo")
    assert (cfg.clip_low, cfg.clip_high) == (0.2, 0.28)
    loss, stats = policy_loss(logprobs, old, adv, mask, cfg, BatchTotals(2, 3))
    # ratio 2 clipped at 1.28 (A > 0); ratio 1 -> -1; ratio 1.5 with A = -2 -> +3; mean over 3 tokens
    assert loss.item() == pytest.approx((-1.28 - 1.0 + 3.0) / 3)
    assert LossConfig(loss_type="dapo", epsilon_high=0.4).clip_high == 0.4


def test_two_sided_clip_caps_the_ratio_of_negative_advantages():
    logprobs, old, mask, adv = hand_loss_case()
    cfg = LossConfig(loss_type="bnpo", delta=1.3)
    loss, _ = policy_loss(logprobs, old, adv, mask, cfg, BatchTotals(2, 3))
    # seq 2: ratio 1.5 capped at 1.3: min(1.3 * -2, 1.2 * -2) = -2.6 -> +2.6 (was +3 unbounded)
    assert loss.item() == pytest.approx((-1.2 - 1.0 + 2.6) / 3)


def test_gspo_uses_the_geometric_mean_ratio_of_each_sequence():
    logprobs, old, mask, adv = hand_loss_case()
    cfg = LossConfig(loss_type="gspo", epsilon=0.1, epsilon_high=0.5)
    loss, stats = policy_loss(logprobs, old, adv, mask, cfg, BatchTotals(2, 3))
    s1 = math.sqrt(2 * 1)  # exp(mean(log 2, log 1)) = 1.414: inside (0.9, 1.5), A = 1
    s2 = 1.5  # one token; A = -2: min(1.5 * -2, 1.5 * -2) -> unclipped (upper clip 1.5)
    assert loss.item() == pytest.approx((-s1 + 2 * s2) / 2)
    tight = LossConfig(loss_type="gspo")  # 3e-4 / 4e-4: both sequences clip
    loss, stats = policy_loss(logprobs, old, adv, mask, tight, BatchTotals(2, 3))
    assert loss.item() == pytest.approx((-(1 + 4e-4) + 2 * 1.5) / 2)
    assert stats["clipped_high"].item() == 2  # both tokens of sequence 1
    assert stats["clipped_low"].item() == 0  # A < 0 takes the unclipped side


def test_gspo_token_equals_gspo_in_value_and_gradient_for_sequence_advantages():
    torch.manual_seed(3)
    base = torch.randn(4, 6, dtype=torch.float64) * 0.1 - 1
    old = base + torch.randn(4, 6, dtype=torch.float64) * 1e-3
    mask = (torch.rand(4, 6) > 0.2).double()
    mask[:, 0] = 1
    adv = torch.randn(4, dtype=torch.float64)
    results = []
    for loss_type in ("gspo", "gspo_token"):
        logprobs = base.clone().requires_grad_(True)
        loss, _ = policy_loss(logprobs, old, adv, mask, LossConfig(loss_type=loss_type), BatchTotals(4, 0))
        loss.backward()
        results.append((loss.item(), logprobs.grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-12)
    assert results[0][1].abs().sum() > 0


def test_gspo_token_takes_per_token_advantages():
    logprobs = torch.zeros(1, 2, requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]])  # (N, T)
    loss, _ = policy_loss(logprobs, logprobs.detach(), adv, torch.ones(1, 2), LossConfig(loss_type="gspo_token"),
                          BatchTotals(1, 2))
    loss.backward()
    assert logprobs.grad[0, 0] < 0 < logprobs.grad[0, 1]


def test_unbiased_kl_weights_the_k3_term_by_the_ratio():
    logprobs = torch.tensor([[math.log(0.5)]])
    old = torch.tensor([[math.log(0.25)]])
    ref = torch.tensor([[math.log(0.25)]])
    cfg = LossConfig(loss_type="grpo", beta=0.1, unbiased_kl=True, epsilon_high=5.0)
    _, stats = policy_loss(logprobs, old, torch.tensor([0.0]), torch.ones(1, 1), cfg, BatchTotals(1, 1), ref)
    assert stats["kl"].item() == pytest.approx(2 * (0.5 - math.log(0.5) - 1))  # ratio 2


def test_unknown_loss_type_names_the_choices():
    with pytest.raises(ValueError, match="gspo_token"):
        LossConfig(loss_type="ppo")


def test_rollout_correction_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.4, 0.3]]))
    rollout = torch.log(torch.tensor([[0.25, 0.4, 0.6]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # third token is padding
    token, bounded = rollout_correction(old, rollout, mask, "token", cap=1.5)
    assert torch.allclose(token, torch.tensor([[1.5, 1.0, 1.0]]))  # 2 capped; padding: exp(0)
    assert bounded.tolist() == [[True, False, False]]
    sequence, _ = rollout_correction(old, rollout, mask, "sequence", cap=3.0)
    assert torch.allclose(sequence, torch.tensor([[2.0]]))  # product of ratios of real tokens
    geometric, _ = rollout_correction(old, rollout, mask, "sequence_mean", cap=3.0)
    assert torch.allclose(geometric, torch.tensor([[2.0 ** 0.5]]))  # geometric mean of 2 and 1
    assert mismatch_kl(old, old, mask).item() == 0
    assert mismatch_kl(old, rollout, mask).item() == pytest.approx(2 - math.log(2) - 1)


def test_rollout_correction_modes_and_bounds_by_hand():
    """Token ratios 2, 1, 0.25, 5 (fifth: padding): truncate clamps into [floor, cap], mask zeroes
    what falls outside and keeps the rest as it is (IcePop: per token, both bounds)."""
    old = torch.log(torch.tensor([[0.8, 0.4, 0.1, 0.5, 0.9]]))
    rollout = torch.log(torch.tensor([[0.4, 0.4, 0.4, 0.1, 0.1]]))
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    truncated, bounded = rollout_correction(old, rollout, mask, "token", cap=3.0, floor=0.5)
    assert torch.allclose(truncated, torch.tensor([[2.0, 1.0, 0.5, 3.0, 1.0]]))
    assert bounded.tolist() == [[False, False, True, True, False]]
    masked, _ = rollout_correction(old, rollout, mask, "token", cap=3.0, floor=0.5, mode="mask")
    assert torch.allclose(masked, torch.tensor([[2.0, 1.0, 0.0, 0.0, 1.0]]))
    only_floor, _ = rollout_correction(old, rollout, mask, "token", cap=None, floor=0.5, mode="mask")
    assert torch.allclose(only_floor, torch.tensor([[2.0, 1.0, 0.0, 5.0, 1.0]]))
    # sequence: 2 * 1 * 0.25 * 5 = 2.5 -> masked above a cap of 2, truncated to it
    assert rollout_correction(old, rollout, mask, "sequence", cap=2.0, mode="mask")[0].item() == 0
    assert rollout_correction(old, rollout, mask, "sequence", cap=2.0)[0].item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mode must be truncate or mask"):
        rollout_correction(old, rollout, mask, "token", cap=2.0, mode="clip")


def test_off_policy_sequence_mask_drops_negative_advantage_sequences_far_off_policy():
    """Mean log(pi_sampling / pi) over each sequence's tokens: 0.6, 0.6, 0.1; advantages -1, +1, -1."""
    logprobs = torch.zeros(3, 3)
    sampling = torch.tensor([[0.6, 0.6, 9.0], [0.6, 0.6, 0.6], [0.1, 0.1, 0.1]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    keep = off_policy_sequences(torch.tensor([-1.0, 1.0, -1.0]), logprobs, sampling, mask, threshold=0.5)
    assert keep.tolist() == [[0.0], [1.0], [1.0]]  # padding's 9.0 does not count


def test_high_entropy_tokens_keep_the_top_quantile_of_real_tokens():
    entropy = torch.tensor([[0.1, 0.9, 0.5, 7.0], [0.3, 0.7, 0.2, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # 7.0 is padding
    chosen = high_entropy_tokens(entropy, mask, quantile=0.3)
    # real entropies 0.1 0.9 0.5 0.3 0.7 0.2 0.0: the 0.7 quantile is 0.54, so 0.9 and 0.7 stay
    assert chosen.tolist() == [[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]


def test_correction_scales_each_token_loss():
    logprobs, old, mask, adv = hand_loss_case()
    weights = torch.tensor([[0.5, 2.0, 1.0], [1.0, 1.0, 1.0]])
    cfg = LossConfig(loss_type="bnpo")
    loss, _ = policy_loss(logprobs, old, adv, mask, cfg, BatchTotals(2, 3), correction=weights)
    assert loss.item() == pytest.approx((-1.2 * 0.5 - 1.0 * 2.0 + 3.0) / 3)


def test_entropy_equals_minus_p_log_p():
    logits = torch.randn(3, 4, 9)
    ids = torch.randint(0, 9, (3, 4))
    logprobs, entropy = token_logprobs_and_entropy(logits, ids, temperature=0.8, chunk=2)
    logp = torch.log_softmax(logits / 0.8, dim=-1)
    assert torch.allclose(entropy, -(logp.exp() * logp).sum(-1), atol=1e-6)
    assert torch.allclose(logprobs, logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1), atol=1e-6)
    assert not entropy.requires_grad


@pytest.mark.parametrize("loss_type", list(VARIANTS))
def test_one_step_raises_the_positive_and_lowers_the_negative_sequence(loss_type, tiny_model):
    """On a real tiny model: one SGD step on the loss moves each sequence's logprob with its advantage."""
    tokens = right_padded([[5, 6, 7], [5, 6, 7]], [[8, 9, 10], [11, 12, 13]], pad_id=0)
    mask = tokens.completion_mask
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.05)

    def sequence_logprob():
        with torch.no_grad():
            return (sequence_logprobs(tiny_model, tokens) * mask).sum(dim=1)

    before = sequence_logprob()
    logprobs = sequence_logprobs(tiny_model, tokens)
    loss, _ = policy_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), mask,
                          LossConfig(loss_type=loss_type, max_completion_length=3), BatchTotals(2, 6))
    loss.backward()
    optimizer.step()
    after = sequence_logprob()
    assert after[0] > before[0]
    assert after[1] < before[1]


def test_entropy_bonus_shares_add_up_to_the_batch_mean_however_it_is_split():
    torch.manual_seed(2)
    entropy = torch.rand(6, 5, dtype=torch.float64) * 3
    mask = (torch.rand(6, 5) > 0.3).double()
    total = int(mask.sum())
    whole = (entropy * mask).sum() / total
    for split in ([6], [2, 2, 2], [1, 5], [4, 2]):
        bounds = [sum(split[:i]) for i in range(len(split) + 1)]
        shares = sum(entropy_bonus(entropy[lo:hi], mask[lo:hi], total, len(split))
                     for lo, hi in zip(bounds, bounds[1:]))
        assert shares.item() == pytest.approx(whole.item(), rel=1e-12)
    # over chosen tokens: the mean of each micro-batch's mean (TRL's), the batch mean when whole
    chosen = (entropy > 1.5).double()
    chosen_mean = (entropy * mask * chosen).sum() / (mask * chosen).sum()
    assert entropy_bonus(entropy, mask, total, 1, chosen).item() == pytest.approx(chosen_mean.item(), rel=1e-12)
    halves = [entropy_bonus(entropy[lo:lo + 3], mask[lo:lo + 3], total, 2, chosen[lo:lo + 3]) for lo in (0, 3)]
    expected = sum((entropy[lo:lo + 3] * mask[lo:lo + 3] * chosen[lo:lo + 3]).sum()
                   / (mask[lo:lo + 3] * chosen[lo:lo + 3]).sum() for lo in (0, 3)) / 2
    assert sum(halves).item() == pytest.approx(expected.item(), rel=1e-12)
