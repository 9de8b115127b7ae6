"""Clip-Cov and KL-Cov against a direct transcription of verl's ``compute_policy_loss_clip_cov``
and ``compute_policy_loss_kl_cov`` (verl/trainer/ppo/core_algos.py, token-mean aggregation): the
same loss and the same gradients, on hand-built tensors and on a real tiny model."""

import pytest
import torch

from rlreason.losses import BatchTotals, LossConfig, policy_loss
from rlreason.sequences import right_padded, sequence_logprobs


def masked_mean(values, mask):
    return (values * mask).sum() / (mask.sum() + 1e-8)  # verl_F.masked_mean


def verl_clip_cov(old_log_prob, log_prob, advantages, response_mask, clip_low=0.2, clip_high=0.2,
                  clip_cov_ratio=2e-4, clip_cov_lb=1.0, clip_cov_ub=5.0):
    negative_approx_kl = log_prob - old_log_prob
    ratio = torch.exp(negative_approx_kl)
    pg_losses1 = -advantages * ratio
    corr = torch.ones_like(advantages)
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    clip_by_origin = (pg_losses2 > pg_losses1) & (response_mask > 0)
    cov_all = (advantages - masked_mean(advantages, response_mask)) * (
        log_prob - masked_mean(log_prob.detach(), response_mask))
    cov_all[response_mask == 0] = -torch.inf
    cov_all[clip_by_origin] = -torch.inf
    clip_num = max(int(clip_cov_ratio * response_mask.sum().item()), 1)
    top_k_idx = (cov_all < clip_cov_ub) & (cov_all > clip_cov_lb) & (response_mask > 0)
    top_k_idx = torch.nonzero(top_k_idx)
    if len(top_k_idx) > 0:
        perm = torch.randperm(len(top_k_idx))
        top_k_idx = top_k_idx[perm[: min(clip_num, len(top_k_idx))]]
    else:
        top_k_idx = torch.empty((0, 2), device=cov_all.device, dtype=torch.long)
    corr[top_k_idx[:, 0], top_k_idx[:, 1]] = 0
    pg_losses = torch.maximum(pg_losses1, pg_losses2) * corr
    return masked_mean(pg_losses, response_mask), int((corr == 0).sum())


def verl_kl_cov(old_log_prob, log_prob, advantages, response_mask, kl_cov_ratio=2e-4, ppo_kl_coef=1.0):
    negative_approx_kl = log_prob - old_log_prob
    abs_kl = negative_approx_kl.abs()
    ratio = torch.exp(negative_approx_kl)
    pg_losses1 = -advantages * ratio
    pg_losses_kl = -advantages * ratio + ppo_kl_coef * abs_kl
    pg_losses = pg_losses1
    all_valid = response_mask > 0
    all_valid_idx = torch.nonzero(all_valid.reshape(-1), as_tuple=True)[0]
    all_valid_adv = advantages[all_valid].detach().reshape(-1).cpu()
    all_valid_logp = log_prob[all_valid].detach().reshape(-1).cpu()
    k = min(kl_cov_ratio, len(all_valid_adv))
    large_cov_idxs = []
    if k != 0:
        cov_lst_all = (all_valid_adv - all_valid_adv.mean()) * (all_valid_logp - all_valid_logp.mean())
        k_percent_nums = max(1, int(len(cov_lst_all) * kl_cov_ratio))
        large_cov_idxs = torch.topk(cov_lst_all, k_percent_nums, largest=True).indices
        if len(large_cov_idxs) != 0:
            large_cov_idxs = all_valid_idx[large_cov_idxs]
            width = advantages.shape[1]
            pg_losses[large_cov_idxs // width, large_cov_idxs % width] = pg_losses_kl[
                large_cov_idxs // width, large_cov_idxs % width]
    return masked_mean(pg_losses, response_mask), len(large_cov_idxs)


def hand_batch(seed: int, per_token: bool):
    """Advantages large enough, and logprobs spread enough, that many tokens' covariance lies in
    (1, 5); old logprobs off by up to ~0.4 so the clip is active on some tokens."""
    generator = torch.Generator().manual_seed(seed)
    rows, width = 8, 12
    logprobs = (torch.rand(rows, width, generator=generator, dtype=torch.float64) * -4).requires_grad_()
    old = logprobs.detach() + torch.randn(rows, width, generator=generator, dtype=torch.float64) * 0.2
    mask = (torch.rand(rows, width, generator=generator) > 0.25).double()
    mask[:, 0] = 1
    adv = torch.randn(rows, width if per_token else 1, generator=generator, dtype=torch.float64) * 3
    return logprobs, old, adv, mask


def ours(loss_type, logprobs, old, adv, mask, **settings):
    cfg = LossConfig(loss_type=loss_type, max_completion_length=mask.shape[1], **settings)
    loss, stats = policy_loss(logprobs, old, adv if adv.shape[1] > 1 else adv[:, 0], mask, cfg,
                              BatchTotals(mask.shape[0], int(mask.sum())))
    return loss, int(stats["covariance_selected"])


@pytest.mark.parametrize("per_token", [False, True], ids=["sequence-advantages", "token-advantages"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_cov_equals_verls_on_hand_built_tensors(seed, per_token):
    logprobs, old, adv, mask = hand_batch(seed, per_token)
    verl_adv = adv.expand_as(mask) * mask  # verl's advantages: zero outside the response
    settings = {"clip_cov_ratio": 0.1}  # several tokens from a larger pool of candidates: the draw matters
    torch.manual_seed(100 + seed)
    loss, chosen = ours("clip_cov", logprobs, old, adv, mask, **settings)
    (grad,) = torch.autograd.grad(loss, logprobs)
    torch.manual_seed(100 + seed)
    expected, expected_chosen = verl_clip_cov(old, logprobs, verl_adv, mask, **settings)
    (expected_grad,) = torch.autograd.grad(expected, logprobs)
    assert chosen == expected_chosen == max(int(0.1 * mask.sum()), 1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("per_token", [False, True], ids=["sequence-advantages", "token-advantages"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_cov_equals_verls_on_hand_built_tensors(seed, per_token):
    logprobs, old, adv, mask = hand_batch(seed, per_token)
    verl_adv = adv.expand_as(mask) * mask
    settings = {"kl_cov_ratio": 0.1, "kl_cov_coef": 0.7}
    loss, chosen = ours("kl_cov", logprobs, old, adv, mask, **settings)
    (grad,) = torch.autograd.grad(loss, logprobs)
    expected, expected_chosen = verl_kl_cov(old, logprobs, verl_adv, mask, kl_cov_ratio=0.1, ppo_kl_coef=0.7)
    (expected_grad,) = torch.autograd.grad(expected, logprobs)
    assert chosen == expected_chosen == max(1, int(0.1 * mask.sum()))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_defaults_select_one_token_in_a_small_batch_as_verls_do():
    """At the defaults (ratio 2e-4) a batch of under 5,000 tokens has one token selected in each."""
    logprobs, old, adv, mask = hand_batch(3, per_token=False)
    verl_adv = adv.expand_as(mask) * mask
    torch.manual_seed(7)
    clip_loss, clip_chosen = ours("clip_cov", logprobs, old, adv, mask)
    torch.manual_seed(7)
    verl_clip, verl_clip_chosen = verl_clip_cov(old, logprobs, verl_adv, mask)
    kl_loss, kl_chosen = ours("kl_cov", logprobs, old, adv, mask)
    verl_kl, verl_kl_chosen = verl_kl_cov(old, logprobs, verl_adv, mask)
    assert (clip_chosen, kl_chosen) == (verl_clip_chosen, verl_kl_chosen) == (1, 1)
    assert clip_loss.item() == pytest.approx(verl_clip.item(), rel=1e-9)
    assert kl_loss.item() == pytest.approx(verl_kl.item(), rel=1e-9)


@pytest.mark.parametrize("loss_type", ["clip_cov", "kl_cov"])
def test_loss_and_every_gradient_equal_verls_on_a_tiny_model(loss_type, tiny_model):
    """Logprobs from a real tiny MoE: the loss and the gradient of every parameter agree."""
    generator = torch.Generator().manual_seed(4)
    prompts = [torch.randint(5, 60, (int(n),), generator=generator).tolist() for n in (3, 5, 4, 6, 2, 5)]
    completions = [torch.randint(5, 60, (int(n),), generator=generator).tolist() for n in (9, 4, 12, 7, 10, 3)]
    tokens = right_padded(prompts, completions, pad_id=0)
    mask = tokens.completion_mask.double()
    adv = torch.randn(len(prompts), generator=generator, dtype=torch.float64) * 4
    # an off-policy old policy (several iterations in): the clip and the |log ratio| term both act
    old = (sequence_logprobs(tiny_model, tokens).detach().double()
           + torch.randn(mask.shape, generator=generator, dtype=torch.float64) * 0.3 * mask)
    settings = {"clip_cov": {"clip_cov_ratio": 0.2, "clip_cov_lb": 0.05, "clip_cov_ub": 50.0},
                "kl_cov": {"kl_cov_ratio": 0.2, "kl_cov_coef": 1.0}}[loss_type]

    def gradients_of(loss_fn):
        tiny_model.zero_grad()
        torch.manual_seed(11)
        loss, chosen = loss_fn(sequence_logprobs(tiny_model, tokens).double())
        loss.backward()
        return loss.item(), chosen, torch.cat([p.grad.flatten() for p in tiny_model.parameters() if p.grad is not None])

    loss, chosen, grads = gradients_of(lambda lp: ours(loss_type, lp, old, adv.unsqueeze(1), mask, **settings))
    verl_settings = ({"kl_cov_ratio": 0.2, "ppo_kl_coef": 1.0} if loss_type == "kl_cov" else settings)
    verl = verl_clip_cov if loss_type == "clip_cov" else verl_kl_cov
    expected, expected_chosen, expected_grads = gradients_of(
        lambda lp: verl(old, lp, adv.unsqueeze(1) * mask, mask, **verl_settings))
    assert chosen == expected_chosen > 0
    assert loss == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(grads, expected_grads, rtol=1e-6, atol=1e-7)
