"""The GRPO training loop: rollout -> score -> advantages -> update -> sync."""

from __future__ import annotations

import time
from collections import defaultdict

import torch

from rlreason.advantages import group_advantages, total_rewards
from rlreason.batches import ScoredBatch, concatenate
from rlreason.evaluate import columns_of
from rlreason.recipe import Recipe, RecipeError
from rlreason.session import (RunResult, Session, open_session, run_steps, sync_engine,
                              tokenize_prompts)
from rlreason.update import update_policy


def train(recipe: Recipe) -> RunResult:
    """Run GRPO as the recipe says; returns where the run and its final checkpoint are."""
    session = open_session(recipe, "grpo", with_reference=recipe.algo.beta > 0)
    if recipe.algo.dynamic_sampling and session.accelerator.num_processes > 1:
        raise RecipeError("algo.dynamic_sampling: not supported with more than one process yet "
                          "(processes would keep different numbers of groups)")
    return run_steps(session, grpo_step)


def grpo_step(session: Session, step: int) -> dict[str, float]:
    """One generation batch and ``num_iterations`` optimizer steps; returns the logged metrics."""
    recipe, started = session.recipe, time.perf_counter()
    batch, sampled, timings = collect_batch(session)
    scored = time.perf_counter()
    update = {}
    if batch.num_groups:  # dynamic sampling may find no group worth learning from
        everyone = session.accelerator.gather(batch.total) if session.accelerator.num_processes > 1 else None
        advantages = group_advantages(batch.total, batch.group_size, recipe.algo.scale_rewards,
                                      recipe.algo.baseline, batch_rewards=everyone)
        update = update_policy(session, batch, advantages)
    updated = time.perf_counter()
    sync_engine(session)
    finished = time.perf_counter()
    rollouts = sampled.rollouts
    metrics = {
        **reward_metrics(sampled),
        **update,
        "completion_length": sum(map(len, rollouts.completion_ids)) / len(rollouts),
        "truncated_ratio": rollouts.finish_reason.count("length") / len(rollouts),
        "lr": session.scheduler.get_last_lr()[0],
        "time/generate": timings["generate"], "time/reward": timings["reward"],
        "time/update": updated - scored, "time/sync": finished - updated,
        "step_time": finished - started,
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
    rewards = session.suite.score(texts, columns_of(examples, group_size, rollouts.completion_ids))
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
