"""The recipe's cross-field and environment checks, before anything loads.

Each raises ``RecipeError`` naming the key; ``open_session`` and ``evaluate_recipe`` call
``check_recipe`` first, so a bad recipe fails in about a second. What the checks build (the
reward suite, the backend that will run) is handed on, not built again. The other checks on
user input run where their input is read, still before the rollout engine starts: single keys
when the recipe loads (``recipe.py``), data files and columns in ``data.load_splits``, prompts
against the model's context in ``rollout.make_engine``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rewards.suite import RewardSuite
from rlreason.recipe import Recipe, RecipeError
from rlreason.rollout import resolve_backend
from rlreason.sinks import check_available


@dataclass(frozen=True)
class Checked:
    """What passing the checks resolved: the reward functions and the rollout backend."""

    suite: RewardSuite
    backend: str  # "vllm" or "hf", never "auto"


def check_recipe(recipe: Recipe, num_processes: int | None = None) -> Checked:
    """Cross-field and environment checks of ``recipe`` for a launch of ``num_processes``
    (default: the launcher's ``WORLD_SIZE``)."""
    suite = RewardSuite(recipe.rewards)  # an unknown reward name fails here, naming rewards[i].name
    metric = recipe.evaluation.metric
    if metric is not None and metric not in suite.names:
        raise RecipeError(f"evaluation.metric: {metric!r} is not one of the rewards ({', '.join(suite.names)}); "
                          "name one of them, or leave it null for the first")
    processes = num_processes or int(os.environ.get("WORLD_SIZE", "1"))
    if recipe.trainer.prompts_per_step % processes:
        raise RecipeError(f"trainer.prompts_per_step: {recipe.trainer.prompts_per_step} prompts cannot be "
                          f"shared evenly by {processes} processes; make it a multiple of {processes}")
    backend = resolve_backend(recipe.rollout.backend)
    if backend == "vllm" and recipe.rollout.vllm.sleep_mode and not cuda_available():
        raise RecipeError("rollout.vllm.sleep_mode: needs a GPU (vLLM's sleep mode manages accelerator "
                          "memory); set it to false on CPU")
    check_available(recipe.trainer.report_to)
    check_chat_settings(recipe)
    return Checked(suite, backend)


def check_chat_settings(recipe: Recipe) -> None:
    """Settings of the chat template that nothing would read."""
    data = recipe.data
    if data.chat_template is False:
        for key, value in (("system_prompt", data.system_prompt), ("chat_template_kwargs", data.chat_template_kwargs)):
            if value:
                raise RecipeError(f"data.{key}: set, but data.chat_template: false renders no template; "
                                  "set data.chat_template to auto or true, or drop it")


def cuda_available() -> bool:
    import torch  # here, not at the top: the other checks answer before torch has loaded

    return torch.cuda.is_available()
