"""What a run leaves behind: metrics.jsonl (one line per step), samples.jsonl, a progress bar."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# what the progress bar shows (at mu = 1 the GRPO loss is ~0 by construction, so not the loss)
PROGRESS_KEYS = {"reward": "reward", "kl": "kl", "completion_length": "len",
                 "eval/accuracy": "held_out_acc"}


class RunLog:
    def __init__(self, run_dir: Path, total_steps: int, description: str, enabled: bool = True,
                 resumed_at: int = 0, sinks: list | None = None):
        """``enabled``: this process writes the log (the main one, when there are several).
        ``resumed_at``: the step a resumed run continues after; lines of later steps (written
        before the interruption) are dropped, earlier ones kept. ``sinks``: TensorBoard / W&B
        writers (rlreason.sinks) that get the same metrics and samples."""
        self.enabled = enabled
        self.sinks = (sinks or []) if enabled else []
        self.metrics_path = run_dir / "metrics.jsonl"
        self.samples_path = run_dir / "samples.jsonl"
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            for path in (self.metrics_path, self.samples_path):
                kept = lines_up_to(path, resumed_at) if resumed_at and path.exists() else []
                path.write_text("".join(line + "\n" for line in kept))
        # redraw at most every 30 s when the output is a log file rather than a terminal
        self.shown: dict[str, str] = {}
        self.bar = tqdm(total=total_steps, initial=resumed_at, desc=description, disable=not enabled,
                        dynamic_ncols=True,
                        mininterval=0.1 if sys.stderr.isatty() else 30)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Append one line to metrics.jsonl and show the headline numbers on the bar."""
        if not self.enabled:
            return
        append_jsonl(self.metrics_path, {"step": step, **values})
        for sink in self.sinks:
            sink.metrics(step, values)
        self.shown.update({short: f"{values[k]:.3g}" for k, short in PROGRESS_KEYS.items() if k in values})
        if self.shown:
            self.bar.set_postfix(self.shown, refresh=False)

    def advance(self) -> None:
        self.bar.update(1)

    def samples(self, step: int, rows: list[dict]) -> None:
        for row in rows if self.enabled else ():
            append_jsonl(self.samples_path, {"step": step, **row})
        for sink in self.sinks:
            sink.samples(step, rows)

    def close(self) -> None:
        self.bar.close()
        for sink in self.sinks:
            sink.close()
        self.sinks = []


def lines_up_to(path: Path, step: int) -> list[str]:
    """The lines of a run's JSONL log up to ``step``; a line that is not a whole record (cut
    off when the disk filled, or the process was killed mid-write) is left out, with a warning
    naming the file and line."""
    kept = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line)
            at = record["step"]
        except (ValueError, TypeError, KeyError):
            log.warning("%s, line %d: not a whole record (cut off mid-write?); left out: %.80r", path, number, line)
            continue
        if isinstance(at, int) and at <= step:
            kept.append(line)
    return kept


def append_jsonl(path: Path, record: dict) -> None:
    """Append one line, whole or not at all: a write that fails (no space left on the device)
    takes back what it wrote and says which file, so no half line is left for a resume to meet."""
    data = (json.dumps(record, default=jsonable) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError as err:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise OSError(err.errno, f"writing {path}: {err.strerror or err}") from None
    finally:
        os.close(fd)


def jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
