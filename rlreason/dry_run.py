"""Check a recipe meant for big hardware on this machine, without its weights.

The recipe is loaded and validated as it is (data files, rewards, every key); then one GRPO step
runs on a stand-in: the recipe's MoE family (``model.tiny.architecture``) built at tiny size,
with its LoRA, MoE and algorithm settings, and short rollouts. The stand-in's tokenizer is a
byte-level BPE with its family's chat template (DeepSeek-V3's for the DeepSeek families, ChatML
for the others), so conversational prompts and the recipe's template switches are rendered as a
chat model would get them. What cannot be checked without the real weights (their own
tokenizer, memory, speed) is not.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import TYPE_CHECKING

from rlreason.recipe import Recipe

if TYPE_CHECKING:
    from rlreason.trainer import RunResult


STAND_IN_CONTEXT = 8192


def stand_in_tokenizer(architecture: str) -> str:
    return "deepseek" if architecture.startswith("deepseek") else "chatml"


def stand_in(recipe: Recipe, output_dir: str) -> Recipe:
    """The same recipe on the tiny model of its family, with a single short step."""
    r = dataclasses.replace
    return r(
        recipe,
        output_dir=output_dir,
        # a tokenizer trained on little text spells a real prompt in hundreds of tokens: a context that fits them
        model=r(recipe.model, name_or_path=None, dtype="float32",
                tiny=r(recipe.model.tiny, tokenizer=stand_in_tokenizer(recipe.model.tiny.architecture),
                       max_position_embeddings=max(recipe.model.tiny.max_position_embeddings, STAND_IN_CONTEXT))),
        data=r(recipe.data, num_eval=4),
        rollout=r(recipe.rollout, backend="hf", num_generations=2, max_new_tokens=8),
        trainer=r(recipe.trainer, max_steps=1, prompts_per_step=2, micro_batch_size=4, save_every=0),
        evaluation=r(recipe.evaluation, every=0, batch_size=4),
        algo=r(recipe.algo, max_sampling_rounds=min(recipe.algo.max_sampling_rounds, 2)),
    )


def dry_run(recipe: Recipe) -> RunResult:
    """Validate ``recipe`` and take one step on its tiny stand-in, in a throwaway directory."""
    from rlreason.trainer import train

    with tempfile.TemporaryDirectory(prefix="rlreason-dry-run-") as tmp:
        return train(stand_in(recipe, tmp))
