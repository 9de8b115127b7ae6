"""The GRPO policy-loss family as pure functions: tensors in, tensors out.

One key, ``loss_type``, picks a variant; each is the paper's loss:

==============  =================================================  ==============  ============
loss_type       aggregation of token losses                        ratio           clip (lo/hi)
==============  =================================================  ==============  ============
``grpo``        token mean per sequence, then mean over sequences  token           0.2 / 0.2
``bnpo``        token mean over every completion token of batch    token           0.2 / 0.2
``dapo``        as bnpo (DAPO's token-level loss) + clip-higher    token           0.2 / 0.28
``dr_grpo``     token sum / (sequences * max_completion_length)    token           0.2 / 0.2
``gspo``        per-sequence loss, mean over sequences             sequence        3e-4 / 4e-4
``gspo_token``  as gspo, ratio ``sg[s_i] * pi_t / sg[pi_t]``       sequence-token  3e-4 / 4e-4
==============  =================================================  ==============  ============

GRPO: Shao et al., 2024 (DeepSeekMath). DAPO: Yu et al., 2025. Dr. GRPO: Liu et al., 2025
("Understanding R1-Zero-Like Training"). GSPO: Zheng et al., 2025. The sequence ratio of GSPO is
``s_i = exp(mean_t log(pi_t / pi_old_t))``; GSPO-token has the same value and, with one advantage
per sequence, the same gradient, and also accepts per-token advantages.

Common to all:
- Clipped surrogate ``-min(r * A, clip(r, 1 - lo, 1 + hi) * A)``; with ``delta`` the unclipped
  ratio is also capped at ``delta`` (two-sided clip, INTELLECT-2).
- KL to the reference: the k3 estimator ``exp(ref - logp) - (ref - logp) - 1`` per token, added
  to the loss with weight ``beta`` (not folded into the reward); with ``unbiased_kl`` it is
  weighted by the importance ratio, which makes its gradient the unbiased reverse-KL gradient
  (DeepSeek-V3.2, 2025; TRL's ``use_bias_correction_kl``).
- An optional per-token or per-sequence weight corrects for the rollout engine sampling from a
  slightly different distribution than the trainer computes (truncated importance sampling,
  Yao et al., 2025); see :func:`rollout_correction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlreason.loss_variants import VARIANTS, Variant


@dataclass(frozen=True)
class LossConfig:
    """``epsilon``/``epsilon_high`` left None take the variant's values (table above)."""

    loss_type: str = "grpo"
    epsilon: float | None = None
    epsilon_high: float | None = None
    delta: float | None = None
    beta: float = 0.0
    unbiased_kl: bool = False
    max_completion_length: int = 1

    def __post_init__(self):
        if self.loss_type not in VARIANTS:
            raise ValueError(f"unknown loss_type {self.loss_type!r}; one of {', '.join(VARIANTS)}")

    @property
    def variant(self) -> Variant:
        return VARIANTS[self.loss_type]

    @property
    def clip_low(self) -> float:
        return self.variant.epsilon if self.epsilon is None else self.epsilon

    @property
    def clip_high(self) -> float:
        return self.variant.epsilon_high if self.epsilon_high is None else self.epsilon_high


@dataclass(frozen=True)
class BatchTotals:
    """Sizes of the whole batch that each micro-batch's loss is normalised by."""

    num_sequences: int
    num_tokens: int


def importance_log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor,
                         level: str) -> torch.Tensor:
    """log(pi / pi_old): (N, T) per token, or (N, 1) per sequence (mean over its tokens)."""
    log_ratio = logprobs - old_logprobs  # (N, T)
    if level == "token":
        return log_ratio
    sequence = (log_ratio * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1)
    if level == "sequence":
        return sequence  # (N, 1)
    if level == "sequence_token":
        return sequence.detach() + logprobs - logprobs.detach()  # value of s_i, gradient per token
    raise ValueError(f"unknown ratio level {level!r}")


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cfg: LossConfig, totals: BatchTotals,
                ref_logprobs: torch.Tensor | None = None,
                correction: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-surrogate loss of one micro-batch, as its share of the whole-batch loss.

    Summing the returned loss over the micro-batches of a batch gives exactly the loss of
    the batch computed at once, for every ``loss_type``.

    Args:
        logprobs: (N, T) current policy logprobs of the completion tokens (with grad).
        old_logprobs: (N, T) logprobs of the policy that sampled (no grad).
        advantages: (N,) one advantage per sequence, or (N, T) one per token.
        mask: (N, T) 1 on completion tokens, 0 on prompt and padding.
        ref_logprobs: (N, T) reference logprobs; needed when ``cfg.beta > 0``.
        correction: (N, T) or (N, 1) rollout-mismatch weights (no grad), see rollout_correction.
    Returns:
        (loss, stats): scalar loss; token *sums* of clip events and KL, for logging.
    """
    mask = mask.to(logprobs.dtype)
    ratio = torch.exp(importance_log_ratio(logprobs, old_logprobs, mask, cfg.variant.ratio_level))
    adv = advantages if advantages.dim() == 2 else advantages.unsqueeze(1)  # (N, 1) or (N, T)
    low, high = cfg.clip_low, cfg.clip_high
    clipped = torch.clamp(ratio, 1 - low, 1 + high)
    unclipped = ratio if cfg.delta is None else torch.clamp(ratio, max=cfg.delta)
    per_token = -torch.min(unclipped * adv, clipped * adv)  # (N, T) or (N, 1)
    if correction is not None:
        per_token = per_token * correction
    clipped_low = ((ratio < 1 - low) & (adv < 0)).to(mask.dtype) * mask  # (N, T)
    clipped_high = ((ratio > 1 + high) & (adv > 0)).to(mask.dtype) * mask
    stats = {"clipped_low": clipped_low.sum(), "clipped_high": clipped_high.sum()}
    if cfg.beta > 0:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs")
        log_ratio = ref_logprobs - logprobs
        kl = torch.exp(log_ratio) - log_ratio - 1  # (N, T) k3 estimator
        if cfg.unbiased_kl:  # samples come from pi_old: weight by pi / pi_old (DeepSeek-V3.2)
            kl = kl * ratio
        per_token = per_token + cfg.beta * kl
        stats["kl"] = (kl.detach() * mask).sum()
    return aggregate(per_token.expand_as(mask), mask, cfg, totals), stats


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, cfg: LossConfig,
              totals: BatchTotals) -> torch.Tensor:
    """Reduce (N, T) token losses to this micro-batch's share of the batch loss."""
    summed = (per_token * mask).sum(dim=1)  # (N,)
    how = cfg.variant.aggregation
    if how == "sequence_mean":
        return (summed / mask.sum(dim=1).clamp(min=1)).sum() / totals.num_sequences
    if how == "token_mean":
        return summed.sum() / max(totals.num_tokens, 1)
    return summed.sum() / (totals.num_sequences * cfg.max_completion_length)


def rollout_correction(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, mask: torch.Tensor,
                       level: str, cap: float) -> torch.Tensor:
    """Truncated importance weights ``min(pi_old / pi_rollout, cap)`` (no grad).

    The rollout engine samples with its own kernels (and possibly lower precision), so its
    distribution differs slightly from the trainer's ``pi_old``; reweighting each token (or
    sequence) by the ratio, capped for variance, makes the update on-policy again.

    Returns:
        (N, T) per token for ``level="token"``; (N, 1) per sequence (product of token ratios).
    """
    diff = ((old_logprobs - rollout_logprobs) * mask).detach()  # (N, T)
    if level == "token":
        return torch.exp(diff).clamp(max=cap)
    if level == "sequence":
        return torch.exp(diff.sum(dim=1, keepdim=True)).clamp(max=cap)
    raise ValueError(f"rollout correction level must be token or sequence, got {level!r}")


def mismatch_kl(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """Token *sum* of the k3 estimate of KL(rollout engine || trainer) on the sampled tokens."""
    log_ratio = (old_logprobs - rollout_logprobs).detach()
    return ((torch.exp(log_ratio) - log_ratio - 1) * mask).sum()
