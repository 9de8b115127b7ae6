"""Checkpoints in Hugging Face format, written atomically (temp dir + rename)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path

import torch

log = logging.getLogger(__name__)

TRAINING_STATE = "training_state.pt"  # optimizer, scheduler, RNG: what a resumed run needs


def save_checkpoint(model, tokenizer, directory: Path, state: dict, weights: dict | None = None,
                    training: dict | None = None) -> Path:
    """Write model, tokenizer and ``trainer_state.json`` to ``directory`` all at once.

    ``weights``: the model's full state dict when the live parameters are shards (FSDP).
    ``training``: optimizer/scheduler/RNG states, written as ``training_state.pt``.

    Everything goes to a hidden sibling first and is renamed into place, so a crash
    mid-save leaves the previous checkpoint (if any) intact and never a half-written one.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
        if training is not None:
            torch.save(training, tmp / TRAINING_STATE)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written copy keeps no space
        if out_of_space(err, directory.parent):
            raise OSError(errno.ENOSPC, f"no space left on the device saving {directory} "
                          f"({shutil.disk_usage(directory.parent).free >> 20} MiB free); earlier checkpoints are intact") from err
        raise
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old)
    else:
        os.replace(tmp, directory)
    return directory


def out_of_space(err: BaseException, where: Path) -> bool:
    """Whether a failed save ran out of disk (torch reports it as ``basic_ios::clear: iostream
    error``, safetensors as its own error type: the free space says it)."""
    if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or "No space left" in str(err):
        return True
    try:
        return isinstance(err, Exception) and shutil.disk_usage(where).free < 64 << 20
    except OSError:
        return False


def numbered_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete ``checkpoint-N`` directories, oldest first (saves are atomic, so only
    complete ones carry the name)."""
    numbered = [(int(p.name.removeprefix("checkpoint-")), p) for p in Path(run_dir).glob("checkpoint-*")
                if p.name.removeprefix("checkpoint-").isdigit()]
    return [path for _, path in sorted(numbered)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest resumable ``checkpoint-N`` that reads back whole; a newer one that does
    not (no optimizer state, a truncated weights or optimizer file, a garbled trainer_state.json)
    is passed over with a warning naming it and what is wrong."""
    for checkpoint in reversed(numbered_checkpoints(run_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        log.warning("passing over %s: %s", checkpoint, problem)
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What keeps ``checkpoint`` from being resumed (None: nothing). Reads headers and
    structure, not the tensors (the optimizer state is memory-mapped)."""
    from safetensors import safe_open

    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            return "trainer_state.json has no step"
    except (OSError, ValueError) as err:
        return f"trainer_state.json does not read back ({err})"
    if not (checkpoint / TRAINING_STATE).exists():
        return f"no {TRAINING_STATE} (saved without optimizer state: the model only)"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no weights (*.safetensors)"
    for path in weights:
        try:
            with safe_open(str(path), "pt"):  # checks the header, and that the file holds all it lists
                pass
        except Exception as err:  # safetensors raises its own error type
            return f"{path.name} does not read back ({err})"
    try:
        torch.load(checkpoint / TRAINING_STATE, weights_only=False, mmap=True)
    except Exception as err:
        return f"{TRAINING_STATE} does not read back ({type(err).__name__}: {err})"
    return None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoint-N directories (0 keeps every one)."""
    for old in numbered_checkpoints(run_dir)[:-keep] if keep else ():
        shutil.rmtree(old)
