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
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    rollout_logprobs: list[list[float]] | None
    finish_reason: list[str]
    group_index: list[int]

    def __len__(self) -> int:
        return len(self.completion_ids)
