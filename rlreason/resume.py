"""Continuing a run from one of its checkpoints: weights, optimizer, scheduler, RNG, data, step.

The optimizer state is saved whole (gathered from FSDP shards) and keyed by parameter name, so a
run can resume on another number of processes; the data position is global already.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_optimizer_state_dict,
                                                     set_optimizer_state_dict)

from rlreason.checkpoint import TRAINING_STATE


def training_state(policy: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> dict:
    """What a checkpoint needs beyond the weights; every process must call it (FSDP gathers)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {"optimizer": get_optimizer_state_dict(policy, optimizer, options=options),
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
    set_optimizer_state_dict(policy, optimizer, optim_state_dict=state["optimizer"],
                             options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return json.loads((checkpoint / "trainer_state.json").read_text())
