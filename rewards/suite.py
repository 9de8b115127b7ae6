"""Score a batch of completions with several weighted reward functions.

Every call of a reward has a time limit (its spec's ``timeout_s``, see ``call_limited``): past
it the call is interrupted, its rows score None, and the timeout is counted (``timeouts``) and
logged naming the reward. A
reward that times out on ``TIMEOUTS_IN_A_ROW`` calls in a row hangs: ``RewardStalled`` names it.
A stop the caller requests (``request_stop``, e.g. on Ctrl-C) gives a call ``STOP_GRACE_S`` to
finish (from the request, or from its own start if later), then abandons it with ``RewardCancelled``.
"""

from __future__ import annotations

import contextvars
import ctypes
import functools
import logging
import math
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rewards import tally
from rewards.registry import RewardError, RewardFn, resolve

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
TIMEOUTS_IN_A_ROW = 3
STOP_GRACE_S = 5.0
POLL_S = 0.1
RESEND_S = 10.0  # a call that ignored its interrupt is interrupted again after this long


@dataclass(frozen=True)
class RewardBatch:
    """Scores of B*G completions.

    Attributes:
        per_function: name -> list of B*G rewards; None where a function did not apply.
        total: weighted sum over functions per completion (None adds nothing). len B*G.
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
    timeout_s: float = DEFAULT_TIMEOUT_S
    index: int = 0  # its place in the recipe's list, to name it as rewards[index]


class RewardTimeout(BaseException):
    """Raised in a reward call that runs past its time limit (a BaseException, as KeyboardInterrupt
    is: a reward's own ``except Exception`` must not turn it into scores)."""


class RewardStalled(RewardError):
    """A reward timed out on several calls in a row: it hangs, and the run cannot go on without it."""


class RewardCancelled(BaseException):
    """A stop was requested while a reward call ran, and the call did not finish in the grace time."""


class RewardSuite:
    """Weighted sum of reward functions; each is resolved by name when the suite is built."""

    def __init__(self, specs: Sequence[Any]):
        """``specs``: objects with ``name``, ``weight``, ``args`` and optionally ``timeout_s`` (e.g.
        recipe RewardSpecs)."""
        if not specs:
            raise RewardError("rewards: the recipe lists no reward function")
        self.rewards = [WeightedReward(s.name, functools.partial(resolved(s.name, index), **s.args), s.weight,
                                       getattr(s, "timeout_s", DEFAULT_TIMEOUT_S), index)
                        for index, s in enumerate(specs)]
        self.timeouts_in_a_row = {r.name: 0 for r in self.rewards}
        self.stop_requested_at: float | None = None

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rewards]

    def request_stop(self) -> None:
        """A stop was asked for (a signal): a reward call still running ``STOP_GRACE_S`` from now (or
        from its own start, if later) is abandoned (``RewardCancelled``), so a stuck reward cannot
        hold the stop up, and one that works as usual still finishes its step."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()

    def score(self, completions: list[str], columns: dict[str, list]) -> RewardBatch:
        """Score ``completions``; ``columns[k][i]`` is column ``k`` of completion ``i``'s row."""
        per_function, counts = {}, {}
        for r in self.rewards:
            with tally.collecting() as counted:
                per_function[r.name] = call_checked(r, completions, columns, self.limited(r))
            counts[r.name] = dict(counted)
            self.note_timeouts(r, counted.get("timeouts", 0))
        return RewardBatch(per_function=per_function, total=self.total(per_function), counts=counts)

    def limited(self, r: WeightedReward) -> Callable:
        """How ``r`` is called: ``call(fn)`` runs ``fn()`` under ``r``'s time limit and this suite's
        stop requests."""
        return lambda fn: call_limited(fn, r.timeout_s, lambda: self.stop_requested_at)

    def note_timeouts(self, r: WeightedReward, timeouts: int) -> None:
        self.timeouts_in_a_row[r.name] = self.timeouts_in_a_row[r.name] + 1 if timeouts else 0
        if self.timeouts_in_a_row[r.name] >= TIMEOUTS_IN_A_ROW:
            raise RewardStalled(f"reward {r.name!r} timed out on {TIMEOUTS_IN_A_ROW} calls in a row (rewards[{r.index}]"
                                f".timeout_s: {r.timeout_s:g} s): it hangs; fix it, or raise its timeout_s")

    def total(self, per_function: dict[str, list[float | None]]) -> list[float]:
        """The weighted sum over functions per completion, a missing score (None) adding nothing:
        the one place the weights apply (training sums group-normalised scores through it too; a
        completion with None beside scores of its group is then left out of training, see
        ``rlreason.advantages.scored_totals``).

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


def call_limited(fn: Callable[[], Any], timeout_s: float, stop_requested_at: Callable[[], float | None]):
    """``fn()`` under a time limit of ``timeout_s`` seconds (then ``RewardTimeout``) and the
    caller's stop requests (``STOP_GRACE_S`` after a request or after the call's start, whichever
    is later: then ``RewardCancelled``).

    From the main thread the call runs right there, as a plain call would (rewards that set
    their own ``signal.alarm``, as Math-Verify does, keep working), and a watchdog thread
    interrupts it with a signal of its own when it runs out of time: a loop in Python, a sleep,
    a lock or socket wait all stop there. From any other thread (Python delivers signals to the
    main thread only) the call runs in a thread of its own that is abandoned when it runs out."""
    if threading.current_thread() is threading.main_thread() and INTERRUPT is not None:
        return call_interrupted(fn, timeout_s, stop_requested_at)
    return call_abandoned(fn, timeout_s, stop_requested_at)


INTERRUPT = getattr(signal, "SIGRTMIN", None) and signal.SIGRTMIN + 4  # a signal of its own (Linux)


def overdue(started: float, timeout_s: float, asked: float | None) -> type[Exception] | None:
    """Which end a call that started at ``started`` has come to now, if any."""
    now = time.monotonic()
    if asked is not None and now - max(asked, started) >= STOP_GRACE_S:
        return RewardCancelled
    return RewardTimeout if now - started >= timeout_s else None


@dataclass
class InterruptedCall:
    """The call a watchdog may interrupt: ``ending`` once it ran out, ``returned`` once it ended."""

    timeout_s: float
    ending: type[BaseException] | None = None
    returned: bool = False


_current: list[InterruptedCall] = []  # the main thread's call in progress (calls do not nest across threads)


def interrupt(signum, frame) -> None:
    """The handler of ``INTERRUPT``, installed once for good (a handler put back to the default
    would let a signal still on its way end the process): raises in the call in progress, if it
    is out of time and has not returned; otherwise a signal that came late does nothing."""
    if _current and _current[-1].ending is not None and not _current[-1].returned:
        raise ended(_current[-1].ending, _current[-1].timeout_s)


def call_interrupted(fn: Callable[[], Any], timeout_s: float, stop_requested_at: Callable[[], float | None]):
    if signal.getsignal(INTERRUPT) is not interrupt:
        signal.signal(INTERRUPT, interrupt)
    main, finished, call = threading.get_ident(), threading.Event(), InterruptedCall(timeout_s)
    started = time.monotonic()

    def watch() -> None:
        sent = None
        while not finished.wait(POLL_S):
            call.ending = call.ending or overdue(started, timeout_s, stop_requested_at())
            if call.ending is not None and (sent is None or time.monotonic() - sent >= RESEND_S):
                sent = time.monotonic()  # once (its clean-up must not be interrupted), again only if ignored
                signal.pthread_kill(main, INTERRUPT)

    _current.append(call)
    watchdog = threading.Thread(target=watch, name="reward watchdog", daemon=True)
    watchdog.start()
    try:
        value = fn()
        call.returned = True  # a store, where Python runs no handler: a late signal now does nothing
    finally:
        call.returned = True
        finished.set()
        watchdog.join()
        _current.remove(call)
    if call.ending is not None:  # it was interrupted and went on: what it returned was not computed in full
        raise ended(call.ending, timeout_s)
    return value


def ended(end: type[BaseException], timeout_s: float) -> BaseException:
    return end(f"past its time limit of {timeout_s:g} s" if end is RewardTimeout
               else "a stop was requested while a reward call was running")


def call_abandoned(fn: Callable[[], Any], timeout_s: float, stop_requested_at: Callable[[], float | None]):
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()  # its tally counts reach the caller

    def run() -> None:
        try:
            outcome["value"] = context.run(fn)
        except BaseException as err:  # handed to the caller, whatever it is
            outcome["error"] = err

    thread = threading.Thread(target=run, name="reward call", daemon=True)
    started = time.monotonic()
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        end = overdue(started, timeout_s, stop_requested_at()) if thread.is_alive() else None
        if end is not None:
            stop_thread(thread)
            raise ended(end, timeout_s)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def stop_thread(thread: threading.Thread) -> None:
    """Raise RewardTimeout in ``thread`` at its next Python instruction; it is then left to end."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(RewardTimeout))


def call_checked(r: WeightedReward, completions: list[str], columns: dict[str, list],
                 call: Callable = lambda fn: fn()) -> list[float | None]:
    """``r``'s scores; a row it raises on (or gives no finite float or None) scores None.

    The batch is scored in one call; if that raises, each prompt's group (consecutive rows of
    one prompt, so rewards that compare a group's completions keep their groups), then each row
    of a failing group, is scored alone. Failures are counted (``errors``) and one is logged
    with its traceback; a function that fails on every row, or returns a list of the wrong
    length (a broken contract, not a bad row), raises RewardError naming it. ``call`` runs each
    call under a time limit: past it, every row of the batch scores None (counted as ``timeouts``).
    """
    try:
        values, failures = checked(r, call(lambda: r.fn(completions, **columns)), len(completions)), []
    except (RewardError, RewardCancelled):
        raise
    except RewardTimeout:
        return timed_out(r, len(completions))
    except Exception:
        values, failures = score_apart(r, completions, columns, call)
        if values is None:
            return timed_out(r, len(completions))
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


def timed_out(r: WeightedReward, rows: int) -> list[None]:
    tally.count("timeouts")
    log.warning("reward %r ran past its time limit (rewards[%d].timeout_s: %g s): its %d rows score None",
                r.name, r.index, r.timeout_s, rows)
    return [None] * rows


def score_apart(r: WeightedReward, completions: list[str], columns: dict[str, list], call: Callable):
    """Each prompt's group alone, then each row of a group that fails: (values, failed rows), or
    (None, None) once a call runs out of time (the rest is not tried)."""
    values, failures = [None] * len(completions), []
    try:
        for rows in prompt_groups(columns, len(completions)):
            try:
                for i, value in zip(rows, call_on(r, completions, columns, rows, call)):
                    values[i] = value
                continue
            except (RewardError, RewardTimeout, RewardCancelled):
                raise
            except Exception as err:
                if len(rows) == 1:
                    failures.append((rows[0], err))
                    continue
            for i in rows:
                try:
                    values[i] = call_on(r, completions, columns, [i], call)[0]
                except (RewardError, RewardTimeout, RewardCancelled):
                    raise
                except Exception as err:
                    failures.append((i, err))
    except RewardTimeout:
        return None, None
    return values, failures


def call_on(r: WeightedReward, completions: list[str], columns: dict[str, list], rows: list[int],
            call: Callable) -> list:
    subset = {key: [column[i] for i in rows] for key, column in columns.items()}
    return checked(r, call(lambda: r.fn([completions[i] for i in rows], **subset)), len(rows))


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
