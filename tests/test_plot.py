"""`rlreason plot` on real run directories: a PNG that decodes and shows the run."""

import json
import shutil

import numpy as np
import pytest
from matplotlib.image import imread

from rlreason.plot import PANELS, PlotError, read_metrics, series, smoothed
from tests.helpers import TINY_SET, rlreason


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real 4-step GRPO run of a tiny random-init model (hf rollouts), evaluated every 2 steps."""
    out = tmp_path_factory.mktemp("runs")
    done = rlreason("train", "recipes/demo/grpo.yaml", *TINY_SET, "--set", "model.name_or_path=null",
                    "--set", "trainer.max_steps=4", "--set", "trainer.prompts_per_step=4",
                    "--set", "evaluation.every=2", "--set", "data.num_eval=8", "--set", "rollout.backend=hf",
                    "--set", "trainer.log_samples_every=0", "--set", f"output_dir={out}")
    assert done.returncode == 0, done.stderr
    return out


def test_plot_writes_a_png_of_every_logged_panel(run_dir, tmp_path):
    done = rlreason("plot", str(run_dir), "--out", str(tmp_path / "run.png"))
    assert done.returncode == 0, done.stderr
    image = imread(tmp_path / "run.png")  # decodes: (height, width, RGBA) floats
    assert image.shape[0] >= 600 and image.shape[1] >= 1800
    assert image[..., :3].std() > 0.05  # drawn on, not a blank canvas
    rows = read_metrics(run_dir)
    drawn = {panel.title: series(rows, panel) for panel in PANELS}
    assert list(drawn["Reward per function"]) == ["math_accuracy"]  # its /std is not a function
    assert drawn["Held-out accuracy"]["eval/accuracy"][0] == [0, 2, 4]
    assert len(drawn["Step time"]["step_time"][0]) == 4
    assert drawn["KL to the reference"] == {}  # beta 0: not logged, the panel says so


def test_several_runs_overlay_in_one_png(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    rows = [json.loads(line) for line in (other / "metrics.jsonl").read_text().splitlines()]
    (other / "metrics.jsonl").write_text("".join(json.dumps({**r, "step_time": 2 * r.get("step_time", 0)}) + "\n"
                                                 for r in rows))
    assert rlreason("plot", str(run_dir), "--out", str(tmp_path / "one.png")).returncode == 0
    done = rlreason("plot", str(run_dir), str(other), "--smooth", "2")  # default: next to the first run
    assert done.returncode == 0, done.stderr
    assert (run_dir / "plot.png").exists()
    assert imread(run_dir / "plot.png").shape == imread(tmp_path / "one.png").shape
    assert not np.array_equal(imread(run_dir / "plot.png"), imread(tmp_path / "one.png"))


def test_a_directory_without_metrics_or_with_a_broken_line_is_named(tmp_path):
    done = rlreason("plot", str(tmp_path / "missing"))
    assert done.returncode != 0 and "missing/metrics.jsonl: no such file" in done.stderr
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "rew\n')
    with pytest.raises(PlotError, match="line 2: not JSON"):
        read_metrics(tmp_path)


def test_moving_average_is_trailing():
    assert smoothed([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smoothed([1.0, 2.0], 1) == [1.0, 2.0]
