"""One policy update on a scored generation batch: micro-batches, fixed logprobs, loss, steps."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch

from rlreason.batches import ScoredBatch
from rlreason.distributed import backward_share, gathered_objects, micro_batch, summed
from rlreason.losses import (BatchTotals, LossConfig, adapted_entropy_coef, entropy_bonus, high_entropy_tokens,
                             mismatch_kl, off_policy_sequences, policy_loss, rollout_correction)
from rlreason.moe import RoutingStats, Tape, router_z_loss, routers, routing
from rlreason.rollout_routing import replay_tape
from rlreason.optimizer import optimizer_step
from rlreason.sequences import (TokenBatch, completion_values, micro_batches, policy_forward,
                                right_padded, sequence_logprobs, split_to, token_budget_batches)

if TYPE_CHECKING:
    from rlreason.session import Session


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch and what stays fixed across the policy iterations on it."""

    rows: list[int]
    tokens: TokenBatch
    old_logprobs: torch.Tensor | None = None  # (n, L-1); None: the detached current ones
    ref_logprobs: torch.Tensor | None = None
    correction: torch.Tensor | None = None
    mismatch_kl: float = 0.0  # token sum, see losses.mismatch_kl
    correction_bounded: float = 0.0  # tokens whose correction weight hit a bound (truncated or masked)
    sampling_logprobs: torch.Tensor | None = None  # (n, L-1) the rollout engine's, when it gave them
    routing: Tape | None = None  # experts the old policy selected (MoE), recorded with old_logprobs
    engine_routing: Tape | None = None  # experts the rollout engine selected (moe.routing_replay: rollout)
    engine_weights: Tape | None = None  # their combine weights in the engine (moe.replay_engine_weights)

    @property
    def token_mask(self) -> torch.Tensor:
        """(n*L,) real tokens, in the order MoE routers see them."""
        return self.tokens.attention_mask.flatten().bool()


@dataclass
class UpdateSums:
    """What one update adds up for logging: token sums over this process's share of the batch
    (``over_processes``: the global batch's), every iteration unless noted."""

    loss: float = 0.0
    grad_norm: float = 0.0  # already global: taken after the gradient all-reduce
    entropy: float = 0.0  # first iteration only
    clipped_low: float = 0.0
    clipped_high: float = 0.0
    kl: float = 0.0
    ratio_sum: float = 0.0  # last iteration only: the most off-policy one
    ratio_sq_sum: float = 0.0  # last iteration only
    mismatch_kl: float = 0.0  # once per batch
    correction_weight: float = 0.0  # once per batch
    correction_bounded: float = 0.0  # once per batch
    off_policy_masked: float = 0.0  # sequences (rows) the off-policy mask dropped
    entropy_kept: float = 0.0  # tokens the top-entropy selection kept
    covariance_selected: float = 0.0  # tokens clip_cov dropped / kl_cov penalised
    moe_aux_loss: float = 0.0
    moe_z_loss: float = 0.0

    def add(self, **values: float) -> None:
        for name, value in values.items():
            setattr(self, name, getattr(self, name) + value)

    def over_processes(self, accelerator) -> UpdateSums:
        names = [f.name for f in fields(self) if f.name != "grad_norm"]
        totals = summed(accelerator, [getattr(self, n) for n in names])
        return dataclasses.replace(self, **dict(zip(names, totals)))


def loss_config(recipe) -> LossConfig:
    algo = recipe.algo
    return LossConfig(loss_type=algo.loss_type, epsilon=algo.epsilon, epsilon_high=algo.epsilon_high,
                      delta=algo.delta, beta=algo.beta, unbiased_kl=algo.unbiased_kl,
                      max_completion_length=recipe.rollout.max_new_tokens,
                      sapo_temperature_pos=algo.sapo_temperature_pos, sapo_temperature_neg=algo.sapo_temperature_neg,
                      vespo_k_pos=algo.vespo_k_pos, vespo_lambda_pos=algo.vespo_lambda_pos,
                      vespo_k_neg=algo.vespo_k_neg, vespo_lambda_neg=algo.vespo_lambda_neg,
                      clip_cov_ratio=algo.clip_cov_ratio, clip_cov_lb=algo.clip_cov_lb, clip_cov_ub=algo.clip_cov_ub,
                      kl_cov_ratio=algo.kl_cov_ratio, kl_cov_coef=algo.kl_cov_coef)


def update_policy(session: Session, batch: ScoredBatch, advantages: torch.Tensor) -> dict[str, float]:
    """``num_iterations`` optimizer steps on one generation batch, accumulating over micro-batches.

    With one iteration and no rollout correction the sampling policy *is* the current one, so
    the old logprobs are the detached current ones: no extra forward pass. Otherwise they are
    computed once, before the first update.
    """
    recipe, accelerator, model = session.recipe, session.accelerator, session.model
    algo = recipe.algo
    model.train()
    cfg = loss_config(recipe)
    parts = [prepare_micro_batch(session, batch, rows) for rows in micro_batch_rows(session, batch)]
    local_tokens = int(sum(p.tokens.completion_mask.sum().item() for p in parts))
    totals = global_totals(accelerator, len(batch.rollouts), local_tokens)
    sums = UpdateSums()
    for part in parts:
        sums.add(mismatch_kl=part.mismatch_kl, correction_bounded=part.correction_bounded)
        if part.correction is not None:
            mask = part.tokens.completion_mask
            sums.add(correction_weight=(part.correction.expand_as(mask) * mask).sum().item())
    selects_by_entropy = algo.top_entropy_quantile < 1
    bonus_on = algo.entropy_bonus_on
    routing_stats = RoutingStats()
    for iteration in range(algo.num_iterations):
        last_iteration = iteration == algo.num_iterations - 1
        coef = applied_entropy_coef(session) if bonus_on else 0.0
        micro_batches = len(parts) * accelerator.num_processes  # as many on every process
        window = torch.zeros(2, dtype=torch.float64)  # entropy sum and tokens of the bonus, this step
        for k, part in enumerate(parts):
            with micro_batch(accelerator, model, last=k == len(parts) - 1), contextlib.ExitStack() as hooks:
                loss, terms, entropy = micro_batch_loss(session, part, advantages[part.rows], cfg, totals,
                                                        with_entropy=iteration == 0 or selects_by_entropy or bonus_on,
                                                        stats=routing_stats, entropy_coef=coef,
                                                        micro_batches=micro_batches, hooks=hooks)
                backward_share(accelerator, loss)  # inside the hooks: checkpointed layers route again
            bonus_tokens = terms.pop("bonus_entropy_tokens", None)
            if bonus_tokens is not None:
                window += torch.stack([terms.pop("bonus_entropy_sum"), bonus_tokens]).double().cpu()
            sums.add(loss=loss.item(), **{name: value.item() for name, value in terms.items()
                                          if last_iteration or not name.startswith("ratio_")})
            if entropy is not None and iteration == 0:
                sums.add(entropy=(entropy.detach() * part.tokens.completion_mask).sum().item())
        sums.add(grad_norm=optimizer_step(session))
        if algo.use_adaptive_entropy:
            adapt_entropy_coef(session, *summed(accelerator, window.tolist()))
    sums = sums.over_processes(accelerator)
    metrics = update_metrics(sums, totals, algo.num_iterations, algo.rollout_correction != "none", cfg.beta > 0,
                             mismatch_measured=measures_mismatch(session.recipe, batch.rollouts))
    if algo.off_policy_mask_threshold is not None:
        metrics["off_policy/masked_share"] = sums.off_policy_masked / (max(totals.num_sequences, 1) * algo.num_iterations)
    if cfg.variant.objective in ("clip_cov", "kl_cov"):
        metrics["covariance/selected_share"] = sums.covariance_selected / (max(totals.num_tokens, 1)
                                                                            * algo.num_iterations)
    if bonus_on:
        metrics["entropy/coef"] = session.entropy_coef
    if selects_by_entropy:
        metrics["entropy/kept_share"] = sums.entropy_kept / (max(totals.num_tokens, 1) * algo.num_iterations)
    return {**metrics, **routing_stats.metrics(), **moe_loss_metrics(session, sums, algo.num_iterations)}


def applied_entropy_coef(session: Session) -> float:
    """The entropy bonus's coefficient this optimizer step: the recipe's; under adaptive control,
    the current one while the last step's entropy was at or below the target, else 0 (TRL 1.16)."""
    algo = session.recipe.algo
    if algo.use_adaptive_entropy and session.last_world_entropy > algo.entropy_target:
        return 0.0
    return session.entropy_coef


def adapt_entropy_coef(session: Session, entropy_sum: float, tokens: float) -> None:
    """After an optimizer step: the step's mean entropy over every process's bonus tokens moves
    the coefficient for the next one (``losses.adapted_entropy_coef``)."""
    algo = session.recipe.algo
    entropy = entropy_sum / max(tokens, 1.0)
    session.entropy_coef = adapted_entropy_coef(session.entropy_coef, entropy, algo.entropy_target,
                                                algo.entropy_coef_delta, algo.entropy_coef_min,
                                                algo.entropy_coef_max)
    session.last_world_entropy = entropy


def micro_batch_rows(session: Session, batch: ScoredBatch) -> list[list[int]]:
    """The batch's rows in micro-batches: ``micro_batch_size`` consecutive rows, or with
    ``trainer.max_tokens_per_micro_batch`` rows of similar length up to that many padded tokens
    (as many micro-batches on every process). The loss is the same either way: each micro-batch
    adds its share of the batch's sums (``BatchTotals``)."""
    trainer, rollouts = session.recipe.trainer, batch.rollouts
    if trainer.max_tokens_per_micro_batch is None:
        return micro_batches(len(rollouts), trainer.micro_batch_size)
    lengths = [len(p) + len(c) for p, c in zip(rollouts.prompt_ids, rollouts.completion_ids)]
    parts = token_budget_batches(lengths, trainer.max_tokens_per_micro_batch, trainer.micro_batch_size)
    return split_to(parts, max(gathered_objects(session.accelerator, len(parts))))


def micro_batch_loss(session: Session, part: MicroBatch, advantages: torch.Tensor, cfg: LossConfig,
                     totals: BatchTotals, with_entropy: bool = False, stats: RoutingStats | None = None,
                     entropy_coef: float = 0.0, micro_batches: int = 1, hooks: contextlib.ExitStack | None = None
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
    """This micro-batch's share of the batch loss: policy loss, KL, the entropy bonus and the MoE
    router terms.

    The MoE terms (the model's load-balancing loss and the router z-loss) are means over the
    micro-batch, weighted by its share of the batch's sequences. The entropy bonus subtracts
    ``entropy_coef`` times the micro-batch's share of the batch's mean entropy (``losses.entropy_bonus``;
    ``micro_batches``: how many the batch is split into, over every process). ``hooks``: where the
    routers' hooks (routing replay, statistics) stay entered until the caller closes it, after the
    backward pass (gradient checkpointing runs the routers again there); without it they end with
    the forward.
    """
    bonus_on = session.recipe.algo.entropy_bonus_on
    recipe, model = session.recipe, session.model
    moe = recipe.moe
    router_terms = moe.router_losses_on
    ref = part.ref_logprobs
    if ref is None and cfg.beta > 0:  # before the routers are hooked: the reference routes on its own
        ref = reference_logprobs(session, part.tokens)
    replay = {"old_policy": part.routing, "rollout": part.engine_routing}.get(moe.routing_replay)
    hooked = routing(model, part.token_mask, replay=replay, compare=part.routing, engine=part.engine_routing,
                     stats=stats, replay_weights=part.engine_weights if replay is part.engine_routing else None)
    if hooks is not None:
        hooks.enter_context(hooked)  # on until the caller's backward pass is done
    with hooked if hooks is None else contextlib.nullcontext():
        scored = policy_forward(model, part.tokens, recipe.rollout.temperature, with_entropy, router_terms,
                                recipe.trainer.logits_chunk_tokens, entropy_grad=entropy_coef != 0)
    logprobs = scored.logprobs
    old = logprobs.detach() if part.old_logprobs is None else part.old_logprobs
    mask = part.tokens.completion_mask
    advantages = advantages.to(logprobs.device)
    entropy = scored.entropy
    keep, selected, chosen = loss_selection(session, part, logprobs, old, advantages,
                                            None if entropy is None else entropy.detach())
    loss, terms = policy_loss(logprobs, old, advantages, mask, cfg, totals, ref, part.correction, keep)
    terms = {**terms, **selected}
    if bonus_on:
        loss = loss - entropy_coef * entropy_bonus(entropy, mask, totals.num_tokens, micro_batches, chosen)
        effective = mask if chosen is None else mask * chosen
        terms = {**terms, "bonus_entropy_sum": (entropy.detach() * effective).sum(),
                 "bonus_entropy_tokens": effective.sum()}
    ratio = torch.exp(logprobs.detach() - old) * mask  # token ratios, for their spread
    terms = {**terms, "ratio_sum": ratio.sum(), "ratio_sq_sum": (ratio * ratio).sum()}
    if router_terms:
        share = len(part.rows) / totals.num_sequences
        aux = scored.aux_loss
        z = router_z_loss(scored.router_logits, part.token_mask)
        loss = loss + share * (moe.aux_loss_coef * aux + moe.router_z_loss_coef * z)
        terms = {**terms, "moe_aux_loss": share * aux.detach(), "moe_z_loss": share * z.detach()}
    return loss, terms, entropy


def loss_selection(session: Session, part: MicroBatch, logprobs: torch.Tensor, old: torch.Tensor,
                   advantages: torch.Tensor, entropy: torch.Tensor | None
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor], torch.Tensor | None]:
    """Which policy-loss terms count: the off-policy sequence mask (against the rollout engine's
    logprobs where it gave them, else the old policy's) and the top-entropy tokens (threshold over
    every process's tokens of this micro-batch, as TRL takes it). (keep or None, counts to log,
    the top-entropy tokens or None)."""
    algo, mask = session.recipe.algo, part.tokens.completion_mask
    keep, counts, chosen = None, {}, None
    if algo.off_policy_mask_threshold is not None:
        sampling = old if part.sampling_logprobs is None else part.sampling_logprobs
        keep = off_policy_sequences(advantages, logprobs, sampling, mask, algo.off_policy_mask_threshold)
        kept_tokens = (keep.expand_as(mask) * mask).sum(dim=1)
        counts["off_policy_masked"] = ((kept_tokens == 0) & (mask.sum(dim=1) > 0)).sum()  # rows dropped
    if algo.top_entropy_quantile < 1:
        pool = entropy_pool(session.accelerator, entropy, mask)
        chosen = high_entropy_tokens(entropy, mask, algo.top_entropy_quantile, pool)
        keep = chosen if keep is None else keep * chosen
        counts["entropy_kept"] = chosen.sum()
    return keep, counts, chosen


def entropy_pool(accelerator, entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The completion tokens' entropies of this micro-batch on every process."""
    local = entropy[mask.bool()].float()
    if accelerator.num_processes == 1:
        return local
    sentinel = -1e9  # entropies are never negative
    gathered = accelerator.gather(accelerator.pad_across_processes(local, dim=0, pad_index=sentinel))
    return gathered[gathered != sentinel]


def moe_loss_metrics(session: Session, sums: UpdateSums, iterations: int) -> dict[str, float]:
    moe = session.recipe.moe
    if not moe.router_losses_on:
        return {}
    return {"moe/aux_loss": sums.moe_aux_loss / iterations, "moe/z_loss": sums.moe_z_loss / iterations,
            "moe/aux_loss_coef": moe.aux_loss_coef}


def global_totals(accelerator, num_sequences: int, num_tokens: int) -> BatchTotals:
    """Sequence and completion-token counts of the batch across all processes."""
    sequences, tokens = summed(accelerator, [num_sequences, num_tokens])
    return BatchTotals(int(sequences), int(tokens))


def update_metrics(sums: UpdateSums, totals: BatchTotals, iterations: int,
                   corrected: bool, with_kl: bool, mismatch_measured: bool = False) -> dict[str, float]:
    """Per-token means (over every iteration) of what policy_loss summed; ``mismatch_measured``:
    the train/inference mismatch KL was measured without a rollout correction (``measures_mismatch``)."""
    tokens = max(totals.num_tokens, 1)
    metrics = {
        "loss": sums.loss / iterations, "grad_norm": sums.grad_norm / iterations,
        "entropy": sums.entropy / tokens,
        "clip_ratio/low": sums.clipped_low / (tokens * iterations),
        "clip_ratio/high": sums.clipped_high / (tokens * iterations),
        "clip_ratio/region": (sums.clipped_low + sums.clipped_high) / (tokens * iterations),
    }
    if with_kl:
        metrics["kl"] = sums.kl / (tokens * iterations)
    mean = sums.ratio_sum / tokens  # last iteration only
    metrics["ratio/mean"] = mean
    metrics["ratio/variance"] = sums.ratio_sq_sum / tokens - mean * mean
    if corrected or mismatch_measured:
        metrics["rollout/mismatch_kl"] = sums.mismatch_kl / tokens
    if corrected:
        metrics["rollout/correction_weight"] = sums.correction_weight / tokens
        metrics["rollout/correction_bounded"] = sums.correction_bounded / tokens
    return metrics


def prepare_micro_batch(session: Session, batch: ScoredBatch, rows: list[int]) -> MicroBatch:
    """Pad the rows; mask unscored (and, if asked, truncated) completions; compute old/reference logprobs when they must
    stay fixed across iterations."""
    recipe, rollouts = session.recipe, batch.rollouts
    algo = recipe.algo
    tokens = right_padded([rollouts.prompt_ids[i] for i in rows],
                          [rollouts.completion_ids[i] for i in rows],
                          session.tokenizer.pad_token_id, session.accelerator.device)
    # first: the correction statistics count kept tokens only; an unscored completion is never kept
    kept = [not unscored for unscored in batch.trained_total[rows].isnan().tolist()]
    if algo.mask_truncated_completions:
        kept = [k and rollouts.finish_reason[i] != "length" for k, i in zip(kept, rows)]
    if not all(kept):
        keep = torch.tensor(kept, dtype=tokens.completion_mask.dtype, device=tokens.completion_mask.device)
        tokens = dataclasses.replace(tokens, completion_mask=tokens.completion_mask * keep.unsqueeze(1))
    part = MicroBatch(rows, tokens, engine_routing=engine_tape(session, rollouts, rows, tokens),
                      engine_weights=engine_weights_tape(session, rollouts, rows, tokens))
    needs_old = (algo.num_iterations > 1 or algo.rollout_correction != "none"
                 or recipe.moe.routing_replay != "none")
    if needs_old:
        tape: Tape = {}
        with torch.no_grad(), routing(session.model, part.token_mask, record=tape, replay=part.engine_routing,
                                      replay_weights=part.engine_weights):
            old = sequence_logprobs(session.model, tokens, recipe.rollout.temperature,
                                    recipe.trainer.logits_chunk_tokens)
        ref = reference_logprobs(session, tokens) if algo.beta > 0 else None
        part = dataclasses.replace(part, old_logprobs=old, ref_logprobs=ref, routing=tape or None)
    if algo.rollout_correction != "none" and rollouts.rollout_logprobs is None:
        raise ValueError("algo.rollout_correction needs the rollout engine's logprobs, and this "
                         "backend returned none; set algo.rollout_correction: none")
    corrected, measured = algo.rollout_correction != "none", measures_mismatch(recipe, rollouts)
    wants_sampled = corrected or measured or algo.off_policy_mask_threshold is not None
    if wants_sampled and rollouts.rollout_logprobs is not None:
        part = dataclasses.replace(part, sampling_logprobs=completion_values(
            [rollouts.rollout_logprobs[i] for i in rows], tokens.completion_mask))
    sampled, mask = part.sampling_logprobs, tokens.completion_mask
    if corrected or measured:  # R3's effect on the mismatch is logged without a correction too
        part = dataclasses.replace(part, mismatch_kl=mismatch_kl(part.old_logprobs, sampled, mask).item())
    if corrected:
        weights, bounded = rollout_correction(part.old_logprobs, sampled, mask, algo.rollout_correction,
                                              algo.rollout_correction_cap, algo.rollout_correction_floor,
                                              algo.rollout_correction_mode)
        part = dataclasses.replace(part, correction=weights,
                                   correction_bounded=(bounded.expand_as(mask) * mask).sum().item())
    return part


def measures_mismatch(recipe, rollouts) -> bool:
    """Whether the update measures the train/inference mismatch KL with no rollout correction
    asking for it: under ``moe.routing_replay: rollout``, when the engine gave its logprobs."""
    return (recipe.moe.routing_replay == "rollout" and recipe.algo.rollout_correction == "none"
            and rollouts.rollout_logprobs is not None)


def engine_tape(session: Session, rollouts, rows: list[int], tokens: TokenBatch) -> Tape | None:
    """With ``moe.routing_replay: rollout``, the engine's routing of the micro-batch's tokens as
    the policy's routers see them (``rollout_routing.replay_tape``)."""
    if session.recipe.moe.routing_replay != "rollout":
        return None
    if rollouts.routing is None:
        raise ValueError("moe.routing_replay: rollout needs the rollout engine's routing, and these rollouts "
                         "carry none (a rollout worker started without moe.routing_replay: rollout?)")
    return micro_batch_tape(session, [rollouts.routing[i] for i in rows], tokens)


def engine_weights_tape(session: Session, rollouts, rows: list[int], tokens: TokenBatch) -> Tape | None:
    """With ``moe.replay_engine_weights``, the engine's combine weights of the replayed experts,
    laid out as ``engine_tape``."""
    if not session.recipe.moe.replay_engine_weights:
        return None
    if rollouts.routing_weights is None:
        raise ValueError("moe.replay_engine_weights needs the rollout engine's combine weights, and these "
                         "rollouts carry none")
    return micro_batch_tape(session, [rollouts.routing_weights[i] for i in rows], tokens, weights=True)


def micro_batch_tape(session: Session, recorded: list[torch.Tensor], tokens: TokenBatch, weights: bool = False) -> Tape:
    """The rows' recorded routing (or combine weights) as the policy's routers see the micro-batch."""
    names = [name for name, _ in routers(session.model)]
    return replay_tape(recorded, names, tokens.input_ids.shape[1], weights=weights)


@torch.no_grad()
def reference_logprobs(session: Session, tokens: TokenBatch) -> torch.Tensor:
    """Logprobs under the reference: the frozen copy, or the policy with LoRA disabled."""
    temperature, chunk = session.recipe.rollout.temperature, session.recipe.trainer.logits_chunk_tokens
    if session.reference is not None:
        return sequence_logprobs(session.reference, tokens, temperature, chunk)
    with session.policy.disable_adapter():
        return sequence_logprobs(session.model, tokens, temperature, chunk)
