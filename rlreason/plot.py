"""`rlreason plot`: a run's metrics.jsonl as one PNG of panels against step; several runs overlay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class PlotError(ValueError):
    """A run directory that cannot be plotted; the message names it."""


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    keys: tuple[str, ...] = ()  # metric names drawn as lines; empty: chosen per run (see series)
    prefix: str = ""  # every metric under this prefix, e.g. the per-function rewards


PANELS = (
    Panel("Reward per function", "mean reward", prefix="reward/"),
    Panel("Held-out accuracy", "accuracy", keys=("eval/accuracy",)),
    Panel("Completion length", "tokens", keys=("completion_length",)),
    Panel("KL to the reference", "KL", keys=("kl",)),
    Panel("Entropy", "nats / token", keys=("entropy",)),
    Panel("Clip fraction", "share of tokens", keys=("clip_ratio/region",)),
    Panel("Step time", "seconds", keys=("step_time",)),
    Panel("Loss", "loss", keys=("loss",)),
)


def read_metrics(run_dir: Path) -> list[dict]:
    """The lines of ``run_dir/metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"{path}: no such file; pass a run directory (a recipe's output_dir, "
                        "runs/NAME by default, which training fills with metrics.jsonl)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise PlotError(f"{path}, line {number}: not JSON ({error.msg})") from None
    if not rows:
        raise PlotError(f"{path}: empty; the run logged no step yet")
    return rows


def series(rows: list[dict], panel: Panel) -> dict[str, tuple[list[int], list[float]]]:
    """name -> (steps, values) of the metrics a panel draws, where the run logged them."""
    if panel.prefix:
        names = sorted({k for row in rows for k in row
                        if k.startswith(panel.prefix) and not k.endswith("/std")})
    else:
        names = list(panel.keys)
    drawn = {}
    for name in names:
        points = [(row["step"], row[name]) for row in rows if isinstance(row.get(name), (int, float))]
        if points:
            drawn[name.removeprefix(panel.prefix)] = ([s for s, _ in points], [v for _, v in points])
    return drawn


def smoothed(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (1: unchanged)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_runs(run_dirs: list[Path], out: Path, smooth: int = 1) -> Path:
    """Draw every panel for every run (one colour per run) into ``out``; returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {label: read_metrics(d) for label, d in zip(run_labels(run_dirs), run_dirs)}
    columns = 4
    rows_count = -(-len(PANELS) // columns)
    figure, axes = plt.subplots(rows_count, columns, figsize=(5 * columns, 3.6 * rows_count), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ("-", "--", ":", "-.")
    for axis, panel in zip(axes.flat, PANELS):
        drawn = False
        for r, (label, rows) in enumerate(runs.items()):
            for s, (name, (steps, values)) in enumerate(series(rows, panel).items()):
                name_part = f" {name}" if panel.prefix else ""
                style = dict(color=colours[r % len(colours)], linestyle=styles[s % len(styles)])
                if len(steps) <= 20:  # sparse (e.g. evaluations): show the points
                    axis.plot(steps, values, marker="o", label=f"{label}{name_part}", **style)
                else:
                    if smooth > 1:
                        axis.plot(steps, values, alpha=0.25, linewidth=0.8, **style)
                    axis.plot(steps, smoothed(values, smooth), label=f"{label}{name_part}", **style)
                drawn = True
        axis.set_title(panel.title)
        axis.set_xlabel("step")
        axis.set_ylabel(panel.ylabel)
        axis.grid(alpha=0.3)
        if drawn:
            axis.legend(fontsize=7)
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes, color="grey")
    for axis in list(axes.flat)[len(PANELS):]:
        axis.set_visible(False)
    figure.suptitle(", ".join(runs) + (f" (moving average of {smooth} steps)" if smooth > 1 else ""))
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Each run's directory name, or its path where two runs share a name."""
    names = [d.resolve().name for d in run_dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, run_dirs)]
