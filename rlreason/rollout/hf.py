"""Rollouts with transformers ``generate`` on the policy itself (no weight copy to sync).

Sampling is seeded per prompt: each prompt's ``n`` completions are drawn with their own
generator, so what a prompt gets does not depend on which other prompts share its batch (or
its process). ``generate`` runs greedily over scores that keep only the token drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from transformers.generation import (LogitsProcessor, LogitsProcessorList, MinNewTokensLengthLogitsProcessor,
                                     TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from rlreason.logprobs import token_logprobs
from rlreason.moe import routing
from rlreason.recipe import RolloutConfig
from rlreason.rollout.decode_attention import grouped_decoding
from rlreason.rollout.kv_cache import preallocated_cache
from rlreason.rollout.shrinking_decode import greedy_draw, shrinking_decode, without
from rlreason.rollout_routing import combine_weights, per_completion
from rlreason.rollouts import Rollouts


class HFRollout:
    def __init__(self, model, tokenizer, cfg: RolloutConfig, stop_ids: list[int], synced: bool = False,
                 record_routing: bool = False, record_weights: bool = False):
        """``stop_ids``: the tokens that end a completion (EOS, the chat template's end of turn);
        ``synced``: the model is sharded across processes (FSDP), so every process must run the
        same number of forward passes, until the last one is done; ``record_routing``: sampled
        completions carry the experts each MoE layer routed their tokens to
        (``rollout_routing``; for ``moe.routing_replay: rollout``); ``record_weights``: and their
        combine weights (``moe.replay_engine_weights``)."""
        self.model, self.tokenizer, self.cfg, self.synced = model, tokenizer, cfg, synced
        self.stop_ids = stop_ids
        self.record_routing = record_routing
        self.record_weights = record_weights

    def sync_weights(self, version: int | None = None) -> None:
        """Nothing to do: generation runs on the policy's own parameters."""

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], n: int, greedy: bool = False,
                 max_new_tokens: int | None = None, seeds: list[int] | None = None) -> Rollouts:
        """``n`` completions per prompt, grouped prompt by prompt; ``seeds``: one per prompt
        (default: drawn from torch's global generator)."""
        cfg, pad, device = self.cfg, self.tokenizer.pad_token_id, self.model.device
        rows = [p for p in prompt_ids for _ in range(n)]  # (B*n): each prompt n times in a row
        static = cfg.hf.static_cache
        input_ids, attention_mask = left_padded(rows, pad, device, multiple_of=cfg.hf.pad_prompts_to if static else 1)
        max_new_tokens = max_new_tokens or cfg.max_new_tokens
        sampler = None
        if not greedy:
            if seeds is None:
                seeds = torch.randint(2**31, (len(prompt_ids),)).tolist()
            suppress_eos = LogitsProcessorList([MinNewTokensLengthLogitsProcessor(
                input_ids.shape[1], cfg.min_new_tokens, self.stop_ids, device)] if cfg.min_new_tokens else [])
            sampler = SeededSampling(sampling_warpers(cfg), seeds, n, device, max_new_tokens, cfg.temperature,
                                     suppress_eos)
        cache = None if static else preallocated_cache(self.model.config, input_ids.shape[1] + max_new_tokens)
        # generate() where only it will do: a static (compiled) cache, stop strings, FSDP's lockstep
        shrinking = cfg.hf.drop_finished_rows and not static and not cfg.stop and not self.synced
        was_training = self.model.training
        self.model.eval()
        tape = {} if self.record_routing and not greedy else None  # greedy: evaluation, nothing to replay
        weights = {} if tape is not None and self.record_weights else None
        forward_rows = [] if tape is not None else None
        try:
            if shrinking:
                with grouped_decoding(self.model), recorded(self.model, tape, weights):
                    generated, logprobs = shrinking_decode(
                        self.model, input_ids, attention_mask, cache, sampler.draw if sampler else greedy_draw,
                        max_new_tokens, self.stop_ids, cfg.min_new_tokens, forward_rows)
                return with_routing(self.trim(prompt_ids, generated, logprobs if sampler else None, n),
                                    tape, weights, forward_rows, input_ids.shape[1])
            with (weights_dtype_forward(self.model) if static else contextlib.nullcontext(), grouped_decoding(self.model),
                  recorded(self.model, tape, weights)):
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                    temperature=None, top_p=None, top_k=None, repetition_penalty=1.0,
                    logits_processor=LogitsProcessorList([sampler] if sampler else []),
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=(cfg.min_new_tokens or None) if greedy else None,  # sampling: in the sampler
                    stop_strings=cfg.stop or None, tokenizer=self.tokenizer if cfg.stop else None,
                    pad_token_id=pad, eos_token_id=self.stop_ids,
                    return_dict_in_generate=True, synced_gpus=self.synced,
                    cache_implementation="static" if static else None, past_key_values=cache,
                )
        finally:
            self.model.train(was_training)
        generated = out.sequences[:, input_ids.shape[1]:]  # (B*n, T)
        logprobs = sampler.drawn_logprobs().tolist() if sampler else None
        if tape:  # generate keeps every row in every decoding forward
            forward_rows = [torch.arange(len(rows))] * (len(next(iter(tape.values()))) - 1)
        return with_routing(self.trim(prompt_ids, generated.tolist(), logprobs, n), tape, weights, forward_rows,
                            input_ids.shape[1])

    def trim(self, prompt_ids, generated, logprobs, n) -> Rollouts:
        """Cut each completion after its stop token or stop string; record why it ended."""
        completions, kept_logprobs, reasons = [], [], []
        for i, ids in enumerate(generated):
            length, reason = self.completion_length(ids)
            completions.append(ids[:length])
            reasons.append(reason)
            if logprobs is not None:
                kept_logprobs.append(logprobs[i][:length])
        return Rollouts(
            prompt_ids=[list(p) for p in prompt_ids for _ in range(n)],
            completion_ids=completions,
            rollout_logprobs=kept_logprobs if logprobs is not None else None,
            finish_reason=reasons,
            group_index=[i // n for i in range(len(completions))],
        )

    def completion_length(self, ids: list[int]) -> tuple[int, str]:
        ends = [k for k, token in enumerate(ids) if token in self.stop_ids]
        if ends:
            return ends[0] + 1, "stop"
        for length in range(1, len(ids) + 1) if self.cfg.stop else ():
            text = self.tokenizer.decode(ids[:length])
            if any(s in text for s in self.cfg.stop):
                return length, "stop"
        return len(ids), "length"


def recorded(model, tape: dict | None, weights: dict | None = None):
    """Record every MoE router's selections into ``tape``, and their combine weights into
    ``weights`` if given (``tape`` None: a context that does nothing)."""
    if tape is None:
        return contextlib.nullcontext()
    return routing(model, torch.ones(0), record=tape, record_weights=weights)


def with_routing(rollouts: Rollouts, tape: dict | None, weights: dict | None, forward_rows: list | None,
                 prompt_width: int) -> Rollouts:
    """``rollouts`` with each completion's recorded routing (``rollout_routing.per_completion``)
    and, if recorded, its combine weights."""
    if not tape:
        return rollouts
    lengths = list(map(len, rollouts.prompt_ids)), list(map(len, rollouts.completion_ids))
    return dataclasses.replace(
        rollouts, routing=per_completion(tape, forward_rows, prompt_width, *lengths),
        routing_weights=per_completion(weights, forward_rows, prompt_width, *lengths, finish=combine_weights)
        if weights else None)


@contextlib.contextmanager
def weights_dtype_forward(model):
    """The model's own forward, without accelerate's mixed-precision autocast, for the duration.

    Under bfloat16 autocast the attention keys come out float32 (rotary embeddings are applied in
    float32) and the values bfloat16; a static cache holds one dtype, so decoding with it runs in
    the weights' dtype instead."""
    original = getattr(model, "_original_forward", None)  # set by accelerate's prepare under autocast
    if original is None:
        yield
        return
    patched = model.forward
    model.forward = original
    try:
        yield
    finally:
        model.forward = patched


def sampling_warpers(cfg: RolloutConfig) -> LogitsProcessorList:
    """Temperature, then top-k, then top-p, as transformers and vLLM apply them."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(cfg.temperature)])
    if cfg.top_k:
        warpers.append(TopKLogitsWarper(cfg.top_k))
    if cfg.top_p < 1.0:
        warpers.append(TopPLogitsWarper(cfg.top_p))
    return warpers


class SeededSampling(LogitsProcessor):
    """Draws each group's next tokens from the group's own generator; returns scores that are
    ``-inf`` everywhere but at the drawn token, so greedy decoding picks it.

    Each group's uniforms for the whole completion are drawn up front from its generator (what a
    prompt gets depends on its seed alone, not on the batch), and every step samples all rows at
    once by inverse CDF: no per-group sampling call per token (docs/hf-sampler.md measures both).

    It sees the raw logits (the only processor ``generate`` runs), records the drawn token's
    logprob under ``softmax(logits / temperature)`` (what the trainer's forward computes), then
    applies ``before_warpers`` (end-of-sequence suppression) and the sampling warpers. Keeping one
    logprob per token, not the logits, holds (B*G, T) floats instead of (B*G, T, V)."""

    def __init__(self, warpers: LogitsProcessorList, seeds: list[int], group_size: int, device,
                 max_new_tokens: int, temperature: float = 1.0, before_warpers: LogitsProcessorList | None = None):
        self.warpers, self.temperature = warpers, temperature
        self.before_warpers = before_warpers or LogitsProcessorList()
        self.uniforms = torch.cat([  # (B*G, T)
            torch.rand(group_size, max_new_tokens, generator=torch.Generator(device).manual_seed(seed), device=device)
            for seed in seeds])
        self.logprobs: list[torch.Tensor] = []  # one (B*G,) per generated position

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float()
        masked = self.before_warpers(input_ids, logits)  # transformers' processors return new tensors
        drawn, logprobs = self.pick(logits, masked, self.uniforms[:, len(self.logprobs)])  # (B*G, 1), (B*G,)
        self.logprobs.append(logprobs)
        return torch.full_like(scores, float("-inf")).scatter_(1, drawn, 0.0)

    def draw(self, logits: torch.Tensor, rows: torch.Tensor, step: int, banned: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``shrinking_decode`` form of ``__call__``: (A, V) raw logits of batch rows ``rows``
        at completion position ``step`` -> (A,) drawn tokens (never one of ``banned``) and their
        logprobs, from the same uniforms and warpers."""
        raw = logits.float()
        drawn, logprobs = self.pick(raw, without(raw, banned), self.uniforms[rows, step])
        return drawn[:, 0], logprobs

    def pick(self, raw: torch.Tensor, masked: torch.Tensor, uniforms: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, V) raw logits, the same with the tokens that may not be drawn at ``-inf``, (N,)
        uniforms -> (N, 1) tokens drawn from the warped ``masked`` and their (N,) logprobs under
        ``softmax(raw / temperature)``."""
        probs = self.warpers(None, masked).softmax(dim=-1)  # (N, V); the warpers read no input ids
        drawn = inverse_cdf_sample(probs, uniforms)  # (N, 1)
        return drawn, token_logprobs(raw.unsqueeze(1), drawn, self.temperature)[:, 0]

    def drawn_logprobs(self) -> torch.Tensor:
        """(B*G, T): the logprob of every drawn token, position by position."""
        return torch.stack(self.logprobs, dim=1)


def inverse_cdf_sample(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """(N, V) probabilities, (N,) uniforms in [0, 1) -> (N, 1) token ids: in each row, the first
    token whose cumulative probability exceeds ``u`` times the row's total.

    A token of probability 0 is never drawn: the cumulative sum does not rise at it, and
    ``u * total`` rounds below ``total`` for every float ``u < 1``, so some token's cumulative
    probability always exceeds it."""
    cdf = probs.cumsum(dim=-1)  # (N, V), non-decreasing
    return torch.searchsorted(cdf, uniforms.unsqueeze(-1) * cdf[:, -1:], right=True)  # (N, 1)


def left_padded(prompt_ids: list[list[int]], pad_id: int, device, multiple_of: int = 1
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), each row's tokens at the right end; the width is the longest
    prompt's, rounded up to ``multiple_of``."""
    width = -(-max(len(p) for p in prompt_ids) // multiple_of) * multiple_of
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for i, p in enumerate(prompt_ids):
        input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attention_mask[i, width - len(p):] = 1
    return input_ids.to(device), attention_mask.to(device)
