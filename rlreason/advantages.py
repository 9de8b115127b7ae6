"""Rewards -> advantages, as pure functions on tensors.

- ``baseline``: ``mean`` subtracts the group mean (GRPO, Shao et al., 2024); ``leave_one_out``
  subtracts the mean of the *other* G-1 completions of the group (RLOO, Ahmadian et al., 2024).
- ``scale``: ``group`` divides by the group's std (GRPO), ``batch`` by the batch's std
  (Hu et al., 2025, REINFORCE++ style), ``none`` not at all (Dr. GRPO, Liu et al., 2025).
- ``normalised_per_group``: group-normalise each reward function before the weighted sum, so a
  reward on a large scale cannot drown the others (GDPO; TRL's ``normalize_then_sum``).
"""

from __future__ import annotations

import torch

EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group",
                     baseline: str = "mean", eps: float = EPS,
                     batch_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """Group-relative advantages ``(r - baseline) / (std + eps)``.

    Args:
        rewards: (B*G,) total reward of each completion, groups contiguous.
        group_size: G.
        scale: "group", "batch" or "none" (see the module doc).
        baseline: "mean" or "leave_one_out".
        batch_rewards: every reward of the global batch, for ``scale="batch"`` when ``rewards``
            is one process's share of it; default ``rewards``.
    Returns:
        (B*G,) advantages; exactly zero for a group whose rewards all tie.
    """
    grouped = rewards.view(-1, group_size)  # (B, G)
    if baseline == "mean":
        centred = grouped - grouped.mean(dim=1, keepdim=True)  # (B, G)
    elif baseline == "leave_one_out":
        if group_size < 2:
            raise ValueError("leave_one_out needs at least 2 completions per group")
        others = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)  # (B, G)
        centred = grouped - others
    else:
        raise ValueError(f"baseline must be mean or leave_one_out, got {baseline!r}")
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / ((rewards if batch_rewards is None else batch_rewards).std() + eps)
    elif scale != "none":
        raise ValueError(f"scale must be group, batch or none, got {scale!r}")
    return centred.reshape(-1)


def normalised_per_group(per_function: dict[str, list[float | None]], group_size: int,
                         eps: float = EPS) -> dict[str, list[float | None]]:
    """Each reward function's scores normalised within each group, ``(x - mean) / (std + eps)``
    over the scores present; a missing score (None) stays missing. The weighted sum of the result
    (``RewardSuite.total``) is the reward with ``algo.normalise_each_reward``.

    Args:
        per_function: name -> (B*G,) scores, groups contiguous, None where a function did not apply.
    """
    names = list(per_function)
    table = score_table(per_function, torch.float64)  # (B*G, K)
    grouped = table.view(-1, group_size, len(names))  # (B, G, K)
    present = ~torch.isnan(grouped)
    count = present.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1, K)
    mean = torch.where(present, grouped, 0.0).sum(dim=1, keepdim=True) / count
    var = (torch.where(present, grouped - mean, 0.0) ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    scores = ((grouped - mean) / (var.sqrt() + eps)).view_as(table)
    return {n: [None if v != v else v for v in scores[:, k].tolist()] for k, n in enumerate(names)}


def score_table(per_function: dict[str, list[float | None]], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, K): each reward function's score per completion, NaN where it does not apply."""
    return torch.tensor([[float("nan") if v is None else v for v in values] for values in per_function.values()],
                        dtype=dtype).T
