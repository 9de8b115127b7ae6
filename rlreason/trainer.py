"""The GRPO training loop: rollout -> score -> advantages -> update -> sync."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import torch

from rewards.suite import RewardBatch
from rlreason.advantages import group_advantages, total_rewards
from rlreason.batches import ScoredBatch, concatenate, summed_counts
from rlreason.data import columns_of
from rlreason.distributed import gathered, gathered_objects
from rlreason.recipe import Recipe
from rlreason.session import (RunResult, Session, open_session, run_steps, sync_engine,
                              tokenize_prompts)
from rlreason.update import update_policy


def train(recipe: Recipe, resume: Path | None = None) -> RunResult:
    """Run GRPO as the recipe says (from checkpoint ``resume`` of the run, if given); returns
    where the run and its final checkpoint are."""
    session = open_session(recipe, "grpo", with_reference=recipe.algo.beta > 0, resume=resume)
    return run_steps(session, grpo_step)


def grpo_step(session: Session, step: int) -> dict[str, float]:
    """One generation batch and ``num_iterations`` optimizer steps; returns the logged metrics."""
    recipe, started = session.recipe, time.perf_counter()
    batch, sampled, timings = collect_batch(session)
    scored = time.perf_counter()
    update = {}
    if batch.num_groups:  # dynamic sampling may find no group worth learning from
        advantages = group_advantages(batch.total, batch.group_size, recipe.algo.scale_rewards,
                                      recipe.algo.baseline, batch_rewards=gathered(session.accelerator, batch.total))
        update = update_policy(session, batch, advantages)
    updated = time.perf_counter()
    sync_engine(session)
    finished = time.perf_counter()
    metrics = {
        **sampling_metrics(session, sampled),
        **update,
        "lr": session.scheduler.get_last_lr()[0],
        "time/generate": timings["generate"], "time/reward": timings["reward"],
        "time/update": updated - scored, "time/sync": finished - updated,
        "step_time": finished - started,
    }
    if recipe.algo.dynamic_sampling:
        processes = session.accelerator.num_processes  # both batches are this process's share
        metrics["dynamic_sampling/rounds"] = sampled.num_groups * processes / recipe.trainer.prompts_per_step
        metrics["dynamic_sampling/groups_kept"] = batch.num_groups * processes / recipe.trainer.prompts_per_step
    session.log.metrics(step, metrics)
    every = recipe.trainer.log_samples_every
    if every and (step % every == 0 or step == 1):
        per_function = sampled.rewards.per_function
        session.log.samples(step, [{"prompt": sampled.examples[g].prompt, "completion": t, "reward": r,
                                    "rewards": {name: values[i] for name, values in per_function.items()}}
                                   for i, (t, r, g) in enumerate(zip(sampled.texts, sampled.rewards.total,
                                                                     sampled.rollouts.group_index))])
    return metrics


def collect_batch(session: Session) -> tuple[ScoredBatch, ScoredBatch, dict[str, float]]:
    """This process's share of the batch to train on, what it sampled for it, and time spent
    generating/scoring.

    With dynamic sampling (DAPO), groups whose rewards all tie carry no signal; they are dropped
    and more prompts are sampled until ``prompts_per_step`` groups are kept or
    ``max_sampling_rounds`` generation rounds are spent (then the batch is smaller). The groups
    are chosen from the global batch, as one process would choose them, then shared out evenly
    (a short batch drops the few groups that would not share evenly).
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
        everyone = concatenate(gathered_objects(session.accelerator, batch))
        varied = everyone.take_groups(everyone.varied_groups()[:wanted - num_kept])
        kept.append(varied)
        num_kept += varied.num_groups
        if num_kept == wanted:
            break
    return share(session.accelerator, concatenate(kept)), concatenate(sampled), timings


def share(accelerator, batch: ScoredBatch) -> ScoredBatch:
    """This process's contiguous, equal share of a global batch's groups."""
    rank, processes = accelerator.process_index, accelerator.num_processes
    each = batch.num_groups // processes
    return batch.take_groups(list(range(rank * each, (rank + 1) * each)))


def generate_and_score(session: Session, timings: dict[str, float]) -> ScoredBatch:
    recipe, started = session.recipe, time.perf_counter()
    examples = session.sampler.next_batch()
    group_size = recipe.rollout.num_generations
    rollouts = session.engine.generate(tokenize_prompts(session, examples), n=group_size,
                                       seeds=session.sampler.last_seeds())
    generated = time.perf_counter()
    texts = session.tokenizer.batch_decode(rollouts.completion_ids, skip_special_tokens=True)
    rewards = session.suite.score(texts, columns_of(examples, group_size, rollouts.completion_ids))
    if recipe.algo.normalise_each_reward:
        per_function = reward_table(rewards)
        weights = torch.tensor([r.weight for r in session.suite.rewards])
        total = total_rewards(per_function, weights, group_size, normalise_each=True)
    else:
        total = torch.tensor(rewards.total, dtype=torch.float32)
    timings["generate"] += generated - started
    timings["reward"] += time.perf_counter() - generated
    return ScoredBatch(examples, rollouts, texts, rewards, total, group_size)


def sampling_metrics(session: Session, batch: ScoredBatch) -> dict[str, float]:
    """Rewards (total and per function), completion lengths and truncation over the global batch."""
    rewards, rollouts = batch.rewards, batch.rollouts
    local = torch.cat([torch.tensor(rewards.total, dtype=torch.float32).unsqueeze(1), reward_table(rewards),
                       torch.tensor([[len(ids), reason == "length"] for ids, reason
                                     in zip(rollouts.completion_ids, rollouts.finish_reason)])], dim=1)
    columns = gathered(session.accelerator, local).T  # (1 + K + 2, N over all processes)
    total, lengths, truncated = columns[0], columns[-2], columns[-1]
    grouped = total.view(-1, batch.group_size)  # (B, G)
    metrics = {"reward": total.mean().item(), "reward_std": total.std().item(),
               "frac_groups_tied": (grouped.std(dim=1) == 0).float().mean().item(),
               "completion_length": lengths.mean().item(), "truncated_ratio": truncated.mean().item()}
    for name, values in zip(rewards.per_function, columns[1:-2]):
        present = values[~values.isnan()]
        metrics[f"reward/{name}"] = present.mean().item() if len(present) else float("nan")
        metrics[f"reward/{name}/std"] = present.std().item() if len(present) > 1 else 0.0
    counted = summed_counts(gathered_objects(session.accelerator, rewards.counts))
    metrics.update({f"reward/{name}/{key}": n for name, keys in counted.items() for key, n in keys.items()})
    return metrics  # counts as e.g. reward/code_accuracy/sandbox_errors


def reward_table(rewards: RewardBatch) -> torch.Tensor:
    """(N, K): each reward function's value per completion, NaN where it does not apply."""
    return torch.tensor([[float("nan") if v is None else v for v in values]
                         for values in rewards.per_function.values()], dtype=torch.float32).T
