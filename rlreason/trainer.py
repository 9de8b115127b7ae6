"""The GRPO training loop: sample -> generate -> score -> advantages -> update -> sync -> log.

Read top to bottom: ``train`` builds a session (``session.py``) and hands ``grpo_step`` to
``run_steps``, the loop every training command shares (SFT passes its own step). One step:

1. sample ``prompts_per_step`` prompts (``data.PromptSampler``; each process its share);
2. generate G completions each with the rollout engine (``rollout/``: vLLM or transformers);
3. score them with the recipe's reward functions (``rewards/``, weighted sum); a completion a
   reward could not score (None beside scores in its group) is left out of the update;
4. turn rewards into group-relative advantages (``advantages.py``);
5. update the policy: ``num_iterations`` optimizer steps over micro-batches (``update.py``,
   losses in ``losses.py``);
6. push the new weights to the engine; 7. log metrics and sample completions.

Where it departs from textbook GRPO (Shao et al., 2024), each behind a recipe key:
- the loss aggregation and clip ranges are those of ``algo.loss_type`` (``grpo``, ``bnpo``,
  ``dapo``, ``dr_grpo``, ``gspo``, ``gspo_token``), see ``loss_variants.VARIANTS``;
- the KL term is off by default (``algo.beta: 0``: no reference model loaded);
- ``algo.scale_rewards`` (group / batch / none), ``algo.baseline`` (mean / leave_one_out) and
  ``algo.normalise_each_reward`` change how rewards become advantages;
- ``algo.dynamic_sampling`` drops groups whose rewards tie and samples more prompts (DAPO);
- ``algo.mask_truncated_completions`` leaves completions cut at the length limit out of the loss;
- ``algo.rollout_correction`` reweights tokens by the trainer/engine probability ratio;
- ``moe.*``: router losses, frozen routers and routing replay for Mixture-of-Experts policies.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import torch

from rewards.registry import RewardError
from rewards.suite import RewardCancelled
from rlreason.advantages import group_advantages, normalised_per_group, scored_totals
from rlreason.batches import ScoredBatch, concatenate, sample_records, sampling_metrics
from rlreason.checkpoint import prune_checkpoints
from rlreason.data import score_completions
from rlreason.distributed import gathered, gathered_objects, summed
from rlreason.evaluate import EvalResult, evaluate
from rlreason.recipe import Recipe
from rlreason.resume import save_session
from rlreason.rollout.ahead import RolloutsAhead
from rlreason.session import Session, open_session
from rlreason.stopping import RunInterrupted, StopRequests
from rlreason.update import update_policy

log = logging.getLogger(__name__)
T = TypeVar("T")


def train(recipe: Recipe, resume: Path | None = None) -> RunResult:
    """Run GRPO as the recipe says (from checkpoint ``resume`` of the run, if given); returns
    where the run and its final checkpoint are."""
    session = open_session(recipe, "grpo", with_reference=recipe.algo.beta > 0, resume=resume,
                           updates_per_step=recipe.algo.num_iterations)
    if recipe.rollout.max_staleness:
        session.ahead = RolloutsAhead(session.engine, session.sampler, session.prompt_ids, recipe.rollout.num_generations,
                                      recipe.rollout.max_staleness, first_step=session.start_step + 1,
                                      last_step=recipe.trainer.max_steps)
    try:
        return run_steps(session, grpo_step)
    finally:
        if session.ahead is not None:
            session.ahead.close()


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    checkpoint: Path
    evals: list[tuple[int, EvalResult]]


def run_steps(session: Session, step_fn: Callable[[Session, int], dict]) -> RunResult:
    """Evaluate, take ``max_steps`` steps (evaluating and saving when due), save the final policy.

    SIGINT/SIGTERM end the run after the current step, with a resumable checkpoint. A step whose
    scoring fails (a reward that hangs, or fails on every row) or is abandoned on a signal (a
    reward call still running ``STOP_GRACE_S`` after it) saves the run as it was before that step
    (nothing has been updated yet) and stops, naming the checkpoint.
    """
    trainer = session.recipe.trainer
    if session.start_step == 0:
        agreed(session, lambda: evaluate_now(session, step=0))  # nothing trained yet: nothing to save
    with StopRequests(on_request=session.suite.request_stop) as stop:
        for step in range(session.start_step + 1, trainer.max_steps + 1):
            data_state = session.sampler.state()
            try:
                step_fn(session, step)
            except (RewardError, RewardCancelled) as err:
                raise saved_and_stopped(session, step - 1, data_state, err, stop) from err
            session.log.advance()
            if evaluation_due(session, step):
                try:
                    agreed(session, lambda: evaluate_now(session, step))
                except (RewardError, RewardCancelled) as err:
                    raise saved_and_stopped(session, step, session.sampler.state(), err, stop) from err
            stopping = summed(session.accelerator, [float(stop.signal_number is not None)])[0] > 0
            if stopping or (trainer.save_every and step % trainer.save_every == 0):
                checkpoint = save_session(session, f"checkpoint-{step}", step)
                if session.accelerator.is_main_process:
                    prune_checkpoints(session.recipe.run_dir, trainer.keep_checkpoints)
            if stopping:
                session.log.close()
                raise RunInterrupted(stop.signal_number or signal.SIGTERM, step, checkpoint)
    checkpoint = save_session(session, "final", trainer.max_steps, resumable=False)
    session.log.close()
    return RunResult(session.recipe.run_dir, checkpoint, session.evals)


def agreed(session: Session, attempt: Callable[[], T]) -> T:
    """``attempt()`` (scoring) on every process; where it failed or was cancelled on any one, every
    process raises (the same kind), so that all of them stop together, at the same collective
    save, instead of the others going on into an update the failed one never joins."""
    failure, result = None, None
    try:
        result = attempt()
    except (RewardError, RewardCancelled) as err:
        failure = err
    failed, cancelled = summed(session.accelerator, [float(failure is not None), float(isinstance(failure, RewardCancelled))])
    if cancelled:
        raise failure if isinstance(failure, RewardCancelled) else RewardCancelled("a stop was requested on another process")
    if failed:
        raise failure or RewardError("a reward failed on another process (its log names it); this one stops with it")
    return result


def saved_and_stopped(session: Session, step: int, data_state: dict, err: Exception,
                      stop: StopRequests) -> Exception:
    """Save the run as of ``step`` (the data sampler put back at ``data_state``, where the step
    after it found it, as that one failed before its update) and say why it stopped, where it is
    saved, and how to go on: RunInterrupted for a stop request, RewardError for a reward's fault."""
    session.sampler.restore(**data_state)
    checkpoint = save_session(session, f"checkpoint-{step}", step)
    session.log.close()
    if isinstance(err, RewardCancelled):
        return RunInterrupted(stop.signal_number or signal.SIGINT, step, checkpoint)
    return RewardError(f"{err}; the run is saved as of step {step}: {checkpoint} (continue with --resume)")


def grpo_step(session: Session, step: int) -> dict[str, float]:
    """One generation batch and ``num_iterations`` optimizer steps; returns the logged metrics."""
    recipe, started = session.recipe, time.perf_counter()
    batch, sampled, timings = collect_batch(session, step)  # steps 1-3: sample, generate, score
    scored = time.perf_counter()
    update = {}
    if batch.num_groups:  # dynamic sampling may find no group worth learning from
        scale = recipe.algo.scale_rewards  # "batch": by the std of every process's rewards
        everyone = gathered(session.accelerator, batch.trained_total) if scale == "batch" else None
        advantages = group_advantages(batch.trained_total, batch.group_size, scale, recipe.algo.baseline,
                                      batch_rewards=everyone)
        update = update_policy(session, batch, advantages)
    updated = time.perf_counter()
    sync_engine(session, version=step)
    finished = time.perf_counter()
    metrics = {
        **sampling_metrics(session.accelerator, sampled),
        **update,
        "lr": session.scheduler.get_last_lr()[0],
        "time/generate": timings["generate"], "time/reward": timings["reward"],
        "time/update": updated - scored, "time/sync": finished - updated,
        "step_time": finished - started,
    }
    if batch.rollouts.policy_versions is not None:
        metrics.update(staleness_metrics(session.accelerator, batch.rollouts.policy_versions, step))
    if recipe.rollout.max_staleness:
        metrics["time/overlap"], metrics["rollout/queue_depth"] = timings["overlap"], timings["queue_depth"]
    if recipe.algo.dynamic_sampling:
        processes = session.accelerator.num_processes  # both batches are this process's share
        metrics["dynamic_sampling/rounds"] = sampled.num_groups * processes / recipe.trainer.prompts_per_step
        metrics["dynamic_sampling/groups_kept"] = batch.num_groups * processes / recipe.trainer.prompts_per_step
    session.log.metrics(step, metrics)
    every = recipe.trainer.log_samples_every
    if every and (step % every == 0 or step == 1):
        session.log.samples(step, sample_records(sampled, session.prompts.text))
    return metrics


def collect_batch(session: Session, step: int) -> tuple[ScoredBatch, ScoredBatch, dict[str, float]]:
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
        batch = generate_and_score(session, timings, step)
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


def staleness_metrics(accelerator, versions: list[int], step: int) -> dict[str, float]:
    """How many updates behind the policy of ``step`` (version step-1) the batch's samples were
    generated, over every process."""
    behind = gathered(accelerator, torch.tensor([float(step - 1 - v) for v in versions]))
    return {"rollout/staleness_mean": behind.mean().item(), "rollout/staleness_max": behind.max().item()}


def share(accelerator, batch: ScoredBatch) -> ScoredBatch:
    """This process's contiguous, equal share of a global batch's groups."""
    rank, processes = accelerator.process_index, accelerator.num_processes
    each = batch.num_groups // processes
    return batch.take_groups(list(range(rank * each, (rank + 1) * each)))


def generate_and_score(session: Session, timings: dict[str, float], step: int) -> ScoredBatch:
    """Sample prompts, generate G completions each (or take those generated ahead for ``step``),
    score them (adding to ``timings``)."""
    recipe, started = session.recipe, time.perf_counter()
    group_size = recipe.rollout.num_generations
    if session.ahead is not None:
        ahead, timings["queue_depth"] = session.ahead.take(step)
        examples, rollouts = ahead.examples, ahead.rollouts
        session.sampler.restore(**ahead.sampler_state)  # what a checkpoint records: the data trained on
        timings["overlap"] += max(ahead.generate_s - (time.perf_counter() - started), 0.0)
    else:
        examples = session.sampler.next_batch()
        rollouts = session.engine.generate(session.prompt_ids(examples), n=group_size,
                                           seeds=session.sampler.last_seeds())
    generated = time.perf_counter()
    texts = session.tokenizer.batch_decode(rollouts.completion_ids, skip_special_tokens=True)
    rewards = agreed(session, lambda: score_completions(session.suite, examples, texts, group_size, rollouts.completion_ids))
    total = rewards.total
    if recipe.algo.normalise_each_reward:
        total = session.suite.total(normalised_per_group(rewards.per_function, group_size))
    weighted = [r.name for r in session.suite.rewards if r.weight != 0]
    trained, left_out = scored_totals(rewards.per_function, total, group_size, weighted)
    if left_out:
        log.warning("step %d: %d of %d completions are left out of the update, unscored (None beside scores "
                    "in their group) by %s", step, int(trained.isnan().sum()), len(trained),
                    ", ".join(f"{name!r} ({n})" for name, n in left_out.items()))
    timings["generate"] += generated - started
    timings["reward"] += time.perf_counter() - generated
    return ScoredBatch(examples, rollouts, texts, rewards, trained, group_size)


def evaluation_due(session: Session, step: int) -> bool:
    every, last = session.recipe.evaluation.every, session.recipe.trainer.max_steps
    return step == last or (every > 0 and step % every == 0)


def evaluate_now(session: Session, step: int) -> EvalResult:
    """Greedy held-out evaluation, logged to metrics.jsonl as ``eval/*``."""
    sync_engine(session, version=step)
    started = time.perf_counter()
    evaluation = session.recipe.evaluation
    result = evaluate(session.engine, session.prompts, session.splits.eval, session.suite, evaluation.metric,
                      evaluation.batch_size, session.recipe.rollout.max_new_tokens)
    session.evals.append((step, result))
    metrics = {f"eval/{k}": v for k, v in result.metrics.items()}
    metrics["eval/time"] = time.perf_counter() - started
    session.log.metrics(step, metrics)
    log.info("step %d: held-out accuracy %.3f", step, result.accuracy)
    return result


def sync_engine(session: Session, version: int) -> None:
    """Push the policy's weights (those after step ``version``'s update) to the rollout engine if
    an optimizer step changed them."""
    if not session.engine_in_sync:
        session.engine.sync_weights(version)
        session.engine_in_sync = True
