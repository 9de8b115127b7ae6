"""The GRPO training loop: rollout -> score -> advantages -> update -> sync."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass

import torch

from rlreason.advantages import group_advantages, total_rewards
from rlreason.batches import ScoredBatch, concatenate
from rlreason.evaluate import columns_of
from rlreason.losses import BatchTotals, LossConfig, mismatch_kl, policy_loss, rollout_correction
from rlreason.recipe import Recipe
from rlreason.sequences import (TokenBatch, completion_values, micro_batches, right_padded,
                                sequence_logprobs, sequence_scores)
from rlreason.session import (RunResult, Session, open_session, optimizer_step, run_steps,
                              tokenize_prompts)


def train(recipe: Recipe) -> RunResult:
    """Run GRPO as the recipe says; returns where the run and its final checkpoint are."""
    session = open_session(recipe, "grpo", with_reference=recipe.algo.beta > 0)
    return run_steps(session, grpo_step)


def grpo_step(session: Session, step: int) -> dict[str, float]:
    """One generation batch and ``num_iterations`` optimizer steps; returns the logged metrics."""
    recipe, started = session.recipe, time.perf_counter()
    batch, sampled, timings = collect_batch(session)
    scored = time.perf_counter()
    advantages = group_advantages(batch.total, batch.group_size, recipe.algo.scale_rewards,
                                  recipe.algo.baseline)
    update = update_policy(session, batch, advantages) if batch.num_groups else {}
    session.engine.sync_weights()
    finished = time.perf_counter()
    rollouts = sampled.rollouts
    metrics = {
        **reward_metrics(sampled),
        **update,
        "completion_length": sum(map(len, rollouts.completion_ids)) / len(rollouts),
        "truncated_ratio": rollouts.finish_reason.count("length") / len(rollouts),
        "lr": session.scheduler.get_last_lr()[0],
        "time/generate": timings["generate"], "time/reward": timings["reward"],
        "time/update": finished - scored, "step_time": finished - started,
    }
    if recipe.algo.dynamic_sampling:
        metrics["dynamic_sampling/rounds"] = sampled.num_groups / recipe.trainer.prompts_per_step
        metrics["dynamic_sampling/groups_kept"] = batch.num_groups / recipe.trainer.prompts_per_step
    session.log.metrics(step, metrics)
    every = recipe.trainer.log_samples_every
    if every and (step % every == 0 or step == 1):
        session.log.samples(step, [{"prompt": sampled.examples[g].prompt, "completion": t, "reward": r}
                                   for t, r, g in zip(sampled.texts, sampled.rewards.total,
                                                      rollouts.group_index)])
    return metrics


def collect_batch(session: Session) -> tuple[ScoredBatch, ScoredBatch, dict[str, float]]:
    """The batch to train on, everything sampled for it, and time spent generating/scoring.

    With dynamic sampling (DAPO), groups whose rewards all tie carry no signal; they are dropped
    and more prompts are sampled until ``prompts_per_step`` groups are kept or
    ``max_sampling_rounds`` generation rounds are spent (then the batch is smaller).
    """
    algo, wanted = session.recipe.algo, session.recipe.trainer.prompts_per_step
    rounds = algo.max_sampling_rounds if algo.dynamic_sampling else 1
    timings: dict[str, float] = defaultdict(float)
    sampled, kept, num_kept = [], [], 0
    for _ in range(rounds):
        batch = generate_and_score(session, timings)
        sampled.append(batch)
        if not algo.dynamic_sampling:
            return batch, batch, timings
        varied = batch.take_groups(batch.varied_groups()[:wanted - num_kept])
        kept.append(varied)
        num_kept += varied.num_groups
        if num_kept == wanted:
            break
    return concatenate(kept), concatenate(sampled), timings


def generate_and_score(session: Session, timings: dict[str, float]) -> ScoredBatch:
    recipe, started = session.recipe, time.perf_counter()
    examples = session.sampler.next_batch()
    group_size = recipe.rollout.num_generations
    rollouts = session.engine.generate(tokenize_prompts(session, examples), n=group_size)
    generated = time.perf_counter()
    texts = session.tokenizer.batch_decode(rollouts.completion_ids, skip_special_tokens=True)
    columns = {**columns_of(examples, repeat=group_size), "completion_ids": rollouts.completion_ids}
    rewards = session.suite.score(texts, columns)
    if recipe.algo.normalise_each_reward:
        per_function = torch.tensor([[float("nan") if v is None else v for v in values]
                                     for values in rewards.per_function.values()]).T  # (B*G, K)
        weights = torch.tensor([r.weight for r in session.suite.rewards])
        total = total_rewards(per_function, weights, group_size, normalise_each=True)
    else:
        total = torch.tensor(rewards.total, dtype=torch.float32)
    timings["generate"] += generated - started
    timings["reward"] += time.perf_counter() - generated
    return ScoredBatch(examples, rollouts, texts, rewards, total, group_size)


def reward_metrics(batch: ScoredBatch) -> dict[str, float]:
    total = torch.tensor(batch.rewards.total, dtype=torch.float32)
    grouped = total.view(-1, batch.group_size)  # (B, G)
    metrics = {"reward": total.mean().item(), "reward_std": total.std().item(),
               "frac_groups_tied": (grouped.std(dim=1) == 0).float().mean().item()}
    for name, values in batch.rewards.per_function.items():
        present = torch.tensor([v for v in values if v is not None], dtype=torch.float32)
        metrics[f"reward/{name}"] = present.mean().item() if len(present) else float("nan")
        metrics[f"reward/{name}/std"] = present.std().item() if len(present) > 1 else 0.0
    return metrics


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch and what stays fixed across the policy iterations on it."""

    rows: list[int]
    tokens: TokenBatch
    old_logprobs: torch.Tensor | None = None  # (n, L-1); None: the detached current ones
    ref_logprobs: torch.Tensor | None = None
    correction: torch.Tensor | None = None
    mismatch_kl: float = 0.0  # token sum, see losses.mismatch_kl


def update_policy(session: Session, batch: ScoredBatch, advantages: torch.Tensor) -> dict[str, float]:
    """``num_iterations`` optimizer steps on one generation batch, accumulating over micro-batches.

    With one iteration and no rollout correction the sampling policy *is* the current one, so
    the old logprobs are the detached current ones: no extra forward pass. Otherwise they are
    computed once, before the first update.
    """
    recipe, accelerator, model = session.recipe, session.accelerator, session.model
    algo = recipe.algo
    model.train()
    cfg = LossConfig(algo.loss_type, algo.epsilon, algo.epsilon_high, algo.delta, algo.beta,
                     algo.unbiased_kl, recipe.rollout.max_new_tokens)
    parts = [prepare_micro_batch(session, batch, rows)
             for rows in micro_batches(len(batch.rollouts), recipe.trainer.micro_batch_size)]
    totals = BatchTotals(len(batch.rollouts), int(sum(p.tokens.completion_mask.sum().item() for p in parts)))
    sums: dict[str, float] = defaultdict(float)
    for part in parts:
        sums["mismatch_kl"] += part.mismatch_kl
        if part.correction is not None:
            mask = part.tokens.completion_mask
            sums["correction_weight"] += (part.correction.expand_as(mask) * mask).sum().item()
    for iteration in range(algo.num_iterations):
        for k, part in enumerate(parts):
            sync = contextlib.nullcontext() if k == len(parts) - 1 else accelerator.no_sync(model)
            with sync:
                logprobs, entropy = sequence_scores(model, part.tokens, recipe.rollout.temperature,
                                                    with_entropy=iteration == 0)
                ref = part.ref_logprobs
                if ref is None and cfg.beta > 0:
                    ref = reference_logprobs(session, part.tokens)
                old = logprobs.detach() if part.old_logprobs is None else part.old_logprobs
                loss, stats = policy_loss(logprobs, old, advantages[part.rows].to(logprobs.device),
                                          part.tokens.completion_mask, cfg, totals, ref, part.correction)
                accelerator.backward(loss)
            sums["loss"] += loss.item()
            if entropy is not None:
                sums["entropy"] += (entropy * part.tokens.completion_mask).sum().item()
            for name, value in stats.items():
                sums[name] += value.item()
        sums["grad_norm"] += optimizer_step(session)
    return update_metrics(sums, totals, algo.num_iterations, algo.rollout_correction != "none", cfg.beta > 0)


def update_metrics(sums: dict[str, float], totals: BatchTotals, iterations: int,
                   corrected: bool, with_kl: bool) -> dict[str, float]:
    """Per-token means (over every iteration) of what policy_loss summed."""
    tokens = max(totals.num_tokens, 1)
    metrics = {
        "loss": sums["loss"] / iterations, "grad_norm": sums["grad_norm"] / iterations,
        "entropy": sums["entropy"] / tokens,
        "clip_ratio/low": sums["clipped_low"] / (tokens * iterations),
        "clip_ratio/high": sums["clipped_high"] / (tokens * iterations),
        "clip_ratio/region": (sums["clipped_low"] + sums["clipped_high"]) / (tokens * iterations),
    }
    if with_kl:
        metrics["kl"] = sums["kl"] / (tokens * iterations)
    if corrected:
        metrics["rollout/mismatch_kl"] = sums["mismatch_kl"] / tokens
        metrics["rollout/correction_weight"] = sums["correction_weight"] / tokens
    return metrics


def prepare_micro_batch(session: Session, batch: ScoredBatch, rows: list[int]) -> MicroBatch:
    """Pad the rows; mask truncated completions; compute old/reference logprobs when they must
    stay fixed across iterations."""
    recipe, rollouts = session.recipe, batch.rollouts
    algo = recipe.algo
    tokens = right_padded([rollouts.prompt_ids[i] for i in rows],
                          [rollouts.completion_ids[i] for i in rows],
                          session.tokenizer.pad_token_id, session.accelerator.device)
    part = MicroBatch(rows, tokens)
    needs_old = algo.num_iterations > 1 or algo.rollout_correction != "none"
    if needs_old:
        with torch.no_grad():
            old = sequence_logprobs(session.model, tokens, recipe.rollout.temperature)
        ref = reference_logprobs(session, tokens) if algo.beta > 0 else None
        part = dataclasses.replace(part, old_logprobs=old, ref_logprobs=ref)
    if algo.rollout_correction != "none":
        if rollouts.rollout_logprobs is None:
            raise ValueError("algo.rollout_correction needs the rollout engine's logprobs, and this "
                             "backend returned none; set algo.rollout_correction: none")
        sampled = completion_values([rollouts.rollout_logprobs[i] for i in rows], tokens.completion_mask)
        weights = rollout_correction(part.old_logprobs, sampled, tokens.completion_mask,
                                     algo.rollout_correction, algo.rollout_correction_cap)
        kl = mismatch_kl(part.old_logprobs, sampled, tokens.completion_mask).item()
        part = dataclasses.replace(part, correction=weights, mismatch_kl=kl)
    if algo.mask_truncated_completions:
        keep = torch.tensor([rollouts.finish_reason[i] != "length" for i in rows],
                            dtype=tokens.completion_mask.dtype, device=tokens.completion_mask.device)
        part = dataclasses.replace(part, tokens=dataclasses.replace(
            tokens, completion_mask=tokens.completion_mask * keep.unsqueeze(1)))
    return part


@torch.no_grad()
def reference_logprobs(session: Session, tokens: TokenBatch) -> torch.Tensor:
    """Logprobs under the reference: the frozen copy, or the policy with LoRA disabled."""
    temperature = session.recipe.rollout.temperature
    if session.reference is not None:
        return sequence_logprobs(session.reference, tokens, temperature)
    with session.policy.disable_adapter():
        return sequence_logprobs(session.model, tokens, temperature)
