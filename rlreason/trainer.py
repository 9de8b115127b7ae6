"""The GRPO training loop: rollout -> score -> advantages -> update -> sync."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

import torch

from rlreason.algo import BatchTotals, LossConfig, group_advantages, policy_loss
from rlreason.evaluate import columns_of
from rlreason.recipe import Recipe
from rlreason.sequences import micro_batches, right_padded, sequence_logprobs
from rlreason.session import (RunResult, Session, open_session, optimizer_step, run_steps,
                              tokenize_prompts)
from rlreason.types import Rollouts


def train(recipe: Recipe) -> RunResult:
    """Run GRPO as the recipe says; returns where the run and its final checkpoint are."""
    session = open_session(recipe, "grpo", with_reference=recipe.algo.beta > 0)
    return run_steps(session, grpo_step)


def grpo_step(session: Session, step: int) -> dict[str, float]:
    """One generation batch and one optimizer step; returns the logged metrics."""
    recipe, started = session.recipe, time.perf_counter()
    examples = session.sampler.next_batch()
    group_size = recipe.rollout.num_generations
    rollouts = session.engine.generate(tokenize_prompts(session, examples), n=group_size)
    generated = time.perf_counter()
    texts = session.tokenizer.batch_decode(rollouts.completion_ids, skip_special_tokens=True)
    rewards = session.suite.score(texts, columns_of(examples, repeat=group_size))
    total = torch.tensor(rewards.total, dtype=torch.float32)  # (B*G,)
    advantages = group_advantages(total, group_size, recipe.algo.scale_rewards)
    scored = time.perf_counter()
    update = update_policy(session, rollouts, advantages)
    session.engine.sync_weights()
    finished = time.perf_counter()
    metrics = {
        **reward_metrics(rewards.per_function, total, group_size),
        **update,
        "completion_length": sum(map(len, rollouts.completion_ids)) / len(rollouts),
        "truncated_ratio": rollouts.finish_reason.count("length") / len(rollouts),
        "lr": session.scheduler.get_last_lr()[0],
        "time/generate": generated - started, "time/reward": scored - generated,
        "time/update": finished - scored, "step_time": finished - started,
    }
    session.log.metrics(step, metrics)
    every = recipe.trainer.log_samples_every
    if every and (step % every == 0 or step == 1):
        session.log.samples(step, [{"prompt": examples[g].prompt, "completion": t, "reward": r}
                                   for t, r, g in zip(texts, rewards.total, rollouts.group_index)])
    return metrics


def reward_metrics(per_function: dict[str, list], total: torch.Tensor, group_size: int) -> dict:
    grouped = total.view(-1, group_size)  # (B, G)
    metrics = {"reward": total.mean().item(), "reward_std": total.std().item(),
               "frac_groups_tied": (grouped.std(dim=1) == 0).float().mean().item()}
    for name, values in per_function.items():
        present = torch.tensor([v for v in values if v is not None], dtype=torch.float32)
        metrics[f"reward/{name}"] = present.mean().item() if len(present) else float("nan")
        metrics[f"reward/{name}/std"] = present.std().item() if len(present) > 1 else 0.0
    return metrics


def update_policy(session: Session, rollouts: Rollouts, advantages: torch.Tensor) -> dict[str, float]:
    """Accumulate the loss over micro-batches, then clip and take one optimizer step.

    With one policy iteration per generation batch (mu = 1) the sampling policy *is* the
    current one, so old logprobs are the detached current ones: no extra forward pass.
    """
    recipe, accelerator, model = session.recipe, session.accelerator, session.model
    loss_cfg = LossConfig(recipe.algo.loss_type, recipe.algo.epsilon, recipe.algo.epsilon_high,
                          recipe.algo.beta, recipe.rollout.max_new_tokens)
    totals = BatchTotals(len(rollouts), sum(map(len, rollouts.completion_ids)))
    chunks = micro_batches(len(rollouts), recipe.trainer.micro_batch_size)
    sums: dict[str, float] = defaultdict(float)
    model.train()
    for k, idx in enumerate(chunks):
        batch = right_padded([rollouts.prompt_ids[i] for i in idx],
                             [rollouts.completion_ids[i] for i in idx],
                             session.tokenizer.pad_token_id, accelerator.device)
        sync = contextlib.nullcontext() if k == len(chunks) - 1 else accelerator.no_sync(model)
        with sync:
            logprobs = sequence_logprobs(model, batch, recipe.rollout.temperature)  # (n, L-1)
            reference = reference_logprobs(session, batch) if loss_cfg.beta > 0 else None
            loss, stats = policy_loss(logprobs, logprobs.detach(), advantages[idx].to(logprobs.device),
                                      batch.completion_mask, loss_cfg, totals, reference)
            accelerator.backward(loss)
        sums["loss"] += loss.item()
        for name, value in stats.items():
            sums[name] += value.item()
    grad_norm = optimizer_step(session)
    metrics = {"loss": sums["loss"], "grad_norm": grad_norm,
               "clip_ratio/low": sums["clipped_low"] / totals.num_tokens,
               "clip_ratio/high": sums["clipped_high"] / totals.num_tokens}
    if loss_cfg.beta > 0:
        metrics["kl"] = sums["kl"] / totals.num_tokens
    return metrics


@torch.no_grad()
def reference_logprobs(session: Session, batch) -> torch.Tensor:
    """Logprobs under the reference: the frozen copy, or the policy with LoRA disabled."""
    temperature = session.recipe.rollout.temperature
    if session.reference is not None:
        return sequence_logprobs(session.reference, batch, temperature)
    with session.policy.disable_adapter():
        return sequence_logprobs(session.model, batch, temperature)
