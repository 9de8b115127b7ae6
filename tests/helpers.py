"""Helpers several test modules share: running the CLI, the tiny-model overrides, reference
computations the tests compare against."""

import math
import subprocess
import sys
from collections import Counter

import torch

from rlreason.moe import RoutingStats, routers, routing
from rlreason.pass_at_k import k_values
from rlreason.sequences import right_padded, sequence_logprobs
from rlreason.trainer import collect_batch
from rlreason.update import prepare_micro_batch
from tests.conftest import ROOT, TINY

TINY_SET = [f"--set=model.tiny.{k}={v}" for k, v in TINY.items()]
FIXED_SEQUENCE = [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 4]  # a prompt token, then a completion to score


def rlreason(*args, timeout=300):
    """The CLI in a subprocess, as a user runs it from the repository root."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def assert_engine_follows_policy_through_three_steps(session) -> None:
    """The engine's logprobs of a fixed sequence equal the trainer's (within 1e-4) before and after
    three synced GRPO steps that move them."""
    from rlreason.trainer import grpo_step

    before = torch.tensor(session.engine.logprobs_of(FIXED_SEQUENCE))
    assert torch.allclose(before, trainer_logprobs(session, FIXED_SEQUENCE), atol=1e-4)
    for step in (1, 2, 3):
        metrics = grpo_step(session, step)
        assert metrics["time/sync"] > 0
    after = torch.tensor(session.engine.logprobs_of(FIXED_SEQUENCE))
    assert (after - before).abs().max() > 1e-3, "three steps should move the policy"
    assert torch.allclose(after, trainer_logprobs(session, FIXED_SEQUENCE), atol=1e-4)


def trainer_logprobs(session, ids: list[int]) -> torch.Tensor:
    """The policy's logprobs of ``ids[1:]`` after ``ids[0]``, as the trainer computes them."""
    batch = right_padded([ids[:1]], [ids[1:]], session.tokenizer.pad_token_id)
    with torch.no_grad():
        return sequence_logprobs(session.model.eval(), batch)[0]


def eager_to_end(model, prompts: list[list[int]], token: int, scale: float = 1.0) -> None:
    """Point ``token``'s output row along the mean final hidden state of ``prompts``, so the
    random-init model ends its completions every few tokens (about 1 in 4 at ``scale`` 1)."""
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([sum(prompts, [])])).last_hidden_state[0]  # (L, H)
        model.lm_head.weight[token] = scale * torch.nn.functional.normalize(hidden.mean(0), dim=0)


def recomputed(samples: list[dict], k: int, metric: str = "math_accuracy") -> dict[str, float]:
    """pass@j and maj@k from eval_samples.jsonl rows, by the closed form and a plain vote."""
    problems = sorted({row["problem"] for row in samples})
    by_problem = {p: [row for row in samples if row["problem"] == p] for p in problems}
    out = {}
    for j in k_values(k):
        out[f"pass@{j}"] = sum(1.0 - math.comb(k - sum(r["scores"][metric] == 1.0 for r in rows), j) / math.comb(k, j)
                               for rows in by_problem.values()) / len(problems)
    votes = 0
    for rows in by_problem.values():
        counted = Counter(r["answer"] for r in rows if r["answer"] is not None)
        if counted:
            top = max(counted.values())
            winner = next(r["answer"] for r in rows if r["answer"] is not None and counted[r["answer"]] == top)
            votes += any(r["scores"][metric] == 1.0 for r in rows if r["answer"] == winner)
    out[f"maj@{k}"] = votes / len(problems)
    return out


# Routing replay from the rollout engine (moe.routing_replay: rollout)

def engine_comparison(session, part, replay, replay_weights=None):
    """The trainer's forward of ``part`` (replaying ``replay``, and ``replay_weights`` if given):
    its logprobs, the selections it used, and how often its routers' own choice differed from the
    engine's."""
    stats, used = RoutingStats(), {}
    with torch.no_grad(), routing(session.model, part.token_mask, replay=replay, record=used,
                                  engine=part.engine_routing, stats=stats, replay_weights=replay_weights):
        logprobs = sequence_logprobs(session.model, part.tokens)
    return logprobs, used, stats


def recorded_batch(session):
    """One step's batch from the session's engine, each completion carrying (layers, P + L - 1, k)
    uint8 routing, and all of it as one micro-batch."""
    batch, _, _ = collect_batch(session, step=1)
    layers = len(routers(session.model))
    for prompt, completion, routed in zip(batch.rollouts.prompt_ids, batch.rollouts.completion_ids,
                                          batch.rollouts.routing):
        assert routed.shape[:2] == (layers, len(prompt) + len(completion) - 1) and routed.dtype == torch.uint8
    return batch, prepare_micro_batch(session, batch, list(range(len(batch.rollouts.completion_ids))))


def assert_engine_routing_is_recomputed(session, batch, part) -> dict:
    """Every recorded token of every layer is compared with the trainer's own routing; its metrics."""
    _, _, stats = engine_comparison(session, part, replay=None)
    layers = len(routers(session.model))
    assert sum(stats.engine_compared.values()) == layers * sum(r.shape[1] for r in batch.rollouts.routing)
    return stats.metrics()


def assert_trainer_replays_the_engines_routing(session, part):
    """Under replay, every recorded token of every layer used the engine's experts."""
    _, used, _ = engine_comparison(session, part, part.engine_routing)
    for name, selections in part.engine_routing.items():
        recorded = selections[0][:, 0] >= 0
        assert torch.equal(used[name][0][recorded].sort(dim=-1).values, selections[0][recorded].sort(dim=-1).values)
