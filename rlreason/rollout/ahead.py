"""Rollouts generated ahead of training, with bounded staleness (``rollout.max_staleness: K``).

A thread of the trainer draws the prompts of step s, s+1, ... in order and has the rollout
worker generate them while the trainer updates. The batch of step s may come from policy
version s-1-K at the oldest (version v: the weights after step v's update): before asking for
it the thread waits until the trainer has pushed that version, and the request tells the worker
to wait for it too. So at most K+1 batches are ahead, and none older than K versions.

The thread draws from its own copy of the prompt sampler; each batch carries the sampler's
place after it, which the trainer adopts as it trains the batch: a checkpoint records the data
the run has trained on, and a resumed run draws again what was generated but not trained.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from dataclasses import dataclass

from rlreason.rollouts import Rollouts


@dataclass(frozen=True)
class Prefetched:
    step: int
    examples: list
    rollouts: Rollouts
    sampler_state: dict  # the sampler's place after drawing this batch
    generate_s: float  # seconds the worker spent on it


class RolloutsAhead:
    def __init__(self, engine, sampler, prompt_ids, group_size: int, max_staleness: int, first_step: int,
                 last_step: int):
        """``engine``: a ``RemoteRollout``; ``sampler``: the session's ``PromptSampler`` (copied);
        ``prompt_ids``: examples -> token ids; ``first_step``, ``last_step``: the steps to
        generate for."""
        self.last_step = last_step
        self.engine, self.prompt_ids, self.group_size = engine, prompt_ids, group_size
        self.max_staleness = max_staleness
        self.sampler = copy.deepcopy(sampler)
        self.ready: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.produce, args=(first_step,), daemon=True, name="rollouts-ahead")
        self.thread.start()

    def oldest_version(self, step: int) -> int:
        return step - 1 - self.max_staleness

    def produce(self, step: int) -> None:
        try:
            while not self.stopping.is_set() and step <= self.last_step:
                oldest = self.oldest_version(step)
                if not self.engine.wait_for_push(oldest, self.stopping):
                    return
                examples = self.sampler.next_batch()
                started = time.perf_counter()
                rollouts = self.engine.generate(self.prompt_ids(examples), n=self.group_size,
                                                seeds=self.sampler.last_seeds(), min_version=oldest)
                self.ready.put(Prefetched(step, examples, rollouts, self.sampler.state(), time.perf_counter() - started))
                step += 1
        except BaseException as err:  # noqa: BLE001 - raised again in the trainer's thread, by take()
            self.ready.put(err)

    def take(self, step: int) -> tuple[Prefetched, int]:
        """The batch of ``step`` (waiting for it) and how many batches were ready when asked."""
        depth = self.ready.qsize()
        item = self.ready.get()
        if isinstance(item, BaseException):
            raise item
        if item.step != step:
            raise RuntimeError(f"rollouts ahead: got the batch of step {item.step} for step {step}")
        oldest = min(item.rollouts.policy_versions)
        if oldest < self.oldest_version(step):  # the worker did not honour min_version: never train on it
            raise RuntimeError(f"rollouts ahead: the batch of step {step} came from policy version {oldest}, "
                               f"more than rollout.max_staleness ({self.max_staleness}) behind")
        return item, depth

    def close(self) -> None:
        """Stop drawing; a request in flight is left to finish in its daemon thread."""
        self.stopping.set()
