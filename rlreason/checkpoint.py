"""Checkpoints in Hugging Face format, written atomically (temp dir + rename)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import torch

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
    """The run's newest resumable ``checkpoint-N``."""
    resumable = [p for p in numbered_checkpoints(run_dir) if (p / TRAINING_STATE).exists()]
    return resumable[-1] if resumable else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoint-N directories (0 keeps every one)."""
    for old in numbered_checkpoints(run_dir)[:-keep] if keep else ():
        shutil.rmtree(old)
