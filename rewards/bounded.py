"""Call a function on many inputs in worker processes, each call bounded in wall time.

No ``signal.alarm`` (it only works in the main thread and breaks worker pools): a call that
outlives its budget costs its worker its life. The pool kills that worker, records the
``default`` for the call, starts a fresh worker and goes on, so one pathological input can
neither hang nor crash the caller.

Inputs go out in chunks (few messages) and results come back one by one, so the budget is
per input, not per chunk. Workers are forked (as torch's DataLoader does on Linux): they start
in milliseconds with the caller's modules already imported, and unlike spawned workers they
never re-import the caller's ``__main__``. A worker wedged by anything it inherited is caught
by the same timeout.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

CHUNK = 32  # at most this many inputs per message; fewer when that leaves a worker idle


def _serve(conn: Connection) -> None:
    """Worker loop: receive (fn, [args, ...]); send one result per args, as each finishes."""
    # deep but legitimate nesting recurses deeply; a worker that still overflows just dies
    # and is replaced, the caller never does
    sys.setrecursionlimit(20_000)
    while True:
        try:
            fn, batch = conn.recv()
        except (EOFError, OSError):
            return
        for args in batch:
            try:
                conn.send((True, fn(*args)))
            except Exception as err:  # the caller records the default for this input
                conn.send((False, repr(err)))


@dataclass
class Worker:
    process: mp.process.BaseProcess
    conn: Connection
    indices: deque = field(default_factory=deque)  # inputs sent and not yet answered
    deadline: float = 0.0


class BoundedPool:
    def __init__(self, workers: int | None = None):
        self.size = workers or os.cpu_count() or 1
        self.context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.workers: list[Worker] = []
        self.restarts = 0

    def start_worker(self) -> Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child,), daemon=True)
        process.start()
        child.close()
        return Worker(process, parent)

    def map(self, fn: Callable, inputs: Sequence[tuple], timeout: float, default: Any) -> list:
        """``[fn(*args) for args in inputs]``, each bounded by ``timeout`` seconds (else ``default``)."""
        results = [default] * len(inputs)
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
                    worker.deadline = time.monotonic() + timeout
                    busy.append(worker)
            soonest = min(w.deadline for w in busy)
            for conn in wait([w.conn for w in busy], timeout=max(0.0, soonest - time.monotonic())):
                worker = next(w for w in busy if w.conn is conn)
                self.collect(worker, results, todo, timeout)
            now = time.monotonic()
            for worker in [w for w in busy if w.indices and w.deadline <= now]:
                self.replace(worker, todo)  # the input it was working on keeps the default
            busy = [w for w in self.workers if w.indices]
        return results

    def collect(self, worker: Worker, results: list, todo: deque, timeout: float) -> None:
        while worker.indices and worker.conn.poll():
            try:
                ok, value = worker.conn.recv()
            except (EOFError, OSError):  # the worker died (e.g. out of memory): move on
                self.replace(worker, todo)
                return
            index = worker.indices.popleft()
            if ok:
                results[index] = value
            worker.deadline = time.monotonic() + timeout
        if not worker.indices:
            worker.deadline = float("inf")

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


_pools: dict[int | None, BoundedPool] = {}


def shared_pool(workers: int | None = None) -> BoundedPool:
    """One long-lived pool per size, shut down at exit."""
    if workers not in _pools:
        _pools[workers] = BoundedPool(workers)
    return _pools[workers]


@atexit.register
def _close_pools() -> None:
    for pool in _pools.values():
        pool.close()
