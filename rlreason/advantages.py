"""Rewards -> advantages, as pure functions on tensors.

- ``baseline``: ``mean`` subtracts the group mean (GRPO, Shao et al., 2024); ``leave_one_out``
  subtracts the mean of the *other* G-1 completions of the group (RLOO, Ahmadian et al., 2024).
- ``scale``: ``group`` divides by the group's std (GRPO), ``batch`` by the batch's std
  (Hu et al., 2025, REINFORCE++ style), ``none`` not at all (Dr. GRPO, Liu et al., 2025).
- ``normalised_per_group``: group-normalise each reward function before the weighted sum, so a
  reward on a large scale cannot drown the others (GDPO; TRL's ``normalize_then_sum``).
- ``scored_totals``: a completion a reward could not score (None beside scores in its group) is
  left out of its group (NaN), never trained on as if it scored 0.
"""

from __future__ import annotations

import torch

EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group",
                     baseline: str = "mean", eps: float = EPS,
                     batch_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """Group-relative advantages ``(r - baseline) / (std + eps)`` over each group's scored
    completions; an unscored one (NaN, see ``scored_totals``) is left out of its group's
    statistics and gets advantage 0.

    Args:
        rewards: (B*G,) total reward of each completion, groups contiguous, NaN where unscored.
        group_size: G.
        scale: "group", "batch" or "none" (see the module doc).
        baseline: "mean" or "leave_one_out".
        batch_rewards: every reward of the global batch, for ``scale="batch"`` when ``rewards``
            is one process's share of it; default ``rewards``.
    Returns:
        (B*G,) advantages; exactly zero for a group whose scored rewards all tie, and for a
        completion with no other scored one in its group.
    """
    grouped = rewards.view(-1, group_size)  # (B, G)
    present = ~torch.isnan(grouped)
    values = torch.where(present, grouped, 0.0)
    count = present.sum(dim=1, keepdim=True)  # (B, 1)
    total = values.sum(dim=1, keepdim=True)
    mean = total / count.clamp(min=1)
    if baseline == "mean":
        centred = values - mean  # (B, G)
    elif baseline == "leave_one_out":
        if group_size < 2:
            raise ValueError("leave_one_out needs at least 2 completions per group")
        centred = values - (total - values) / (count - 1).clamp(min=1)
    else:
        raise ValueError(f"baseline must be mean or leave_one_out, got {baseline!r}")
    if scale == "group":
        spread = torch.where(present, values - mean, 0.0)
        std = ((spread ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()
        centred = centred / (std + eps)
    elif scale == "batch":
        everything = rewards if batch_rewards is None else batch_rewards
        scored = everything[~torch.isnan(everything)]
        centred = centred / ((scored.std() if len(scored) > 1 else 0.0) + eps)
    elif scale != "none":
        raise ValueError(f"scale must be group, batch or none, got {scale!r}")
    return torch.where(present & (count > 1), centred, 0.0).reshape(-1)


def scored_totals(per_function: dict[str, list[float | None]], total: list[float], group_size: int,
                  weighted: list[str]) -> tuple[torch.Tensor, dict[str, int]]:
    """The totals to train on: ``total`` with NaN for each completion left unscored, where a
    weighted function gave no score (None) while scoring other completions of its group (it
    failed, timed out or could not decide on that one). Such a completion is not trained on as
    if it scored 0: ``group_advantages`` leaves it out. A function with no score for a whole
    group does not apply to that prompt (a mixed dataset's other kind of row, TRL's meaning of
    None) and adds nothing to it.

    Args:
        per_function: name -> (B*G,) scores, groups contiguous.
        total: (B*G,) their weighted sum (``RewardSuite.total``).
        weighted: the functions whose weight is not 0 (the others are only logged).
    Returns:
        (B*G,) totals with NaN where unscored, and per function how many completions it left
        unscored.
    """
    names = [n for n in per_function if n in weighted]
    trained = torch.tensor(total, dtype=torch.float32)
    left_out = {}
    if not names:
        return trained, left_out
    missing = torch.isnan(score_table({n: per_function[n] for n in names})).view(-1, group_size, len(names))
    unscored = missing & ~missing.all(dim=1, keepdim=True)  # (B, G, K): missing beside scores
    for k, name in enumerate(names):
        if n := int(unscored[..., k].sum()):
            left_out[name] = n
    trained[unscored.any(dim=2).reshape(-1)] = float("nan")
    return trained, left_out


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
