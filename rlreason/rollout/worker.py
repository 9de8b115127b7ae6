"""The rollout worker: a process of its own holding the vLLM engine, serving generation over HTTP
and taking versioned weight pushes over a weight channel (``channel.py``).

``rlreason rollout-worker RECIPE`` starts it with the trainer's recipe (the same model, data and
sampling settings; ``rollout.mode: server`` in the trainer's copy points it here). Endpoints:

- ``GET /health``: alive, and the policy version it holds (answered while it generates);
- ``POST /generate``: token ids in; token ids, logprobs, finish reasons and the policy version
  that generated them out. ``channel`` and ``min_version`` wait (up to ``wait_s``) for a push of
  at least that version on that weight channel (a new channel starts with no version);
- ``POST /logprobs``: the engine's logprobs of a token sequence (checks, tests);
- ``POST /channel``: opens a weight channel (the worker hosts its store) and answers its port;
- ``POST /weights``: receives the tensors the trainer then broadcasts on the channel, loads them
  between generation calls and answers when they are live, with their version.

The engine runs one call at a time (a lock); bad requests get an error response, the worker
keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from rlreason.recipe import Recipe, RecipeError
from rlreason.rollout import channel
from rlreason.rollout.channel import TensorSpec
from rlreason.rollout_routing import to_wire

log = logging.getLogger(__name__)


class GenerateRequest(BaseModel):
    prompt_ids: list[list[int]]
    n: int = Field(ge=1)
    greedy: bool = False
    max_new_tokens: int | None = Field(default=None, ge=1)
    seeds: list[int] | None = None
    channel: str | None = None  # the trainer's weight channel: its pushes, not another trainer's
    min_version: int | None = None  # wait until the engine holds at least this version of them
    wait_s: float = Field(default=600.0, ge=0)
    routing: bool = False  # sampled completions carry the experts the engine routed their tokens to
    routing_weights: bool = False  # and those experts' combine weights


class LogprobsRequest(BaseModel):
    token_ids: list[int] = Field(min_length=2)


class ChannelRequest(BaseModel):
    backend: str = "gloo"
    timeout_s: float = Field(default=60.0, gt=0)


class WeightsRequest(BaseModel):
    channel: str
    version: int
    tensors: list[tuple[str, str, list[int]]]  # name, dtype, shape: in the order they are broadcast


class RolloutWorker:
    """The engine, the policy version it holds, and the open weight channel."""

    def __init__(self, engine, device: str):
        self.engine, self.device = engine, device
        self.engine_lock = threading.Lock()  # one engine call at a time
        self.version_changed = threading.Condition()
        # the open channel and the version of its weights the engine holds: changed together,
        # under version_changed's lock (and, when the engine's weights change, under engine_lock)
        self.version: int | None = None  # None: the recipe's own weights, no push on this channel yet
        self.channel_name: str | None = None
        self.group = None
        self.replaced: set[str] = set()  # channels another trainer's channel took over
        self.receiving = threading.Lock()  # one push at a time
        self.joined = threading.Event()  # the open channel's rendezvous is over
        self.joined.set()
        self.join_timeout_s = 60.0

    def generate(self, request: GenerateRequest) -> dict:
        if request.seeds is not None and len(request.seeds) != len(request.prompt_ids):
            raise ValueError(f"seeds: {len(request.seeds)} given for {len(request.prompt_ids)} prompts")
        if request.routing and not self.engine.record_routing:
            raise ValueError("routing: this worker's engine does not record the experts it routes to; start "
                             "it with moe.routing_replay: rollout in its recipe (the trainer's recipe)")
        if request.routing_weights and not self.engine.record_weights:
            raise ValueError("routing_weights: this worker's engine does not record combine weights; start it "
                             "with moe.replay_engine_weights: true in its recipe (the trainer's recipe)")
        waits = request.min_version is not None or request.channel is not None
        if waits:
            self.wait_for_version(request.channel, request.min_version, request.wait_s)
        with self.engine_lock:
            with self.version_changed:  # the weights cannot change under engine_lock: check them once more
                if waits and not self.holds(request.channel, request.min_version):
                    raise ValueError(f"channel: the weights changed before generation ({self.takeover_note()}); "
                                     "ask again")
                version, holder = self.version, self.channel_name
            rollouts = self.engine.generate(request.prompt_ids, request.n, greedy=request.greedy,
                                            max_new_tokens=request.max_new_tokens, seeds=request.seeds)
        routing = [to_wire(r) for r in rollouts.routing] if request.routing and rollouts.routing else None
        weights = ([to_wire(w) for w in rollouts.routing_weights]
                   if request.routing_weights and rollouts.routing_weights else None)
        return {"completion_ids": rollouts.completion_ids, "logprobs": rollouts.rollout_logprobs,
                "finish_reason": rollouts.finish_reason, "version": version, "channel": holder,
                "routing": routing, "routing_weights": weights}

    def holds(self, channel: str | None, wanted: int | None) -> bool:
        """Whether the engine holds version ``wanted`` or later pushed on ``channel`` (None: any;
        the recipe's own weights count as version 0 then). Under version_changed's lock."""
        if channel is not None and channel != self.channel_name:
            return False
        held = self.version if self.version is not None else (None if channel else 0)
        return held is not None and (wanted is None or held >= wanted)

    def takeover_note(self) -> str:
        return f"the worker now holds version {self.version} of channel {self.channel_name}"

    def wait_for_version(self, channel: str | None, wanted: int | None, wait_s: float) -> None:
        """Wait until the engine holds version ``wanted`` or later pushed on ``channel``; fail at
        once if another trainer's channel replaced ``channel``."""
        with self.version_changed:
            if not self.version_changed.wait_for(lambda: self.holds(channel, wanted) or channel in self.replaced,
                                                 timeout=wait_s):
                raise TimeoutError(f"min_version: waited {wait_s:g} s for policy version {wanted} on channel "
                                   f"{channel}; {self.takeover_note()}")
            if channel in self.replaced:
                raise ValueError(f"channel: {channel} was replaced by another trainer's channel; "
                                 f"{self.takeover_note()}")

    def logprobs(self, request: LogprobsRequest) -> list[float]:
        with self.engine_lock:
            return self.engine.logprobs_of(request.token_ids)

    def open_channel(self, request: ChannelRequest) -> dict:
        """A new weight channel (replacing any earlier one: a resumed trainer reconnects); the
        trainer joins it once this answers."""
        if request.backend == "nccl" and not torch.cuda.is_available():
            raise ValueError("backend: nccl needs a GPU on the worker; this one runs on CPU (use gloo)")
        store = channel.host_store(request.timeout_s)
        name = uuid.uuid4().hex
        joined = threading.Event()

        def join() -> None:
            try:
                group = channel.join(store, channel.RECEIVER, request.backend, request.timeout_s, name)
                with self.version_changed:  # a new trainer: its versions start with its first push
                    if self.channel_name is not None:
                        self.replaced.add(self.channel_name)
                        log.warning("weight channel %s replaces %s (another trainer, or a resumed one)",
                                    name, self.channel_name)
                    self.group, self.channel_name, self.version = group, name, None
                    self.version_changed.notify_all()
            except Exception:  # noqa: BLE001 - the trainer never joined: the channel stays closed
                log.exception("weight channel %s: the trainer did not join", name)
            finally:
                joined.set()

        self.joined, self.join_timeout_s = joined, request.timeout_s
        threading.Thread(target=join, daemon=True, name="weight-channel").start()
        return {"port": store.port, "channel": name, "store": store}

    def load_weights(self, request: WeightsRequest) -> dict:
        """Receive the broadcast tensors (while generation goes on), then load them between
        engine calls; answers once the new version is live."""
        if not self.joined.wait(timeout=self.join_timeout_s):
            raise ValueError(f"channel: the rendezvous of the weight channel is still going on after "
                             f"{self.join_timeout_s:g} s")
        with self.version_changed:  # the channel and its group, read together
            current, group = self.channel_name, self.group
        if request.channel != current or group is None:
            raise ValueError(f"channel: {request.channel!r} is not the open weight channel "
                             f"({current!r}); open one first")
        started = time.perf_counter()
        with self.receiving:
            specs = [TensorSpec(name, dtype, shape) for name, dtype, shape in request.tensors]
            weights = channel.receive(group, specs, self.device)
        received = time.perf_counter()
        with self.engine_lock:
            with self.version_changed:
                if self.channel_name != request.channel:
                    raise ValueError(f"channel: {request.channel} was replaced while its push arrived; "
                                     f"the push was dropped ({self.takeover_note()})")
            self.engine.load_weights(weights.items())
            with self.version_changed:  # live before another engine call: under engine_lock
                if self.channel_name != request.channel:  # replaced meanwhile: its trainer pushes anew
                    raise ValueError(f"channel: {request.channel} was replaced while its push loaded "
                                     f"({self.takeover_note()})")
                self.version = request.version if self.version is None else max(self.version, request.version)
                self.version_changed.notify_all()
        log.info("policy version %d live (%d tensors: received in %.2f s, loaded in %.2f s)", request.version,
                 len(specs), received - started, time.perf_counter() - received)
        return {"version": request.version}


def make_app(worker: RolloutWorker) -> FastAPI:
    """The HTTP face of ``worker``: handlers that touch the engine run in FastAPI's thread pool,
    so ``/health`` answers while they work."""
    app = FastAPI(title="rlreason rollout worker")
    stores = []  # keep each channel's store alive (its port is the channel's rendezvous)

    from vllm.exceptions import VLLMClientError  # what vLLM says the request caused

    def guarded(fn, request):
        try:
            return fn(request)
        except (ValueError, TimeoutError, VLLMClientError) as err:
            raise HTTPException(status_code=400, detail=f"{type(err).__name__}: {err}") from None
        except Exception as err:  # noqa: BLE001 - the engine refused: answer it, keep serving
            log.exception("request failed")
            raise HTTPException(status_code=500, detail=f"{type(err).__name__}: {err}") from None

    @app.get("/health")
    async def health() -> dict:
        return {"version": worker.version}

    @app.post("/generate")
    def generate(request: GenerateRequest) -> dict:
        return guarded(worker.generate, request)

    @app.post("/logprobs")
    def logprobs(request: LogprobsRequest) -> dict:
        return {"logprobs": guarded(worker.logprobs, request)}

    @app.post("/channel")
    def open_channel(request: ChannelRequest) -> dict:
        opened = guarded(worker.open_channel, request)
        stores[:] = [opened.pop("store")]
        return opened

    @app.post("/weights")
    def weights(request: WeightsRequest) -> dict:
        return guarded(worker.load_weights, request)

    return app


def build_worker(recipe: Recipe) -> RolloutWorker:
    """The recipe's vLLM engine, sized for its data as the trainer's would be, in this process."""
    from rlreason.chat import PromptRenderer, resolved_chat_template
    from rlreason.data import load_splits
    from rlreason.models import load_policy, load_tokenizer
    from rlreason.preflight import check_recipe
    from rlreason.rollout import make_engine, resolve_backend

    check_recipe(recipe, num_processes=1)
    if resolve_backend(recipe.rollout.backend) != "vllm":  # here, where the engine runs
        raise RecipeError(f"rollout.backend: {recipe.rollout.backend}; the rollout worker runs vLLM: set it "
                          "to vllm (or auto) and install vLLM where the worker runs")
    splits = load_splits(recipe.data)
    recipe = resolved_chat_template(recipe, splits.train)
    tokenizer = load_tokenizer(recipe.model)
    prompts = PromptRenderer(tokenizer, recipe.data)
    prompt_ids = prompts.ids([e.prompt for e in splits.train + splits.eval])
    loaded = load_policy(recipe.model, tokenizer)
    engine = make_engine(recipe, "vllm", loaded.model, loaded.tokenizer, prompt_ids, in_process=True)
    engine.policy = None  # the trainer pushes every version; the worker keeps only the engine's copy
    return RolloutWorker(engine, "cuda" if torch.cuda.is_available() else "cpu")


def serve(recipe: Recipe, host: str, port: int) -> None:
    """Build the worker and serve it until interrupted."""
    import uvicorn

    worker = build_worker(recipe)
    log.info("rollout worker serving %s on http://%s:%d", recipe.model.name_or_path or "a tiny model", host, port)
    uvicorn.run(make_app(worker), host=host, port=port, log_level="warning")
