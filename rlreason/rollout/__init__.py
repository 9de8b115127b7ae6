"""Rollout engines: generate G completions per prompt and return ``Rollouts``."""

from __future__ import annotations

from typing import Protocol

from rlreason.recipe import RolloutConfig
from rlreason.types import Rollouts


class RolloutEngine(Protocol):
    def generate(self, prompt_ids: list[list[int]], n: int, greedy: bool = False,
                 max_new_tokens: int | None = None) -> Rollouts: ...

    def sync_weights(self) -> None: ...


def make_engine(cfg: RolloutConfig, model, tokenizer) -> RolloutEngine:
    """The engine the recipe names, sharing the policy's weights."""
    if cfg.backend == "hf":
        from rlreason.rollout.hf import HFRollout

        return HFRollout(model, tokenizer, cfg)
    raise ValueError(f"rollout.backend: unknown backend {cfg.backend!r}")
