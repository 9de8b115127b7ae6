"""What every training command sets up: data, rewards, model, optimizer, engine, run directory.

This module only builds; the step loop that uses what it builds is ``trainer.run_steps``.
Checks that can fail on user input (recipe keys, reward names, data files) run before any
model is loaded, so a bad recipe fails in a second, not after a download.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed

from rewards import RewardSuite
from rlreason.chat import PromptRenderer, resolved_chat_template
from rlreason.data import PromptSampler, Splits, load_splits
from rlreason.distributed import make_accelerator, parameters_sharded
from rlreason.evaluate import EvalResult
from rlreason.models import count_parameters, load_policy, load_tokenizer, reference_model
from rlreason.moe import freeze_routers
from rlreason.optimizer import build_optimizer
from rlreason.preflight import check_recipe
from rlreason.recipe import Recipe, to_dict
from rlreason.resume import restore_training, restore_weights
from rlreason.rollout import RolloutEngine, make_engine
from rlreason.runlog import RunLog
from rlreason.sinks import open_sinks

log = logging.getLogger(__name__)


@dataclass
class Session:
    recipe: Recipe
    accelerator: Accelerator
    model: torch.nn.Module  # wrapped by accelerate
    tokenizer: object
    prompts: PromptRenderer
    optimizer: torch.optim.Optimizer
    scheduler: object
    engine: RolloutEngine
    suite: RewardSuite
    splits: Splits
    sampler: PromptSampler
    log: RunLog
    reference: torch.nn.Module | None = None
    evals: list[tuple[int, EvalResult]] = field(default_factory=list)
    engine_in_sync: bool = True  # the engine starts from the policy; each optimizer step stales it
    start_step: int = 0  # the step a resumed run continues after
    entropy_coef: float = 0.0  # the entropy bonus's coefficient (adaptive control moves it)
    last_world_entropy: float = math.inf  # mean token entropy of the last optimizer step (adaptive control)
    ahead: object = None  # rollout.RolloutsAhead: batches generated ahead (rollout.max_staleness > 0)

    @property
    def policy(self) -> torch.nn.Module:
        """The unwrapped policy (for generation and saving)."""
        return self.accelerator.unwrap_model(self.model)

    def prompt_ids(self, examples) -> list[list[int]]:
        """The examples' prompts as the engine gets them (conversations chat-templated)."""
        return self.prompts.ids([e.prompt for e in examples])


def open_session(recipe: Recipe, description: str, with_reference: bool = False,
                 resume: Path | None = None, updates_per_step: int = 1) -> Session:
    """Validate inputs, then load the model and build everything a training loop needs;
    ``resume``: a checkpoint of this run to continue from; ``updates_per_step``: optimizer steps
    per training step (GRPO's ``num_iterations``), for the learning-rate schedule's length."""
    checked = check_recipe(recipe)
    splits = load_splits(recipe.data)
    recipe = resolved_chat_template(recipe, splits.train)
    accelerator = make_accelerator(recipe.trainer.micro_batch_size, recipe.trainer.max_grad_norm)
    set_seed(recipe.trainer.seed)
    tokenizer = load_tokenizer(recipe.model)
    prompts = PromptRenderer(tokenizer, recipe.data)
    prompt_ids = prompts.ids([e.prompt for e in splits.train + splits.eval])  # a template error: before the weights load
    loaded = load_policy(recipe.model, tokenizer)
    if recipe.trainer.gradient_checkpointing:  # active in training mode only: generation is unaffected
        loaded.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if recipe.moe.freeze_router and not freeze_routers(loaded.model):
        log.warning("moe.freeze_router: the model has no trainable MoE routers")
    t = recipe.trainer
    optimizer, scheduler = build_optimizer(loaded.model, t, t.max_steps * updates_per_step)
    reference = reference_model(loaded.model, recipe.model, recipe.algo.beta) if with_reference else None
    if resume is not None:  # after the reference copy: the reference stays the initial policy
        restore_weights(loaded.model, resume, recipe.model.dtype)
    # the scheduler stays unprepared: accelerate would step it once per process per step (it
    # assumes each process adds a batch), while prompts_per_step is already the global batch
    model, optimizer = accelerator.prepare(loaded.model, optimizer)
    if reference is not None:
        reference = reference.to(accelerator.device)
    resumed = {"step": 0}
    if resume is not None:
        resumed = restore_training(accelerator.unwrap_model(model), optimizer.optimizer, scheduler, resume)
    if accelerator.is_main_process:
        write_config(recipe)
    log.info("%s: %d parameters (%d trainable) in %s, %d process%s", description,
             count_parameters(loaded.model), count_parameters(loaded.model, trainable=True), recipe.run_dir,
             accelerator.num_processes, "" if accelerator.num_processes == 1 else "es")
    sampler = PromptSampler(splits.train, t.prompts_per_step, t.seed, accelerator.process_index,
                            accelerator.num_processes)
    if resume is not None:
        sampler.restore(**resumed["sampler"])
    return Session(
        recipe=recipe, accelerator=accelerator, model=model, tokenizer=loaded.tokenizer, prompts=prompts,
        optimizer=optimizer, scheduler=scheduler,
        engine=make_engine(recipe, checked.backend, accelerator.unwrap_model(model), loaded.tokenizer,
                           prompt_ids, parameters_sharded(accelerator), version=resumed["step"]),
        suite=checked.suite, splits=splits, sampler=sampler,
        log=RunLog(recipe.run_dir, t.max_steps, description, accelerator.is_main_process,
                   resumed_at=resumed["step"],
                   sinks=open_sinks(t.report_to, recipe.run_dir, recipe.name, to_dict(recipe), resumed["step"])
                   if accelerator.is_main_process else []),
        reference=reference, start_step=resumed["step"],
        **restored_entropy_control(recipe, resumed),
    )


def restored_entropy_control(recipe: Recipe, resumed: dict) -> dict:
    """The entropy bonus's coefficient and last measured entropy: the recipe's at the start, the
    checkpoint's on resume (None in the checkpoint: no entropy measured yet)."""
    saved = resumed.get("entropy_control")
    if saved is None:
        return {"entropy_coef": recipe.algo.entropy_coef, "last_world_entropy": math.inf}
    last = saved["last_world_entropy"]
    return {"entropy_coef": saved["coef"], "last_world_entropy": math.inf if last is None else last}


def write_config(recipe: Recipe) -> None:
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    (recipe.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False))
