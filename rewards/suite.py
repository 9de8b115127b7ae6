"""Score a batch of completions with several weighted reward functions."""

from __future__ import annotations

import functools
import logging
import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Sequence

from rewards import tally
from rewards.registry import RewardError, RewardFn, resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardBatch:
    """Scores of B*G completions.

    Attributes:
        per_function: name -> list of B*G rewards; None where a function did not apply.
        total: weighted sum over functions per completion (None counts as 0). len B*G.
        counts: name -> what the function counted during the call (e.g. ``sandbox_errors``).
    """

    per_function: dict[str, list[float | None]]
    total: list[float]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


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
        self.rewards = [WeightedReward(s.name, functools.partial(resolved(s.name, index), **s.args), s.weight)
                        for index, s in enumerate(specs)]

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
        return RewardBatch(per_function=per_function, total=self.total(per_function), counts=counts)

    def total(self, per_function: dict[str, list[float | None]]) -> list[float]:
        """The weighted sum over functions per completion, a missing score (None) counting as 0:
        the one place the weights apply (training sums group-normalised scores through it too).

        >>> from types import SimpleNamespace as Spec
        >>> suite = RewardSuite([Spec(name="format", weight=0.5, args={}),
        ...                      Spec(name="math_accuracy", weight=2.0, args={})])
        >>> suite.total({"format": [1.0, 0.0], "math_accuracy": [1.0, None]})
        [2.5, 0.0]
        """
        return [sum(r.weight * v for r in self.rewards if (v := per_function[r.name][i]) is not None)
                for i in range(len(next(iter(per_function.values()))))]


def resolved(name: str, index: int) -> RewardFn:
    """The function of entry ``index``; an unknown name is named by its place in the list."""
    try:
        return resolve(name)
    except RewardError as err:
        raise RewardError(f"rewards[{index}].name: {err}") from None


def call_checked(r: WeightedReward, completions: list[str], columns: dict[str, list]) -> list[float | None]:
    """``r``'s scores; a row it raises on (or gives no finite float or None) scores None.

    The batch is scored in one call; if that raises, each prompt's group (consecutive rows of
    one prompt, so rewards that compare a group's completions keep their groups), then each row
    of a failing group, is scored alone. Failures are counted (``errors``) and one is logged
    with its traceback; a function that fails on every row, or returns a list of the wrong
    length (a broken contract, not a bad row), raises RewardError naming it.
    """
    try:
        values, failures = checked(r, r.fn(completions, **columns), len(completions)), []
    except RewardError:
        raise
    except Exception:
        values, failures = score_apart(r, completions, columns)
    invalid = [(i, RewardError(f"returned {v!r}; want a finite float or None")) for i, v in enumerate(values)
               if not (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)))]
    failures += invalid
    if failures and len(failures) == len(completions):
        row, err = failures[0]
        raise RewardError(f"reward {r.name!r} failed on every row of the batch (row {row}: "
                          f"{type(err).__name__}: {err})") from err
    if failures:
        row, err = failures[0]
        tally.count("errors", len(failures))
        log.warning("reward %r failed on %d of %d rows (scored None); row %d:\n%s", r.name, len(failures),
                    len(completions), row, "".join(traceback.format_exception(err)).rstrip())
    bad = {i for i, _ in invalid}
    return [None if v is None or i in bad else float(v) for i, v in enumerate(values)]


def score_apart(r: WeightedReward, completions: list[str], columns: dict[str, list]):
    """Each prompt's group alone, then each row of a group that fails; (values, failed rows)."""
    values, failures = [None] * len(completions), []
    for rows in prompt_groups(columns, len(completions)):
        try:
            for i, value in zip(rows, call_on(r, completions, columns, rows)):
                values[i] = value
            continue
        except RewardError:
            raise
        except Exception as err:
            if len(rows) == 1:
                failures.append((rows[0], err))
                continue
        for i in rows:
            try:
                values[i] = call_on(r, completions, columns, [i])[0]
            except RewardError:
                raise
            except Exception as err:
                failures.append((i, err))
    return values, failures


def call_on(r: WeightedReward, completions: list[str], columns: dict[str, list], rows: list[int]) -> list:
    subset = {key: [column[i] for i in rows] for key, column in columns.items()}
    return checked(r, r.fn([completions[i] for i in rows], **subset), len(rows))


def checked(r: WeightedReward, values, expected: int) -> list:
    values = list(values)
    if len(values) != expected:
        raise RewardError(f"reward {r.name!r} returned {len(values)} values for {expected} completions")
    return values


def prompt_groups(columns: dict[str, list], n: int) -> list[list[int]]:
    """Runs of consecutive rows with the same prompt (each row alone without a prompts column)."""
    prompts = columns.get("prompts")
    if prompts is None or len(prompts) != n:
        return [[i] for i in range(n)]
    groups: list[list[int]] = []
    for i in range(n):
        if groups and prompts[i] == prompts[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
