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
``luspo``       per-sequence loss times its length, mean over seqs  sequence        3e-4 / 4e-4
``cispo``       as bnpo; ``-sg[min(r, hi)] * A * log pi``           token           - / 5.0 (cap)
``sapo``        as grpo; ``-sigmoid(tau (r - 1)) * 4 / tau * A``    token           none
``vespo``       as bnpo; ``-sg[phi(w)] * A * log pi``               token (w: seq)  none
``clip_cov``    as bnpo; clip, a few high-covariance tokens dropped  token           0.2 / 0.2
``kl_cov``      as bnpo; ``-r * A``, ``+ c |log r|`` on the top-cov  token           none
==============  =================================================  ==============  ============

GRPO: Shao et al., 2024 (DeepSeekMath). DAPO: Yu et al., 2025. Dr. GRPO: Liu et al., 2025
("Understanding R1-Zero-Like Training"). GSPO: Zheng et al., 2025. The sequence ratio of GSPO is
``s_i = exp(mean_t log(pi_t / pi_old_t))``; GSPO-token has the same value and, with one advantage
per sequence, the same gradient, and also accepts per-token advantages. LUSPO (length-unbiased
GSPO, 2026): GSPO's clipped sequence loss summed over the sequence's tokens rather than averaged.
CISPO (MiniMax-M1, 2025): the importance weight is clipped (at ``epsilon_high``, ScaleRL's
epsilon_max) and carries no gradient, so every token keeps a gradient. SAPO (Soft Adaptive Policy
Optimization, 2025): a smooth gate instead of the hard clip, temperature ``tau`` 1.0 for positive
advantages and 1.05 otherwise. VESPO (2026): the sequence ratio ``w = exp(sum_t log(pi_t /
pi_old_t))`` weighs the sequence by ``phi(w) = exp(lambda) w^k exp(-lambda w)`` (``phi(1) = 1``),
with ``k, lambda`` = 2, 3 for advantages >= 0 and 3, 2 otherwise. These four are TRL 1.16's
definitions and defaults. Clip-Cov and KL-Cov (Cui et al., 2025, "The Entropy Mechanism of
Reinforcement Learning for Reasoning Language Models"; verl's ``clip_cov`` and ``kl_cov``) hold
entropy up through the tokens whose centred covariance ``(A - mean A)(log pi - mean log pi)``
is high, which are the ones that drive entropy down: Clip-Cov takes ``max(1, ratio * tokens)``
of the tokens with covariance in ``(lb, ub)`` that the clip left alone, at random, out of the
gradient; KL-Cov adds ``coef * |log pi - log pi_old|`` to the top ``max(1, ratio * tokens)`` by
covariance and does not clip. Means, counts and the choice are per micro-batch, as verl takes
them (so these two, unlike the others, depend on how the batch is split).

Common to all:
- ``clip`` objective (all but cispo, sapo, vespo): ``-min(r * A, clip(r, 1 - lo, 1 + hi) * A)``;
  with ``delta`` the unclipped ratio is also capped at ``delta`` (two-sided clip, INTELLECT-2).
- KL to the reference: the k3 estimator ``exp(ref - logp) - (ref - logp) - 1`` per token, added
  to the loss with weight ``beta`` (not folded into the reward); with ``unbiased_kl`` it is
  weighted by the importance ratio, which makes its gradient the unbiased reverse-KL gradient
  (DeepSeek-V3.2, 2025; TRL's ``use_bias_correction_kl``).
- An optional per-token or per-sequence weight corrects for the rollout engine sampling from a
  slightly different distribution than the trainer computes (truncated importance sampling,
  Yao et al., 2025); see :func:`rollout_correction`.
"""

from __future__ import annotations

import math
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
    sapo_temperature_pos: float = 1.0
    sapo_temperature_neg: float = 1.05
    vespo_k_pos: float = 2.0
    vespo_lambda_pos: float = 3.0
    vespo_k_neg: float = 3.0
    vespo_lambda_neg: float = 2.0
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-4
    kl_cov_coef: float = 1.0

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


def sequence_means(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, 1) mean of each row's ``values`` over its masked tokens (0 for a row without any)."""
    return (values * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1)


def per_row(advantages: torch.Tensor) -> torch.Tensor:
    """Advantages as (N, 1), one per sequence, or (N, T) as given, one per token."""
    return advantages if advantages.dim() == 2 else advantages.unsqueeze(1)


def importance_log_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor,
                         level: str) -> torch.Tensor:
    """log(pi / pi_old): (N, T) per token, or (N, 1) per sequence (mean over its tokens)."""
    log_ratio = logprobs - old_logprobs  # (N, T)
    if level == "token":
        return log_ratio
    sequence = sequence_means(log_ratio, mask)
    if level == "sequence":
        return sequence  # (N, 1)
    if level == "sequence_token":
        return sequence.detach() + logprobs - logprobs.detach()  # value of s_i, gradient per token
    raise ValueError(f"unknown ratio level {level!r}")


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cfg: LossConfig, totals: BatchTotals,
                ref_logprobs: torch.Tensor | None = None,
                correction: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
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
        keep: (N, T) or (N, 1) 0/1 selection of the policy-loss terms (the KL term stays): the
            off-policy sequence mask and the high-entropy tokens.
    Returns:
        (loss, stats): scalar loss; token *sums* of clip events and KL, for logging.
    """
    mask = mask.to(logprobs.dtype)
    ratio = torch.exp(importance_log_ratio(logprobs, old_logprobs, mask, cfg.variant.ratio_level))
    adv = per_row(advantages)
    objective = cfg.variant.objective
    covariance_selected = None
    if objective == "vespo":  # the correction enters phi(w); the loss is not weighted by it again
        phi = gamma_weights(adv, logprobs.detach() - old_logprobs, mask, correction, cfg)  # (N, 1)
        per_token = -phi * adv * logprobs
    elif objective in ("clip_cov", "kl_cov"):
        per_token, covariance_selected = covariance_surrogate(objective, ratio, adv, logprobs, old_logprobs,
                                                              mask, cfg)
        if correction is not None:
            per_token = per_token * correction
    else:
        per_token = surrogate(objective, ratio, adv, logprobs, cfg)  # (N, T) or (N, 1)
        if correction is not None:
            per_token = per_token * correction
    if keep is not None:
        per_token = per_token * keep
    clipped_low, clipped_high = clip_events(objective, ratio, adv, cfg)
    stats = {"clipped_low": (clipped_low.to(mask.dtype) * mask).sum(),
             "clipped_high": (clipped_high.to(mask.dtype) * mask).sum()}
    if covariance_selected is not None:
        stats["covariance_selected"] = covariance_selected.sum()
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


def surrogate(objective: str, ratio: torch.Tensor, adv: torch.Tensor, logprobs: torch.Tensor,
              cfg: LossConfig) -> torch.Tensor:
    """Token (or sequence) losses of the clip, cispo and sapo objectives (table above)."""
    if objective == "clip":
        return torch.max(*clip_terms(ratio, adv, cfg))
    if objective == "cispo":
        return -torch.clamp(ratio, max=cfg.clip_high).detach() * adv * logprobs
    if objective == "sapo":
        tau = torch.where(adv > 0, cfg.sapo_temperature_pos, cfg.sapo_temperature_neg)
        return -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * adv
    raise ValueError(f"unknown objective {objective!r}")


def covariance_surrogate(objective: str, ratio: torch.Tensor, adv: torch.Tensor, logprobs: torch.Tensor,
                         old_logprobs: torch.Tensor, mask: torch.Tensor, cfg: LossConfig
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token losses of Clip-Cov and KL-Cov (table above), and the 0/1 tokens chosen by covariance:
    (N, T) each.

    clip_cov: the clip objective, with ``max(1, clip_cov_ratio * tokens)`` tokens drawn at random
    (torch's global generator, as verl draws them) from those whose covariance lies strictly
    between ``clip_cov_lb`` and ``clip_cov_ub`` and whose clip is not active, and left out of the
    gradient. kl_cov: ``-r * A`` on every token, plus ``kl_cov_coef * |log pi - log pi_old|`` on
    the ``max(1, kl_cov_ratio * tokens)`` tokens of highest covariance."""
    adv = adv.expand_as(mask)
    real = mask.bool()
    cov = token_covariance(adv, logprobs, mask)
    chosen = torch.zeros_like(mask)
    if objective == "clip_cov":
        unclipped, clipped = clip_terms(ratio, adv, cfg)
        per_token, clip_active = torch.max(unclipped, clipped), clipped > unclipped
        candidates = ((cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub) & real & ~clip_active).nonzero()
        if len(candidates):
            count = max(int(cfg.clip_cov_ratio * mask.sum().item()), 1)
            picked = candidates[torch.randperm(len(candidates))[:count]]
            chosen[picked[:, 0], picked[:, 1]] = 1
        return per_token * (1 - chosen), chosen
    per_token = -ratio * adv
    positions = real.flatten().nonzero().flatten()
    if len(positions):
        count = max(1, int(len(positions) * cfg.kl_cov_ratio))
        top = positions[torch.topk(cov.flatten()[positions], count).indices]
        chosen.view(-1)[top] = 1
    return per_token + chosen * cfg.kl_cov_coef * (logprobs - old_logprobs).abs(), chosen


def clip_terms(ratio: torch.Tensor, adv: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip objective's two token losses, ``-r * A`` (the ratio capped at ``delta`` if set)
    and ``-clip(r, 1 - lo, 1 + hi) * A``; the objective is the larger of the two."""
    unclipped = ratio if cfg.delta is None else torch.clamp(ratio, max=cfg.delta)
    return -unclipped * adv, -torch.clamp(ratio, 1 - cfg.clip_low, 1 + cfg.clip_high) * adv


@torch.no_grad()
def token_covariance(adv: torch.Tensor, logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, T) each token's centred product ``(A - mean A) * (log pi - mean log pi)``, the means over
    the completion tokens of ``mask`` (no grad)."""
    tokens = mask.sum().clamp(min=1)
    mean_adv = (adv * mask).sum() / tokens
    mean_logprob = (logprobs * mask).sum() / tokens
    return (adv - mean_adv) * (logprobs - mean_logprob)


def clip_events(objective: str, ratio: torch.Tensor, adv: torch.Tensor,
                cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the objective's clip took the gradient away (low: ratio under 1 - lo with a negative
    advantage; high: over 1 + hi with a positive one; cispo: its weight capped, positive
    advantage). sapo and vespo have no hard clip: none."""
    if objective in ("clip", "clip_cov"):
        return (ratio < 1 - cfg.clip_low) & (adv < 0), (ratio > 1 + cfg.clip_high) & (adv > 0)
    none = torch.zeros_like(ratio * adv, dtype=torch.bool)
    if objective == "cispo":
        return none, (ratio > cfg.clip_high) & (adv > 0)
    return none, none


@torch.no_grad()
def gamma_weights(adv: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor,
                  correction: torch.Tensor | None, cfg: LossConfig) -> torch.Tensor:
    """VESPO's sequence weight ``phi(w) = exp(lambda + k log w - lambda w)`` (no grad): (N, 1), or
    (N, T) with per-token advantages.

    ``log w`` is the sum of the sequence's token log-ratios (each clamped to [-20, 20]), plus
    the log of each token's rollout-correction weight when there is one, clamped to
    [log 1e-8, 20]; ``k`` and ``lambda`` by the sign of the advantage. TRL 1.16's
    ``get_gamma_weights``."""
    lowest = math.log(1e-8)
    log_w = (log_ratio.clamp(-20.0, 20.0) * mask).sum(dim=-1, keepdim=True)
    if correction is not None:
        if correction.shape[-1] == 1 and mask.shape[-1] != 1:
            raise ValueError("vespo takes a per-token rollout correction (algo.rollout_correction: token)")
        log_w = log_w + torch.log(correction).clamp(lowest, 20.0).sum(dim=-1, keepdim=True)
    log_w = log_w.clamp(lowest, 20.0)
    nonneg = adv >= 0
    k = torch.where(nonneg, cfg.vespo_k_pos, cfg.vespo_k_neg)
    lam = torch.where(nonneg, cfg.vespo_lambda_pos, cfg.vespo_lambda_neg).clamp(min=1e-4)
    return torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, cfg: LossConfig,
              totals: BatchTotals) -> torch.Tensor:
    """Reduce (N, T) token losses to this micro-batch's share of the batch loss."""
    summed = (per_token * mask).sum(dim=1)  # (N,)
    how = cfg.variant.aggregation
    if how == "sequence_mean":
        return (summed / mask.sum(dim=1).clamp(min=1)).sum() / totals.num_sequences
    if how == "token_mean":
        return summed.sum() / max(totals.num_tokens, 1)
    if how == "sequence_sum":
        return summed.sum() / totals.num_sequences
    return summed.sum() / (totals.num_sequences * cfg.max_completion_length)


def rollout_correction(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, mask: torch.Tensor,
                       level: str, cap: float | None, floor: float | None = None,
                       mode: str = "truncate") -> tuple[torch.Tensor, torch.Tensor]:
    """Importance weights ``pi_old / pi_rollout`` held to ``[floor, cap]`` (no grad).

    The rollout engine samples with its own kernels (and possibly lower precision), so its
    distribution differs slightly from the trainer's ``pi_old``; reweighting each token (or
    sequence) by the ratio makes the update on-policy again. ``level``: ``token``; ``sequence``,
    the product of the sequence's token ratios; ``sequence_mean``, their geometric mean.
    ``mode``: ``truncate`` clamps the weight into the bounds (TIS), ``mask`` sets weights outside
    them to zero and keeps the others as they are (MIS; token level with both bounds: IcePop).
    A bound left None is not applied.

    Returns:
        (weights, out_of_bounds): (N, T) for ``level="token"``, else (N, 1); ``out_of_bounds`` is
        where a bound was hit (truncated or masked).
    """
    diff = ((old_logprobs - rollout_logprobs) * mask).detach()  # (N, T)
    if level == "token":
        log_weight = diff
    elif level == "sequence":
        log_weight = diff.sum(dim=1, keepdim=True)
    elif level == "sequence_mean":
        log_weight = sequence_means(diff, mask)
    else:
        raise ValueError(f"rollout correction level must be token, sequence or sequence_mean, got {level!r}")
    weight = torch.exp(log_weight)
    out = torch.zeros_like(weight, dtype=torch.bool)
    if floor is not None:
        out |= weight < floor
    if cap is not None:
        out |= weight > cap
    if mode == "truncate":
        return (weight if floor is None and cap is None else weight.clamp(min=floor, max=cap)), out
    if mode == "mask":
        return weight.masked_fill(out, 0.0), out
    raise ValueError(f"rollout correction mode must be truncate or mask, got {mode!r}")


def off_policy_sequences(advantages: torch.Tensor, logprobs: torch.Tensor, sampling_logprobs: torch.Tensor,
                         mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """DeepSeek-V3.2's off-policy sequence mask (OPSM): 1 keeps, 0 drops a sequence from the
    policy loss. A sequence is dropped when its advantage is negative and the mean over its
    tokens of ``log pi_sampling - log pi`` (the policy that sampled it against the current one)
    is above ``threshold``. (N, 1), or (N, T) with per-token advantages."""
    kl = torch.nan_to_num(sampling_logprobs - logprobs.detach(), nan=0.0)
    return ((per_row(advantages) >= 0) | (sequence_means(kl, mask) <= threshold)).to(mask.dtype)


def high_entropy_tokens(entropy: torch.Tensor, mask: torch.Tensor, quantile: float,
                        pool: torch.Tensor | None = None) -> torch.Tensor:
    """The tokens whose entropy is in the top ``quantile`` (Wang et al., 2025, "Beyond the 80/20
    Rule": 0.2): 1 where the entropy is at least the ``1 - quantile`` quantile of ``pool`` (the
    entropies of every completion token the threshold is taken over; default this batch's)."""
    pool = entropy[mask.bool()].float() if pool is None else pool
    if pool.numel() == 0:
        return torch.zeros_like(mask)
    threshold = torch.quantile(pool, 1 - quantile)
    return ((entropy * mask >= threshold) & mask.bool()).to(mask.dtype)


def entropy_bonus(entropy: torch.Tensor, mask: torch.Tensor, total_tokens: int, micro_batches: int,
                  chosen: torch.Tensor | None = None) -> torch.Tensor:
    """This micro-batch's share of the batch's mean token entropy, which an entropy bonus
    subtracts (times its coefficient) from the loss whatever the loss type's own normalisation
    (TRL 1.16's ``entropy_coef``).

    Over every completion token: the micro-batch's entropy sum over the batch's ``total_tokens``,
    so the shares add up to the batch's mean however it is split. Over the top-entropy tokens
    (``chosen``, selected per micro-batch): the mean over the micro-batch's chosen tokens divided
    by the number of ``micro_batches`` (on every process), TRL's mean of micro-batch means; equal
    to the batch's mean when it is one micro-batch."""
    if chosen is None:
        return (entropy * mask).sum() / max(total_tokens, 1)
    effective = mask * chosen
    return (entropy * effective).sum() / effective.sum().clamp(min=1) / micro_batches


def adapted_entropy_coef(coef: float, entropy: float, target: float, step: float, lowest: float,
                         highest: float) -> float:
    """Skywork-OR1's adaptive entropy control, as TRL 1.16 steps it after each optimizer step: the
    coefficient rises by ``step`` (to at most ``highest``) while the batch's mean entropy is at or
    below ``target``, and falls by it (to at least ``lowest``) otherwise."""
    return min(coef + step, highest) if entropy <= target else max(coef - step, lowest)


def mismatch_kl(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """Token *sum* of the k3 estimate of KL(rollout engine || trainer) on the sampled tokens."""
    log_ratio = (old_logprobs - rollout_logprobs).detach()
    return ((torch.exp(log_ratio) - log_ratio - 1) * mask).sum()
