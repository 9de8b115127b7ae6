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
    backend = rollout_backend(recipe)
    check_staleness(recipe)
    if recipe.moe.replay_engine_weights and recipe.moe.routing_replay != "rollout":
        raise RecipeError(f"moe.replay_engine_weights: replays the engine's combine weights of the experts it "
                          f"routed to, which needs moe.routing_replay: rollout (it is {recipe.moe.routing_replay})")
    if backend == "vllm" and recipe.rollout.vllm.sleep_mode and not cuda_available():
        raise RecipeError("rollout.vllm.sleep_mode: needs a GPU (vLLM's sleep mode manages accelerator "
                          "memory); set it to false on CPU")
    if recipe.algo.loss_type == "vespo" and recipe.algo.rollout_correction not in ("none", "token"):
        raise RecipeError("algo.rollout_correction: vespo puts the rollout correction into its sequence "
                          "weight token by token; set it to token (or none)")
    if recipe.algo.loss_type == "clip_cov" and recipe.algo.clip_cov_lb >= recipe.algo.clip_cov_ub:
        raise RecipeError(f"algo.clip_cov_lb: {recipe.algo.clip_cov_lb} is not below algo.clip_cov_ub "
                          f"({recipe.algo.clip_cov_ub}), so clip_cov would drop no token; make it smaller")
    check_available(recipe.trainer.report_to)
    check_chat_settings(recipe)
    return Checked(suite, backend)


def check_staleness(recipe: Recipe) -> None:
    """Rollouts generated ahead (``rollout.max_staleness`` > 0) need a worker to generate them and a
    loss that reweights samples of older policies."""
    staleness = recipe.rollout.max_staleness
    if not staleness:
        return
    if recipe.rollout.mode != "server":
        raise RecipeError(f"rollout.max_staleness: {staleness} generates while the trainer updates, which "
                          "needs a rollout worker of its own; set rollout.mode: server (or max_staleness: 0)")
    if recipe.algo.rollout_correction == "none":
        raise RecipeError(f"rollout.max_staleness: {staleness} trains on samples of policies up to {staleness} "
                          "updates old; set algo.rollout_correction (token, sequence or sequence_mean) so the "
                          "loss reweights them by the engine's logprobs")
    if recipe.algo.dynamic_sampling:
        raise RecipeError(f"rollout.max_staleness: {staleness} with algo.dynamic_sampling is not supported yet "
                          "(a step's generation rounds are not known ahead); turn one of them off")


def rollout_backend(recipe: Recipe) -> str:
    """The backend generation runs on: with ``rollout.mode: server`` the worker's vLLM (which need
    not be installed where the trainer runs), else as ``resolve_backend`` finds it here."""
    if recipe.rollout.mode != "server":
        return resolve_backend(recipe.rollout.backend)
    if recipe.rollout.backend == "hf":
        raise RecipeError("rollout.backend: hf generates on the trainer's own policy; rollout.mode: server "
                          "runs vLLM in a worker: set rollout.backend to vllm (or auto), or rollout.mode to colocate")
    return "vllm"


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
