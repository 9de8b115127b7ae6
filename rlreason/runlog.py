"""What a run leaves behind: metrics.jsonl (one line per step), samples.jsonl, a progress bar."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from tqdm.auto import tqdm

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
                kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resumed_at
                        ] if resumed_at and path.exists() else []
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


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, default=jsonable) + "\n")


def jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
