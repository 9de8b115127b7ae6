"""Contracts between the rooms of a training step (see DESIGN.md).

Plain dataclasses of lists and tensors. Rooms return new values instead of mutating
these (``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rollouts:
    """B*G completions, grouped: completions ``g*G .. g*G+G-1`` answer prompt ``g``.

    Attributes:
        prompt_ids: token ids of the prompt of each completion, unpadded. len B*G.
        completion_ids: generated token ids, unpadded, EOS included when it was generated.
        rollout_logprobs: per-token logprob of each generated token under the sampling
            distribution (logits / temperature), or None where the backend cannot give them.
        finish_reason: "stop" (EOS or a stop string) or "length" (hit max_new_tokens).
        group_index: index of the prompt (0..B-1) each completion answers.
        policy_versions: the policy version (training step) whose weights generated each
            completion, where the engine runs apart from the trainer (``rollout.mode: server``).
        routing: the experts each MoE layer routed each token to in the engine, one
            (layers, prompt + completion - 1, k) integer tensor per completion
            (``rollout_routing``), where recorded (``moe.routing_replay: rollout``).
        routing_weights: the engine's combine weights of those experts, same shape, bfloat16,
            where recorded (``moe.replay_engine_weights``).
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    rollout_logprobs: list[list[float]] | None
    finish_reason: list[str]
    group_index: list[int]
    policy_versions: list[int] | None = None
    routing: list | None = None
    routing_weights: list | None = None

    def __len__(self) -> int:
        return len(self.completion_ids)
