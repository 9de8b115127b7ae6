"""GRPO maths as pure functions: tensors in, tensors out.

Where this departs from textbook GRPO (Shao et al., 2024):
- The KL term is the k3 estimator ``exp(ref - logp) - (ref - logp) - 1`` per token, added
  to the loss (not folded into the reward), as in the DeepSeekMath paper.
- ``epsilon_high`` allows DAPO's asymmetric clip; by default the clip is symmetric.
- ``loss_type`` picks how token losses are averaged: ``grpo`` (per sequence, then over
  sequences), ``bnpo`` (over all tokens of the batch), ``dr_grpo`` (sum / (N * max_tokens)).
- Logprobs are taken of ``logits / temperature`` so they match the sampling distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group",
                     eps: float = 1e-4) -> torch.Tensor:
    """Group-relative advantages ``(r - mean_group) / (std + eps)``.

    Args:
        rewards: (B*G,) total reward of each completion, groups contiguous.
        group_size: G.
        scale: "group" divides by each group's std, "batch" by the batch std, "none" not at all.
    Returns:
        (B*G,) advantages; exactly zero for a group whose rewards all tie.
    """
    grouped = rewards.view(-1, group_size)  # (B, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # (B, G)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / (rewards.std() + eps)
    elif scale != "none":
        raise ValueError(f"scale must be group, batch or none, got {scale!r}")
    return centred.reshape(-1)


def token_logprobs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0,
                   chunk: int = 16) -> torch.Tensor:
    """Log-probability of each token under ``softmax(logits / temperature)``.

    Computed ``chunk`` sequences at a time so the full-vocab log-softmax of the whole batch
    never exists at once.

    Args:
        logits: (N, T, V) logits predicting each position of ``token_ids``.
        token_ids: (N, T).
    Returns:
        (N, T) float32 logprobs.
    """
    out = []
    for lo in range(0, logits.shape[0], chunk):
        part = logits[lo:lo + chunk].float() / temperature  # (n, T, V)
        picked = part.gather(-1, token_ids[lo:lo + chunk].unsqueeze(-1)).squeeze(-1)  # (n, T)
        out.append(picked - torch.logsumexp(part, dim=-1))
    return torch.cat(out)


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "grpo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    beta: float = 0.0
    max_new_tokens: int = 1


@dataclass(frozen=True)
class BatchTotals:
    """Sizes of the whole batch that each micro-batch's loss is normalised by."""

    num_sequences: int
    num_tokens: int


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cfg: LossConfig, totals: BatchTotals,
                ref_logprobs: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-surrogate loss of one micro-batch, as its share of the whole-batch loss.

    Summing the returned loss over the micro-batches of a batch gives exactly the loss of
    the batch computed at once, for every ``loss_type``.

    Args:
        logprobs: (N, T) current policy logprobs of the completion tokens (with grad).
        old_logprobs: (N, T) logprobs of the policy that sampled (no grad).
        advantages: (N,) one advantage per sequence.
        mask: (N, T) 1 on completion tokens, 0 on prompt and padding.
        ref_logprobs: (N, T) reference logprobs; needed when ``cfg.beta > 0``.
    Returns:
        (loss, stats): scalar loss; token sums (not means) of clip events and KL for logging.
    """
    mask = mask.to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)  # (N, T)
    high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
    clipped = torch.clamp(ratio, 1 - cfg.epsilon, 1 + high)
    adv = advantages.unsqueeze(1)  # (N, 1)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (N, T)
    stats = {
        "clipped_low": (((ratio < 1 - cfg.epsilon) & (adv < 0)).float() * mask).sum(),
        "clipped_high": (((ratio > 1 + high) & (adv > 0)).float() * mask).sum(),
    }
    if cfg.beta > 0:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs")
        log_ratio = ref_logprobs - logprobs
        kl = torch.exp(log_ratio) - log_ratio - 1  # (N, T) k3 estimator
        per_token = per_token + cfg.beta * kl
        stats["kl"] = (kl.detach() * mask).sum()
    return aggregate(per_token, mask, cfg, totals), stats


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, cfg: LossConfig,
              totals: BatchTotals) -> torch.Tensor:
    """Reduce (N, T) token losses to this micro-batch's share of the batch loss."""
    summed = (per_token * mask).sum(dim=1)  # (N,)
    if cfg.loss_type == "grpo":
        return (summed / mask.sum(dim=1).clamp(min=1)).sum() / totals.num_sequences
    if cfg.loss_type == "bnpo":
        return summed.sum() / max(totals.num_tokens, 1)
    if cfg.loss_type == "dr_grpo":
        return summed.sum() / (totals.num_sequences * cfg.max_new_tokens)
    raise ValueError(f"unknown loss_type {cfg.loss_type!r}")
