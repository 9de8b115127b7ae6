"""Load the policy, its tokenizer and the reference model (hub id, local path, or tiny)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rlreason.recipe import ModelConfig, RecipeError
from rlreason.tiny import build_tiny_moe, build_tokenizer

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def load_policy(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> LoadedModel:
    """The trainable policy: pretrained weights, or a tiny random-init MoE; LoRA if asked.
    ``tokenizer``: the model's, if already loaded (``load_tokenizer``)."""
    if tokenizer is None:
        tokenizer = load_tokenizer(cfg)
    if cfg.name_or_path is None:
        model = build_tiny_moe(cfg.tiny, tokenizer).to(getattr(torch, cfg.dtype))
        log.info("built a tiny random-init %s (%d parameters)", cfg.tiny.architecture, count_parameters(model))
    else:
        model = AutoModelForCausalLM.from_pretrained(
            cfg.name_or_path, dtype=getattr(torch, cfg.dtype), trust_remote_code=cfg.trust_remote_code
        )
    choose_experts_implementation(model, cfg.experts_implementation)
    if cfg.lora is not None:
        model = add_lora(model, cfg)
    return LoadedModel(model=model, tokenizer=tokenizer)


def choose_experts_implementation(model: PreTrainedModel, choice: str) -> None:
    """Set the MoE experts' kernel (``model.experts_implementation``); ``auto`` keeps transformers'
    own pick (grouped_mm where it can use it, else eager)."""
    if choice == "auto":
        return
    if not model._can_set_experts_implementation():
        raise RecipeError(f"model.experts_implementation: {type(model).__name__} has no experts kernel to "
                          f"choose (not a transformers MoE); set it to auto")
    model.set_experts_implementation(choice)
    log.info("experts implementation: %s", choice)


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer (the tiny model's is built), with a padding token (EOS if it has none)."""
    if cfg.name_or_path is None:
        return build_tokenizer(cfg.tiny.tokenizer)
    if looks_local(cfg.name_or_path) and not Path(cfg.name_or_path).exists():
        raise RecipeError(f"model.name_or_path: no such directory: {cfg.name_or_path} (a run's "
                          "checkpoint appears only after that run; e.g. run the SFT stage first)")
    tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def looks_local(name: str) -> bool:
    """A filesystem path rather than a hub id ('org/name')."""
    return name.startswith((".", "/", "~")) or name.count("/") >= 2 or Path(name).exists()


def add_lora(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora.target_modules
    peft_config = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        target_parameters=cfg.lora.target_parameters or None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def reference_model(policy: PreTrainedModel, cfg: ModelConfig, beta: float) -> PreTrainedModel | None:
    """A frozen copy of the initial policy; None when beta is 0 or LoRA (adapters get disabled)."""
    if beta == 0 or cfg.lora is not None:
        return None
    ref = copy.deepcopy(policy).eval()
    ref.requires_grad_(False)
    return ref


def count_parameters(model: torch.nn.Module, trainable: bool = False) -> int:
    """Parameters of ``model`` (only those that train, with ``trainable``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)
