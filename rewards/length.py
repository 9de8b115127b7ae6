"""Length shaping rewards."""

from __future__ import annotations

from rewards.registry import RewardError, reward


@reward("overlong_penalty")
def overlong_penalty(completions: list[str], completion_ids: list[list[int]] | None = None,
                     max_completion_length: int | None = None, cache_length: int | None = None,
                     **columns) -> list[float]:
    """DAPO's soft overlong punishment (Yu et al., 2025, eq. 13), on completion token counts.

    0 up to ``max_completion_length - cache_length`` tokens, then falling linearly to -1 at
    ``max_completion_length``; -1 beyond it. Set ``max_completion_length`` to the rollout's
    ``max_new_tokens`` and ``cache_length`` to the soft band (the paper: 20480 and 4096).

    >>> overlong_penalty(["", "", "", ""], completion_ids=[[0] * 6, [0] * 8, [0] * 10, [0] * 12],
    ...                  max_completion_length=10, cache_length=4)
    [0.0, -0.5, -1.0, -1.0]
    """
    if max_completion_length is None or cache_length is None:
        raise RewardError("overlong_penalty needs args max_completion_length and cache_length")
    if not 0 < cache_length <= max_completion_length:
        raise RewardError(f"overlong_penalty: cache_length must be in (0, max_completion_length], "
                          f"got {cache_length} and {max_completion_length}")
    if completion_ids is None:
        raise RewardError("overlong_penalty needs the column completion_ids (token ids of each "
                          "completion), which the trainer passes")
    free = max_completion_length - cache_length
    return [max(-1.0, min(0.0, (free - len(ids)) / cache_length)) for ids in completion_ids]
