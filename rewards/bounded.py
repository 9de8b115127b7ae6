"""Call a function on many inputs in worker processes, each call bounded in CPU time.

The work a verdict may do is bounded before it starts (size and degree budgets in the callers);
the limit here is the last resort for what those budgets miss. It counts the CPU time the worker
spends on the input, not the wall time, so a loaded machine (a trainer's always is) stretches
the wall time of a verdict without pushing it past its limit: on Linux the worker's CPU time is
read from ``/proc``; elsewhere the wall time stands in for it. A wall-clock ceiling
(``WALL_FACTOR`` times the limit) still catches a worker that makes no progress at all.

No ``signal.alarm`` (it only works in the main thread and breaks worker pools): a call that
outlives its budget costs its worker its life. The pool kills that worker, records the
``default`` for the call, starts a fresh worker and goes on, so one pathological input can
neither hang nor crash the caller; ``map`` reports which inputs ran out of time.

Inputs go out in chunks (few messages) and results come back one by one, so the budget is
per input, not per chunk. Workers are forked (as torch's DataLoader does on Linux): they start
in milliseconds with the caller's modules already imported, and unlike spawned workers they
never re-import the caller's ``__main__``. ``warm_up`` runs once in the caller before the
first worker is forked, so every worker starts with lazily imported modules and caches
already loaded (a cold solver's first call can cost more than all later ones together).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

CHUNK = 32  # at most this many inputs per message; fewer when that leaves a worker idle
POLL_S = 0.05  # how often a busy worker's CPU time is read
WALL_FACTOR = 20  # wall-clock ceiling of one input: this many times its CPU-time limit
PARENT_CHECK_S = 1.0


def _serve(conn: Connection) -> None:
    """Worker loop: receive (fn, [args, ...]); send one result per args, as each finishes."""
    # deep but legitimate nesting recurses deeply; a worker that still overflows just dies
    # and is replaced, the caller never does
    sys.setrecursionlimit(20_000)
    die_with_parent()
    while True:
        try:
            fn, batch = conn.recv()
        except (EOFError, OSError):
            return
        for args in batch:
            try:
                ok, value = True, fn(*args)
            except Exception as err:  # the caller records the default for this input
                ok, value = False, repr(err)
            conn.send((ok, value, time.process_time()))  # where the next input's CPU time starts


def die_with_parent() -> None:
    """A worker ends within a second of the process that forked it, however that one ends, and
    takes no part in its stop signals: Ctrl-C in a terminal reaches the worker too, and the
    caller decides what happens then.

    A watchdog thread, not Linux's parent-death signal: that fires when the forking *thread*
    ends, and rewards are called in threads of their own. Nor the pipe's end of file: later
    workers inherit the caller's end of every earlier worker's pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a stop sent to the whole process group (Ctrl-C, a
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # scheduler's SIGTERM) must not kill verdicts in flight
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent watchdog", daemon=True).start()


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` so far, or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Worker:
    process: mp.process.BaseProcess
    conn: Connection
    indices: deque = field(default_factory=deque)  # inputs sent and not yet answered
    cpu_at_start: float | None = None  # the worker's CPU time when its current input began
    wall_at_start: float = 0.0

    def begin(self, cpu: float | None = None) -> None:
        """Its current input starts now, at ``cpu`` seconds of its CPU time (as the worker itself
        reported with its last result; read from /proc when it has reported none yet)."""
        self.cpu_at_start = cpu if cpu is not None else cpu_seconds(self.process.pid)
        self.wall_at_start = time.monotonic()

    def spent(self, limit: float) -> bool:
        """Has its current input used more than ``limit`` CPU seconds (or the wall ceiling)?"""
        wall = time.monotonic() - self.wall_at_start
        if self.cpu_at_start is None:
            return wall > limit
        now = cpu_seconds(self.process.pid)
        return wall > WALL_FACTOR * limit or (now is not None and now - self.cpu_at_start > limit)


@dataclass(frozen=True)
class Mapped:
    """What ``BoundedPool.map`` returns: one result per input, the inputs that ran out of time, and
    those whose worker died under them (out of memory, a crash in native code)."""

    results: list
    timed_out: list[int]
    crashed: list[int]


def available_cpus() -> int:
    """The cores this process may run on, shared among the launch's processes on this node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


class BoundedPool:
    def __init__(self, workers: int | None = None, warm_up: Callable[[], Any] | None = None):
        self.size = workers or available_cpus()
        self.context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.workers: list[Worker] = []
        self.warm_up = warm_up
        self.restarts = 0
        self.lock = threading.Lock()  # one map at a time: a reward call abandoned mid-map finishes its clean-up first

    def start_worker(self) -> Worker:
        if self.warm_up is not None:
            self.warm_up, warm_up = None, self.warm_up
            warm_up()
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child,), daemon=True)
        process.start()
        child.close()
        return Worker(process, parent)

    def map(self, fn: Callable, inputs: Sequence[tuple], timeout: float, default: Any) -> Mapped:
        """``[fn(*args) for args in inputs]``, each bounded by ``timeout`` CPU seconds (else
        ``default``, and its index in ``timed_out``); an input that raises also gets ``default``,
        and one whose worker dies ``default`` and a place in ``crashed``. Interrupted (an exception
        raised in the calling thread), it leaves workers holding work of its own; the next map
        starts by discarding them (a kill, quick whatever interrupts it; the forks come later)."""
        with self.lock:
            self.discard_stale()
            return self.map_unlocked(fn, inputs, timeout, default)

    def discard_stale(self) -> None:
        """Kill the workers an interrupted map left holding its inputs, and those that died."""
        for worker in [w for w in self.workers if w.indices or not w.process.is_alive()]:
            worker.process.kill()
            worker.process.join()
            worker.conn.close()
            self.workers.remove(worker)

    def map_unlocked(self, fn: Callable, inputs: Sequence[tuple], timeout: float, default: Any) -> Mapped:
        results, timed_out, crashed = [default] * len(inputs), [], []
        todo = deque(range(len(inputs)))
        chunk_size = max(1, min(CHUNK, -(-len(inputs) // self.size)))  # 16 inputs, 2 workers: 8 each
        while len(self.workers) < self.size:
            self.workers.append(self.start_worker())
        busy: list[Worker] = []
        while todo or busy:
            for worker in self.workers:
                if not worker.indices and todo:
                    chunk = [todo.popleft() for _ in range(min(chunk_size, len(todo)))]
                    worker.indices.extend(chunk)
                    worker.conn.send((fn, [inputs[i] for i in chunk]))
                    worker.begin()
                    busy.append(worker)
            for conn in wait([w.conn for w in busy], timeout=POLL_S):
                worker = next(w for w in busy if w.conn is conn)
                self.collect(worker, results, todo, crashed)
            for worker in [w for w in busy if w.indices and w.spent(timeout)]:
                timed_out.append(worker.indices[0])
                self.replace(worker, todo)  # the input it was working on keeps the default
            busy = [w for w in self.workers if w.indices]
        return Mapped(results, sorted(timed_out), sorted(crashed))

    def collect(self, worker: Worker, results: list, todo: deque, crashed: list[int]) -> None:
        while worker.indices and worker.conn.poll():
            try:
                ok, value, cpu = worker.conn.recv()
            except (EOFError, OSError):  # the worker died (e.g. out of memory): move on
                crashed.append(worker.indices[0])
                self.replace(worker, todo)
                return
            index = worker.indices.popleft()
            if ok:
                results[index] = value
            worker.begin(cpu)

    def replace(self, worker: Worker, todo: deque) -> None:
        """Kill ``worker``; its current input keeps the default, the rest of its chunk is re-queued."""
        worker.indices.popleft()
        todo.extendleft(reversed(worker.indices))
        worker.process.kill()
        worker.process.join()
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self.start_worker()
        self.restarts += 1

    def close(self) -> None:
        for worker in self.workers:
            worker.process.kill()
            worker.process.join()
            worker.conn.close()
        self.workers = []


_pools: dict[tuple, BoundedPool] = {}


def shared_pool(workers: int | None = None, warm_up: Callable[[], Any] | None = None) -> BoundedPool:
    """One long-lived pool per size and warm-up, shut down at exit."""
    key = (workers, warm_up)
    if key not in _pools:
        _pools[key] = BoundedPool(workers, warm_up)
    return _pools[key]


@atexit.register
def _close_pools() -> None:
    for pool in _pools.values():
        pool.close()
