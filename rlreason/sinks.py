"""Optional metric sinks beside metrics.jsonl (``trainer.report_to``): TensorBoard and Weights & Biases.

Each gets every step's metrics and the samples table (prompt, completion, each reward's score)
every ``trainer.log_samples_every`` steps. W&B follows its own environment: ``WANDB_MODE=offline``
writes the run under RUN_DIR/wandb for a later ``wandb sync``; ``WANDB_PROJECT`` names the project
(default: rlreason).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from rlreason.recipe import RecipeError

SAMPLE_COLUMNS = ("prompt", "completion", "reward")


def sample_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Column names and rows of the samples table: prompt, completion, total reward, then one
    column per reward function."""
    functions = sorted({name for row in rows for name in row.get("rewards", {})})
    columns = [*SAMPLE_COLUMNS, *functions]
    return columns, [[row.get(c) for c in SAMPLE_COLUMNS] + [row.get("rewards", {}).get(f) for f in functions]
                     for row in rows]


def markdown(columns: list[str], rows: list[list]) -> str:
    """A Markdown table (TensorBoard renders text summaries as Markdown)."""
    def cell(value) -> str:
        text = f"{value:.3g}" if isinstance(value, float) else "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


class TensorBoardSink:
    def __init__(self, run_dir: Path, resumed_at: int):
        from torch.utils.tensorboard import SummaryWriter  # the package: see check_available
        # a resumed run drops what the interrupted one logged after its checkpoint
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"),
                                    purge_step=resumed_at + 1 if resumed_at else None)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(name, value, step)

    def samples(self, step: int, rows: list[dict]) -> None:
        self.writer.add_text("samples", markdown(*sample_table(rows)), step)

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    def __init__(self, run_dir: Path, name: str, config: dict):
        import wandb  # the package: see check_available

        self.wandb = wandb
        # one W&B run per run directory: a resumed run continues it
        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        id_file.write_text(run_id)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rlreason"), name=name, id=run_id,
                              resume="allow", dir=str(run_dir), config=config)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.run.log({k: v for k, v in values.items() if isinstance(v, (int, float))}, step=step)

    def samples(self, step: int, rows: list[dict]) -> None:
        columns, data = sample_table(rows)
        self.run.log({"samples": self.wandb.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        self.run.finish()


def check_available(report_to: list[str]) -> None:
    """Fail before any model loads when a chosen sink's package is not installed."""
    import importlib.util

    for sink in report_to:  # each sink's package has the sink's name
        if importlib.util.find_spec(sink) is None:
            raise RecipeError(f"trainer.report_to: {sink} needs the {sink} package: "
                              f"pip install 'rlreason[{sink}]' (or drop it from report_to)")


def open_sinks(report_to: list[str], run_dir: Path, name: str, config: dict, resumed_at: int) -> list:
    sinks = []
    for sink in report_to:
        if sink == "tensorboard":
            sinks.append(TensorBoardSink(run_dir, resumed_at))
        elif sink == "wandb":
            sinks.append(WandbSink(run_dir, name, config))
    return sinks
