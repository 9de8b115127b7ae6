"""Score a batch of completions with several weighted reward functions."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

from rlreason.types import RewardBatch
from rewards import tally
from rewards.registry import RewardError, RewardFn, resolve


@dataclass(frozen=True)
class WeightedReward:
    name: str
    fn: RewardFn
    weight: float


class RewardSuite:
    """Weighted sum of reward functions; each is resolved by name when the suite is built."""

    def __init__(self, specs: Sequence[Any]):
        """``specs``: objects with ``name``, ``weight`` and ``args`` (e.g. recipe RewardSpecs)."""
        if not specs:
            raise RewardError("rewards: the recipe lists no reward function")
        self.rewards = [
            WeightedReward(s.name, functools.partial(resolve(s.name), **s.args), s.weight)
            for s in specs
        ]

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rewards]

    def score(self, completions: list[str], columns: dict[str, list]) -> RewardBatch:
        """Score ``completions``; ``columns[k][i]`` is column ``k`` of completion ``i``'s row."""
        per_function, counts = {}, {}
        for r in self.rewards:
            with tally.collecting() as counted:
                per_function[r.name] = call_checked(r, completions, columns)
            counts[r.name] = dict(counted)
        total = [
            sum(r.weight * v for r in self.rewards if (v := per_function[r.name][i]) is not None)
            for i in range(len(completions))
        ]
        return RewardBatch(per_function=per_function, total=total, counts=counts)


def call_checked(r: WeightedReward, completions: list[str], columns: dict[str, list]):
    try:
        values = list(r.fn(completions, **columns))
    except Exception as err:
        raise RewardError(f"reward {r.name!r} raised {type(err).__name__}: {err}") from err
    if len(values) != len(completions):
        raise RewardError(
            f"reward {r.name!r} returned {len(values)} values for {len(completions)} completions"
        )
    for i, v in enumerate(values):
        ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        if not ok:
            raise RewardError(f"reward {r.name!r} returned {v!r} for completion {i}; want a finite "
                              "float or None")
    return [None if v is None else float(v) for v in values]
