"""The trainer's side of ``rollout.mode: server``: a rollout engine that asks a rollout worker
(``worker.py``, another process, maybe another machine) to generate, and pushes it weights.

Every call to the worker runs in a daemon thread while this one checks ``/health``: a worker
that dies, hangs or cannot be reached ends the run with one ``RolloutWorkerError`` naming it
after ``rollout.server.answer_within_s`` seconds of silence, never a hung trainer.

Weights: every process reads the policy (FSDP and ZeRO-3 gather it together); process 0
broadcasts it on the weight channel, each push tagged with its policy version (the training
step whose update made it). Each process's generation requests name the channel and ask for at
least the version it last pushed, so a process never samples from weights older than its own,
nor from another trainer's (a worker can serve one run after another).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from urllib.parse import urlparse

import requests
import torch

from rlreason.recipe import RolloutConfig
from rlreason.rollout import channel
from rlreason.rollout.channel import TensorSpec
from rlreason.rollout.errors import RolloutWorkerError
from rlreason.rollout.weights import checkpoint_weights
from rlreason.rollout_routing import from_wire
from rlreason.rollouts import Rollouts

log = logging.getLogger(__name__)


class RemoteRollout:
    def __init__(self, policy: torch.nn.Module, cfg: RolloutConfig, stop_ids: list[int], sender: bool,
                 version: int = 0, record_routing: bool = False, record_weights: bool = False):
        """``sender``: this process pushes the weights (process 0); ``version``: the policy
        version of the weights now (the step a resumed run continues after), pushed at once;
        ``record_routing``: sampled completions carry the experts the worker's engine routed
        their tokens to (``moe.routing_replay: rollout``; the worker's recipe must ask for it too);
        ``record_weights``: and their combine weights (``moe.replay_engine_weights``)."""
        self.policy, self.cfg, self.stop_ids, self.sender = policy, cfg, stop_ids, sender
        self.record_routing, self.record_weights = record_routing, record_weights
        self.url = cfg.server.url.rstrip("/")
        self.group = None
        self.channel_name: str | None = None
        self.channel_shared = False
        self.version = version - 1  # the last version pushed (and live on the worker, for process 0)
        self.first_version = version  # no request may be served from weights older than these
        self.pushed = threading.Condition()
        self.check_reachable()
        self.sync_weights(version)

    def generate(self, prompt_ids: list[list[int]], n: int, greedy: bool = False,
                 max_new_tokens: int | None = None, seeds: list[int] | None = None,
                 min_version: int | None = None) -> Rollouts:
        """``n`` completions per prompt, grouped prompt by prompt, from a policy version of at
        least ``min_version`` (default: the last one pushed); each carries its version."""
        answer = self.call("/generate", {"prompt_ids": prompt_ids, "n": n, "greedy": greedy,
                                         "max_new_tokens": max_new_tokens, "seeds": seeds,
                                         "channel": self.channel_name, "routing": self.record_routing and not greedy,
                                         "routing_weights": self.record_weights and not greedy,
                                         "min_version": max(self.version if min_version is None else min_version,
                                                            self.first_version)})
        if self.channel_name is not None and answer["channel"] != self.channel_name:
            raise RolloutWorkerError(f"rollout worker at {self.url} answered from another trainer's weights "
                                     f"(channel {answer['channel']}, not {self.channel_name})")
        count = len(answer["completion_ids"])
        return Rollouts(
            prompt_ids=[list(p) for p in prompt_ids for _ in range(n)],
            completion_ids=answer["completion_ids"],
            rollout_logprobs=answer["logprobs"],
            finish_reason=answer["finish_reason"],
            group_index=[i // n for i in range(count)],
            policy_versions=[answer["version"]] * count,
            routing=[from_wire(r) for r in answer["routing"]] if answer.get("routing") else None,
            routing_weights=[from_wire(w) for w in answer["routing_weights"]] if answer.get("routing_weights") else None,
        )

    def sync_weights(self, version: int | None = None) -> None:
        """Push the policy's weights as ``version`` (default: the next one); every process calls
        this together (reading sharded parameters is collective)."""
        version = self.version + 1 if version is None else version
        with checkpoint_weights(self.policy) as weights:
            if self.sender:
                self.push(weights, version)
        if not self.channel_shared:  # the first push: every process learns the channel's name
            self.channel_name, self.channel_shared = shared_from_first_process(self.channel_name), True
        with self.pushed:
            self.version = version
            self.pushed.notify_all()

    def wait_for_push(self, version: int, stopping: threading.Event) -> bool:
        """Wait until ``version`` (or a later one) is pushed; False if ``stopping`` is set first."""
        with self.pushed:
            while self.version < version:
                if stopping.is_set():
                    return False
                self.pushed.wait(timeout=0.5)
        return True

    def push(self, weights: dict[str, torch.Tensor], version: int) -> None:
        """Broadcast ``weights`` on the weight channel (opened on the first push) as ``version``."""
        if self.group is None:
            self.open_channel(next(iter(weights.values())).device)
        names = list(weights)
        specs = [TensorSpec.of(name, weights[name]) for name in names]
        pushed = in_thread(self.post, "/weights", {"channel": self.channel_name, "version": version,
                                                   "tensors": [[s.name, s.dtype, s.shape] for s in specs]})
        sent = in_thread(channel.send, self.group, [weights[name] for name in names])
        self.await_answer([pushed, sent], "/weights")  # the worker's refusal first: then no receiver

    def logprobs_of(self, token_ids: list[int]) -> list[float]:
        """The worker engine's logprob of each token of ``token_ids`` after the first."""
        return self.call("/logprobs", {"token_ids": token_ids})["logprobs"]

    def close(self) -> None:
        """Nothing of the worker's to free here: it outlives the run (and serves the next one)."""

    def open_channel(self, device: torch.device) -> None:
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = self.cfg.server.channel_timeout_s
        opened = self.call("/channel", {"backend": backend, "timeout_s": timeout})
        host = urlparse(self.url).hostname
        self.group = self.await_answer(in_thread(channel.connect, host, opened["port"], backend, timeout,
                                                 opened["channel"]), "/channel (rendezvous)")
        self.channel_name = opened["channel"]
        log.info("weight channel to the rollout worker at %s open (%s)", self.url, backend)

    def call(self, path: str, payload: dict) -> dict:
        """POST ``payload`` to the worker and return its JSON answer, watching the worker's health."""
        return self.await_answer(in_thread(self.post, path, payload), path)

    def post(self, path: str, payload: dict) -> dict:
        try:
            response = requests.post(self.url + path, json=payload)
        except requests.ConnectionError as err:
            raise RolloutWorkerError(f"rollout worker at {self.url}: connection lost during {path} "
                                     f"({type(err).__name__}); is it still running?") from None
        if response.status_code != 200:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise RolloutWorkerError(f"rollout worker at {self.url} refused {path} "
                                     f"(HTTP {response.status_code}): {detail}")
        return response.json()

    def await_answer(self, futures, what: str):
        """The result of ``futures`` (one, or a list: their results), checking ``/health`` every
        second meanwhile. Raises ``RolloutWorkerError`` naming the worker once it has left /health
        unanswered for ``answer_within_s``, or when a future fails (the first of the list first)."""
        pending = futures if isinstance(futures, list) else [futures]
        limit = self.cfg.server.answer_within_s
        last_answer = time.monotonic()
        while True:
            done, _ = concurrent.futures.wait(pending, timeout=1.0, return_when=concurrent.futures.FIRST_EXCEPTION)
            failed = [f for f in pending if f in done and f.exception() is not None]
            if failed:
                err = failed[0].exception()
                if isinstance(err, RolloutWorkerError):
                    raise err
                gone = "" if self.answers(timeout=min(limit, 2.0)) else "; /health does not answer either"
                raise RolloutWorkerError(f"rollout worker at {self.url}: {what} failed ({type(err).__name__}: "
                                         f"{err}){gone}") from None
            if len(done) == len(pending):
                results = [f.result() for f in pending]
                return results if isinstance(futures, list) else results[0]
            if self.answers(timeout=min(limit / 2, 2.0)):
                last_answer = time.monotonic()
            elif time.monotonic() - last_answer >= limit:
                raise RolloutWorkerError(f"rollout worker at {self.url} stopped answering during {what}: no "
                                         f"reply to /health for {limit:g} s (rollout.server.answer_within_s)")

    def answers(self, timeout: float) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def check_reachable(self) -> None:
        limit = self.cfg.server.answer_within_s
        if not self.answers(timeout=limit):
            raise RolloutWorkerError(f"rollout worker at {self.url} (rollout.server.url) does not answer; start "
                                     "it with `rlreason rollout-worker RECIPE --port PORT` or fix the address")


def shared_from_first_process(value):
    """Process 0's ``value`` on every process of the trainer (itself, when there is one)."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def in_thread(fn, *args) -> concurrent.futures.Future:
    """``fn(*args)`` in a daemon thread (one stuck on a silent worker never holds up exit)."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(err)

    threading.Thread(target=run, daemon=True, name="rollout-worker-call").start()
    return future
