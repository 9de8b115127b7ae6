"""Counts a reward function reports about one call (e.g. ``sandbox_errors``), next to its scores.

The caller opens a tally around the call; the function counts into it from the calling
thread. Outside any tally, counting does nothing, so rewards stay plain functions:

>>> with collecting() as counts:
...     count("sandbox_errors", 2)
>>> dict(counts)
{'sandbox_errors': 2}
>>> count("sandbox_errors")  # nobody collecting: ignored
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[Counter | None] = ContextVar("rlreason_reward_tally", default=None)


def count(key: str, n: int = 1) -> None:
    counts = _current.get()
    if counts is not None:
        counts[key] += n


@contextmanager
def collecting():
    counts: Counter = Counter()
    token = _current.set(counts)
    try:
        yield counts
    finally:
        _current.reset(token)
