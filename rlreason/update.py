"""One policy update on a scored generation batch: micro-batches, fixed logprobs, loss, steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch

from rlreason.batches import ScoredBatch
from rlreason.distributed import backward_share, gathered_objects, micro_batch, summed
from rlreason.losses import BatchTotals, LossConfig, mismatch_kl, policy_loss, rollout_correction
from rlreason.moe import RoutingStats, Tape, router_z_loss, routing
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
    routing: Tape | None = None  # experts the old policy selected (MoE), recorded with old_logprobs

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
                      max_completion_length=recipe.rollout.max_new_tokens)


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
        sums.add(mismatch_kl=part.mismatch_kl)
        if part.correction is not None:
            mask = part.tokens.completion_mask
            sums.add(correction_weight=(part.correction.expand_as(mask) * mask).sum().item())
    routing_stats = RoutingStats()
    for iteration in range(algo.num_iterations):
        last_iteration = iteration == algo.num_iterations - 1
        for k, part in enumerate(parts):
            with micro_batch(accelerator, model, last=k == len(parts) - 1):
                loss, terms, entropy = micro_batch_loss(session, part, advantages[part.rows], cfg, totals,
                                                        with_entropy=iteration == 0, stats=routing_stats)
                backward_share(accelerator, loss)
            sums.add(loss=loss.item(), **{name: value.item() for name, value in terms.items()
                                          if last_iteration or not name.startswith("ratio_")})
            if entropy is not None:
                sums.add(entropy=(entropy * part.tokens.completion_mask).sum().item())
        sums.add(grad_norm=optimizer_step(session))
    sums = sums.over_processes(accelerator)
    metrics = update_metrics(sums, totals, algo.num_iterations, algo.rollout_correction != "none", cfg.beta > 0)
    return {**metrics, **routing_stats.metrics(), **moe_loss_metrics(session, sums, algo.num_iterations)}


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
                     totals: BatchTotals, with_entropy: bool = False, stats: RoutingStats | None = None
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
    """This micro-batch's share of the batch loss: policy loss, KL, and the MoE router terms.

    The MoE terms (the model's load-balancing loss and the router z-loss) are means over the
    micro-batch, weighted by its share of the batch's sequences.
    """
    recipe, model = session.recipe, session.model
    moe = recipe.moe
    router_terms = moe.router_losses_on
    replay = part.routing if moe.routing_replay == "old_policy" else None
    with routing(model, part.token_mask, replay=replay, compare=part.routing, stats=stats):
        scored = policy_forward(model, part.tokens, recipe.rollout.temperature, with_entropy, router_terms)
    logprobs = scored.logprobs
    ref = part.ref_logprobs
    if ref is None and cfg.beta > 0:
        ref = reference_logprobs(session, part.tokens)
    old = logprobs.detach() if part.old_logprobs is None else part.old_logprobs
    mask = part.tokens.completion_mask
    loss, terms = policy_loss(logprobs, old, advantages.to(logprobs.device), mask,
                              cfg, totals, ref, part.correction)
    ratio = torch.exp(logprobs.detach() - old) * mask  # token ratios, for their spread
    terms = {**terms, "ratio_sum": ratio.sum(), "ratio_sq_sum": (ratio * ratio).sum()}
    if router_terms:
        share = len(part.rows) / totals.num_sequences
        aux = scored.aux_loss
        z = router_z_loss(scored.router_logits, part.token_mask)
        loss = loss + share * (moe.aux_loss_coef * aux + moe.router_z_loss_coef * z)
        terms = {**terms, "moe_aux_loss": share * aux.detach(), "moe_z_loss": share * z.detach()}
    return loss, terms, scored.entropy


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
                   corrected: bool, with_kl: bool) -> dict[str, float]:
    """Per-token means (over every iteration) of what policy_loss summed."""
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
    if corrected:
        metrics["rollout/mismatch_kl"] = sums.mismatch_kl / tokens
        metrics["rollout/correction_weight"] = sums.correction_weight / tokens
    return metrics


def prepare_micro_batch(session: Session, batch: ScoredBatch, rows: list[int]) -> MicroBatch:
    """Pad the rows; mask truncated completions; compute old/reference logprobs when they must
    stay fixed across iterations."""
    recipe, rollouts = session.recipe, batch.rollouts
    algo = recipe.algo
    tokens = right_padded([rollouts.prompt_ids[i] for i in rows],
                          [rollouts.completion_ids[i] for i in rows],
                          session.tokenizer.pad_token_id, session.accelerator.device)
    if algo.mask_truncated_completions:  # first: the correction statistics count kept tokens only
        keep = torch.tensor([rollouts.finish_reason[i] != "length" for i in rows],
                            dtype=tokens.completion_mask.dtype, device=tokens.completion_mask.device)
        tokens = dataclasses.replace(tokens, completion_mask=tokens.completion_mask * keep.unsqueeze(1))
    part = MicroBatch(rows, tokens)
    needs_old = (algo.num_iterations > 1 or algo.rollout_correction != "none"
                 or recipe.moe.routing_replay != "none")
    if needs_old:
        tape: Tape = {}
        with torch.no_grad(), routing(session.model, part.token_mask, record=tape):
            old = sequence_logprobs(session.model, tokens, recipe.rollout.temperature)
        ref = reference_logprobs(session, tokens) if algo.beta > 0 else None
        part = dataclasses.replace(part, old_logprobs=old, ref_logprobs=ref, routing=tape or None)
    if algo.rollout_correction != "none":
        if rollouts.rollout_logprobs is None:
            raise ValueError("algo.rollout_correction needs the rollout engine's logprobs, and this "
                             "backend returned none; set algo.rollout_correction: none")
        sampled = completion_values([rollouts.rollout_logprobs[i] for i in rows], tokens.completion_mask)
        weights = rollout_correction(part.old_logprobs, sampled, tokens.completion_mask,
                                     algo.rollout_correction, algo.rollout_correction_cap)
        kl = mismatch_kl(part.old_logprobs, sampled, tokens.completion_mask).item()
        part = dataclasses.replace(part, correction=weights, mismatch_kl=kl)
    return part


@torch.no_grad()
def reference_logprobs(session: Session, tokens: TokenBatch) -> torch.Tensor:
    """Logprobs under the reference: the frozen copy, or the policy with LoRA disabled."""
    temperature = session.recipe.rollout.temperature
    if session.reference is not None:
        return sequence_logprobs(session.reference, tokens, temperature)
    with session.policy.disable_adapter():
        return sequence_logprobs(session.model, tokens, temperature)
