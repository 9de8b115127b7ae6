"""A scored generation batch, and the group-level selection DAPO's dynamic sampling needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlreason.types import RewardBatch, Rollouts


@dataclass(frozen=True)
class ScoredBatch:
    """B prompts, their B*G completions (groups contiguous) and the completions' rewards.

    Attributes:
        total: (B*G,) the reward advantages are computed from.
    """

    examples: list
    rollouts: Rollouts
    texts: list[str]
    rewards: RewardBatch
    total: torch.Tensor
    group_size: int

    @property
    def num_groups(self) -> int:
        return len(self.examples)

    def varied_groups(self) -> list[int]:
        """Groups whose rewards are not all equal (the others have zero advantage)."""
        grouped = self.total.view(-1, self.group_size)  # (B, G)
        return torch.nonzero(grouped.amax(dim=1) > grouped.amin(dim=1)).flatten().tolist()

    def take_groups(self, groups: list[int]) -> ScoredBatch:
        """The batch restricted to ``groups`` (in that order), renumbered 0..len-1."""
        g = self.group_size
        rows = [group * g + k for group in groups for k in range(g)]
        r = self.rollouts
        return ScoredBatch(
            examples=[self.examples[group] for group in groups],
            rollouts=Rollouts(
                prompt_ids=[r.prompt_ids[i] for i in rows],
                completion_ids=[r.completion_ids[i] for i in rows],
                rollout_logprobs=None if r.rollout_logprobs is None else [r.rollout_logprobs[i] for i in rows],
                finish_reason=[r.finish_reason[i] for i in rows],
                group_index=[i // g for i in range(len(rows))],
            ),
            texts=[self.texts[i] for i in rows],
            rewards=RewardBatch(
                per_function={name: [values[i] for i in rows]
                              for name, values in self.rewards.per_function.items()},
                total=[self.rewards.total[i] for i in rows],
            ),
            total=self.total[rows] if rows else self.total[:0],
            group_size=g,
        )


def concatenate(batches: list[ScoredBatch]) -> ScoredBatch:
    """One batch holding the groups of ``batches`` in order."""
    first = batches[0]
    logprobs = [b.rollouts.rollout_logprobs for b in batches]
    return ScoredBatch(
        examples=[e for b in batches for e in b.examples],
        rollouts=Rollouts(
            prompt_ids=[p for b in batches for p in b.rollouts.prompt_ids],
            completion_ids=[c for b in batches for c in b.rollouts.completion_ids],
            rollout_logprobs=None if any(lp is None for lp in logprobs) else [x for lp in logprobs for x in lp],
            finish_reason=[f for b in batches for f in b.rollouts.finish_reason],
            group_index=[i // first.group_size for i in range(sum(len(b.rollouts) for b in batches))],
        ),
        texts=[t for b in batches for t in b.texts],
        rewards=RewardBatch(
            per_function={name: [v for b in batches for v in b.rewards.per_function[name]]
                          for name in first.rewards.per_function},
            total=[t for b in batches for t in b.rewards.total],
        ),
        total=torch.cat([b.total for b in batches]),
        group_size=first.group_size,
    )
