"""A run continued from a checkpoint takes the steps the uninterrupted run took: on the same
number of processes exactly, on another (DDP, FSDP2) within the scale-out tolerances."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import ROOT, TINY, accelerate_launch



def write_recipe(tmp_path: Path, run_dir: Path) -> Path:
    recipe = {
        "name": "resume", "output_dir": str(run_dir), "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 4, "synthetic": {"num_train": 24}},  # 6 batches of 4: a new epoch mid-run
        "rollout": {"backend": "hf", "num_generations": 4, "max_new_tokens": 6},
        "rewards": [{"name": "tests.plugin_rewards:character_codes"}],
        "algo": {"loss_type": "dapo", "num_iterations": 2},
        "trainer": {"max_steps": 12, "save_every": 4, "prompts_per_step": 4, "micro_batch_size": 8,
                    "learning_rate": 1e-2, "lr_scheduler": "cosine", "seed": 3},
        "evaluation": {"every": 4, "batch_size": 4},
    }
    path = tmp_path / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run(launcher: list[str], recipe: Path, *args: str) -> None:
    done = subprocess.run([*launcher, "-m", "cli", "train", str(recipe), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time") and k not in ("step_time", "eval/time")}
            for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("whole")
    run([sys.executable], write_recipe(tmp, tmp / "run"))
    return tmp / "run"


def interrupted_copy(uninterrupted: Path, tmp_path: Path) -> Path:
    """The run directory as a crash after step 6 leaves it: checkpoint-4, metrics up to step 6."""
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    for later in ("checkpoint-8", "checkpoint-12", "final"):
        shutil.rmtree(run_dir / later)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("".join(f"{x}\n" for x in lines if json.loads(x)["step"] <= 6))
    return run_dir


def test_resuming_takes_the_same_steps(uninterrupted, tmp_path):
    run_dir = interrupted_copy(uninterrupted, tmp_path)
    run([sys.executable], write_recipe(tmp_path, run_dir), "--resume")
    assert metrics(run_dir) == metrics(uninterrupted)  # steps 5-12 again, the same, once each
    whole, resumed = load_file(uninterrupted / "final" / "model.safetensors"), load_file(run_dir / "final" / "model.safetensors")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


@pytest.mark.parametrize("config", ["ddp", "fsdp2"])
def test_a_one_process_run_resumes_on_two(uninterrupted, tmp_path, config):
    run_dir = interrupted_copy(uninterrupted, tmp_path)
    run(accelerate_launch(config), write_recipe(tmp_path, run_dir), "--resume", str(run_dir / "checkpoint-4"))
    one, two = metrics(uninterrupted), metrics(run_dir)
    assert [row["step"] for row in two] == [row["step"] for row in one]
    for a, b in zip(one, two):
        for key in ("loss", "lr", "reward"):
            if key in a:
                assert b[key] == pytest.approx(a[key], abs=1e-5), (a["step"], key)
    whole, resumed = load_file(uninterrupted / "final" / "model.safetensors"), load_file(run_dir / "final" / "model.safetensors")
    for name, tensor in whole.items():
        assert torch.allclose(tensor, resumed[name], atol=1e-4), name


def test_a_killed_run_resumes_where_its_last_checkpoint_left_it(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    recipe = write_recipe(tmp_path, run_dir)
    process = subprocess.Popen([sys.executable, "-m", "cli", "train", str(recipe)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (run_dir / "checkpoint-4").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "final").exists()
    run([sys.executable], recipe, "--resume")
    assert metrics(run_dir) == metrics(uninterrupted)
    whole, resumed = load_file(uninterrupted / "final" / "model.safetensors"), load_file(run_dir / "final" / "model.safetensors")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_resume_without_a_checkpoint_says_so(tmp_path):
    recipe = write_recipe(tmp_path, tmp_path / "fresh")
    done = subprocess.run([sys.executable, "-m", "cli", "train", str(recipe), "--resume"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "--resume: " in done.stderr and "has no checkpoint-N" in done.stderr
