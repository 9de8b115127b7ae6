"""A scored generation batch, and the group-level selection DAPO's dynamic sampling needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewards.suite import RewardBatch
from rlreason.types import Rollouts


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
        return assemble([(self, groups)])


def concatenate(batches: list[ScoredBatch]) -> ScoredBatch:
    """One batch holding the groups of ``batches`` in order."""
    return assemble([(b, list(range(b.num_groups))) for b in batches])


def assemble(picks: list[tuple[ScoredBatch, list[int]]]) -> ScoredBatch:
    """A batch of the chosen groups of each batch, in order, renumbered 0..len-1."""
    g = picks[0][0].group_size
    indices = [[group * g + k for group in groups for k in range(g)] for _, groups in picks]
    rows = [(b, i) for (b, _), chosen in zip(picks, indices) for i in chosen]
    logprobs = [b.rollouts.rollout_logprobs for b, _ in picks]
    names = picks[0][0].rewards.per_function
    return ScoredBatch(
        examples=[b.examples[group] for b, groups in picks for group in groups],
        rollouts=Rollouts(
            prompt_ids=[b.rollouts.prompt_ids[i] for b, i in rows],
            completion_ids=[b.rollouts.completion_ids[i] for b, i in rows],
            rollout_logprobs=(None if any(lp is None for lp in logprobs)
                              else [b.rollouts.rollout_logprobs[i] for b, i in rows]),
            finish_reason=[b.rollouts.finish_reason[i] for b, i in rows],
            group_index=[i // g for i in range(len(rows))],
        ),
        texts=[b.texts[i] for b, i in rows],
        rewards=RewardBatch(
            per_function={name: [b.rewards.per_function[name][i] for b, i in rows] for name in names},
            total=[b.rewards.total[i] for b, i in rows],
            counts=summed_counts([b.rewards.counts for b in {id(b): b for b, _ in picks}.values()]),
        ),
        total=torch.cat([b.total[chosen] for (b, _), chosen in zip(picks, indices)]),
        group_size=g,
    )


def summed_counts(counts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """What reward functions counted over several scoring calls, added up per function and key."""
    total: dict[str, dict[str, int]] = {}
    for per_function in counts:
        for name, counted in per_function.items():
            for key, n in counted.items():
                total.setdefault(name, {})[key] = total.get(name, {}).get(key, 0) + n
    return total
