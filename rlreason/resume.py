"""A run's checkpoints, written and read back: weights, optimizer, scheduler, RNG, data, step.

The optimizer state is saved whole (gathered from FSDP shards or DeepSpeed ZeRO partitions) in
torch's full optimizer state dict, keyed by parameter name, so a run can resume on another number
of processes and under another strategy; the data position is global already.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_optimizer_state_dict,
                                                     set_optimizer_state_dict)

from rlreason.checkpoint import TRAINING_STATE, save_checkpoint
from rlreason.distributed import parameters_sharded

if TYPE_CHECKING:
    from rlreason.session import Session


def save_session(session: Session, name: str, step: int, resumable: bool = True) -> Path:
    """Save the policy (HF format) as ``name`` in the run directory, written by the main process
    only; sharded parameters (FSDP, ZeRO-3) are gathered from every process first. ``resumable``:
    with the optimizer, scheduler, RNG and data states a resumed run needs."""
    accelerator = session.accelerator
    accelerator.wait_for_everyone()
    weights = None
    if parameters_sharded(accelerator):
        weights = accelerator.get_state_dict(session.model)  # DeepSpeed: None off the main process
        weights = tied_as_in(session.policy, weights) if weights is not None else None
    training = (training_state(session.policy, session.optimizer.optimizer, session.scheduler)
                if resumable else None)
    target = session.recipe.run_dir / name
    if accelerator.is_main_process:
        last = session.last_world_entropy
        state = {"step": step, "sampler": session.sampler.state(),
                 "entropy_control": {"coef": session.entropy_coef,
                                     "last_world_entropy": None if math.isinf(last) else last}}
        save_checkpoint(session.policy, session.tokenizer, target, state, weights, training)
    accelerator.wait_for_everyone()
    return target


def tied_as_in(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gathered weights with the model's shared parameters (tied embeddings) as one tensor again,
    so the checkpoint stores them once, as an unsharded model's does."""
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first and name in weights:
            weights[name] = weights[first[id(param)]]
        first.setdefault(id(param), name)
    return weights


def training_state(policy: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> dict:
    """What a checkpoint needs beyond the weights; every process must call it (FSDP and ZeRO gather)."""
    if zero_partitioned(policy):
        optimizer_state = zero_optimizer_state(policy, optimizer)
    else:
        optimizer_state = get_optimizer_state_dict(policy, optimizer,
                                                   options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {"optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}


def restore_weights(policy: torch.nn.Module, checkpoint: Path, dtype: str) -> None:
    """Load a checkpoint's weights into the freshly built policy (before it is wrapped)."""
    if hasattr(policy, "peft_config"):  # a checkpoint of a LoRA run holds the adapters only
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(policy, load_file(checkpoint / "adapter_model.safetensors"))
        return
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, dtype))
    policy.load_state_dict(saved.state_dict())


def restore_training(policy: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                     checkpoint: Path) -> dict:
    """Optimizer, scheduler and RNG states from ``checkpoint``; returns its trainer_state.json."""
    state = torch.load(checkpoint / TRAINING_STATE, weights_only=False)
    if zero_partitioned(policy):
        restore_zero_optimizer_state(policy, optimizer, state["optimizer"])
    else:
        set_optimizer_state_dict(policy, optimizer, optim_state_dict=state["optimizer"],
                                 options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return json.loads((checkpoint / "trainer_state.json").read_text())


def zero_partitioned(policy: torch.nn.Module) -> bool:
    """Whether DeepSpeed ZeRO holds the optimizer state (as flat partitions, not per parameter)."""
    return any(hasattr(p, "_hp_mapping") or hasattr(p, "ds_id") for p in policy.parameters() if p.requires_grad)


def zero_optimizer_state(policy: torch.nn.Module, optimizer) -> dict:
    """A ZeRO optimizer's state in torch's full optimizer state dict format (what
    ``get_optimizer_state_dict(full_state_dict=True)`` gives for the same model unpartitioned):
    DeepSpeed gathers each parameter's moments; every process must call this together."""
    from deepspeed.utils import safe_get_full_optimizer_state

    inner = optimizer.optimizer  # the torch optimizer, stepping the flat fp32 partitions
    keys = [key for key in next(iter(inner.state.values())) if key != "step"]
    step = next(iter(inner.state.values()))["step"]
    named = [(name, p) for name, p in policy.named_parameters() if p.requires_grad]
    state = {name: {"step": torch.as_tensor(step, dtype=torch.float32).clone(),
                    **{key: safe_get_full_optimizer_state(p, key).detach().cpu() for key in keys}}
             for name, p in named}
    if len(inner.param_groups) != 1:
        raise NotImplementedError("a ZeRO optimizer with several parameter groups")
    group = {k: v for k, v in inner.param_groups[0].items() if k != "params"}
    return {"state": state, "param_groups": [{**group, "params": [name for name, _ in named]}]}


def restore_zero_optimizer_state(policy: torch.nn.Module, optimizer, saved: dict) -> None:
    """Load a full optimizer state dict (from any strategy) into a ZeRO optimizer's partitions."""
    from deepspeed.utils import safe_set_full_optimizer_state

    inner = optimizer.optimizer
    keys = [key for key in next(iter(saved["state"].values())) if key != "step"]
    # torch's AdamW makes its state at the first step: make it now, for each flat fp32 partition
    # (ZeRO-3 hands them to the torch optimizer only while it steps, so ask DeepSpeed for them)
    partitions = getattr(optimizer, "fp32_partitioned_groups_flat", None) or optimizer.single_partition_of_fp32_groups
    for partition in partitions:
        state = inner.state[partition]
        state.setdefault("step", torch.tensor(0.0))
        for key in keys:
            state.setdefault(key, torch.zeros_like(partition))
    if hasattr(optimizer, "_lazy_init_hp_params_optimizer_state"):  # ZeRO-1/2: point the parameters at it
        optimizer._hp_optimizer_states_linked = False
        optimizer._lazy_init_hp_params_optimizer_state()
    for name, p in policy.named_parameters():
        if p.requires_grad:
            for key, value in saved["state"][name].items():
                if key != "step":
                    safe_set_full_optimizer_state(p, value.to(p.device, torch.float32), key)
    step = next(iter(saved["state"].values()))["step"]
    for partition in inner.state.values():
        current = partition["step"]
        partition["step"] = (torch.as_tensor(step, dtype=current.dtype, device=current.device).clone()
                             if torch.is_tensor(current) else int(step))
    for group in inner.param_groups:
        group.update({k: v for k, v in saved["param_groups"][0].items() if k != "params"})
