"""A scored generation batch: the group-level selection DAPO's dynamic sampling needs, and what
is logged about it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewards.suite import RewardBatch
from rlreason.advantages import score_table
from rlreason.distributed import gathered, gathered_objects
from rlreason.rollouts import Rollouts


@dataclass(frozen=True)
class ScoredBatch:
    """B prompts, their B*G completions (groups contiguous) and the completions' rewards.

    Attributes:
        rewards: each function's scores and their weighted sum, as logged.
        trained_total: (B*G,) the reward advantages are computed from: ``rewards.total``, or with
            ``algo.normalise_each_reward`` the weighted sum of group-normalised scores.
    """

    examples: list
    rollouts: Rollouts
    texts: list[str]
    rewards: RewardBatch
    trained_total: torch.Tensor
    group_size: int

    @property
    def num_groups(self) -> int:
        return len(self.examples)

    def varied_groups(self) -> list[int]:
        """Groups whose scored rewards are not all equal (the others have zero advantage)."""
        return torch.nonzero(~tied_groups(self.trained_total.view(-1, self.group_size))).flatten().tolist()

    def take_groups(self, groups: list[int]) -> ScoredBatch:
        """The batch restricted to ``groups`` (in that order), renumbered 0..len-1; the reward
        functions' ``counts`` stay those of the whole scoring call (they are not per completion)."""
        return assemble([(self, groups)])


def tied_groups(grouped: torch.Tensor) -> torch.Tensor:
    """(B,) whether each group's scored rewards (``grouped``: (B, G), NaN where unscored) all tie,
    fewer than two scored counting as tied."""
    scored = ~torch.isnan(grouped)
    highest = torch.where(scored, grouped, float("-inf")).amax(dim=1)
    lowest = torch.where(scored, grouped, float("inf")).amin(dim=1)
    return ~(highest > lowest)


def concatenate(batches: list[ScoredBatch]) -> ScoredBatch:
    """One batch holding the groups of ``batches`` in order."""
    return assemble([(b, list(range(b.num_groups))) for b in batches])


def assemble(picks: list[tuple[ScoredBatch, list[int]]]) -> ScoredBatch:
    """A batch of the chosen groups of each batch, in order, renumbered 0..len-1."""
    g = picks[0][0].group_size
    indices = [[group * g + k for group in groups for k in range(g)] for _, groups in picks]
    rows = [(b, i) for (b, _), chosen in zip(picks, indices) for i in chosen]
    names = picks[0][0].rewards.per_function

    def optional(field: str) -> list | None:
        """The rows' values of a Rollouts field some engines leave None (None unless all have it)."""
        if any(getattr(b.rollouts, field) is None for b, _ in picks):
            return None
        return [getattr(b.rollouts, field)[i] for b, i in rows]

    return ScoredBatch(
        examples=[b.examples[group] for b, groups in picks for group in groups],
        rollouts=Rollouts(
            prompt_ids=[b.rollouts.prompt_ids[i] for b, i in rows],
            completion_ids=[b.rollouts.completion_ids[i] for b, i in rows],
            rollout_logprobs=optional("rollout_logprobs"),
            finish_reason=[b.rollouts.finish_reason[i] for b, i in rows],
            group_index=[i // g for i in range(len(rows))],
            policy_versions=optional("policy_versions"),
            routing=optional("routing"),
            routing_weights=optional("routing_weights"),
        ),
        texts=[b.texts[i] for b, i in rows],
        rewards=RewardBatch(
            per_function={name: [b.rewards.per_function[name][i] for b, i in rows] for name in names},
            total=[b.rewards.total[i] for b, i in rows],
            counts=summed_counts([b.rewards.counts for b in {id(b): b for b, _ in picks}.values()]),
        ),
        trained_total=torch.cat([b.trained_total[chosen] for (b, _), chosen in zip(picks, indices)]),
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


def sampling_metrics(accelerator, batch: ScoredBatch) -> dict[str, float]:
    """Rewards (total and per function), completion lengths and truncation over the global batch."""
    rewards, rollouts = batch.rewards, batch.rollouts
    local = torch.cat([torch.tensor(rewards.total, dtype=torch.float32).unsqueeze(1),
                       batch.trained_total.unsqueeze(1), score_table(rewards.per_function),
                       torch.tensor([[len(ids), reason == "length"] for ids, reason
                                     in zip(rollouts.completion_ids, rollouts.finish_reason)])], dim=1)
    columns = gathered(accelerator, local).T  # (2 + K + 2, N over all processes)
    total, trained, lengths, truncated = columns[0], columns[1], columns[-2], columns[-1]
    scored = total[~trained.isnan()]  # unscored completions are in no reward mean
    metrics = {"reward": scored.mean().item() if len(scored) else float("nan"),
               "reward_std": scored.std().item() if len(scored) > 1 else 0.0,
               "unscored_completions": int(trained.isnan().sum()),  # completions left out of the update
               # the groups whose advantages are all zero (and that dynamic sampling drops)
               "frac_groups_tied": tied_groups(trained.view(-1, batch.group_size)).float().mean().item(),
               "completion_length": lengths.mean().item(), "truncated_ratio": truncated.mean().item()}
    for name, values in zip(rewards.per_function, columns[2:-2]):
        present = values[~values.isnan()]
        metrics[f"reward/{name}"] = present.mean().item() if len(present) else float("nan")
        metrics[f"reward/{name}/std"] = present.std().item() if len(present) > 1 else 0.0
    counted = summed_counts(gathered_objects(accelerator, rewards.counts))
    metrics.update({f"reward/{name}/{key}": n for name, keys in counted.items() for key, n in keys.items()})
    return metrics  # counts as e.g. reward/code_accuracy/sandbox_errors


def sample_records(batch: ScoredBatch, prompt_text=str) -> list[dict]:
    """One samples.jsonl record per completion: prompt (``prompt_text`` of it: as the model read
    it), completion, total (None for one left unscored) and per-function reward."""
    per_function, unscored = batch.rewards.per_function, batch.trained_total.isnan().tolist()
    return [{"prompt": prompt_text(batch.examples[g].prompt), "completion": text,
             "reward": None if unscored[i] else reward,
             "rewards": {name: values[i] for name, values in per_function.items()}}
            for i, (text, reward, g) in enumerate(zip(batch.texts, batch.rewards.total, batch.rollouts.group_index))]
