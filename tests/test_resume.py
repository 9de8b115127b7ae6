"""A run continued from a checkpoint takes the steps the uninterrupted run took: on the same
number of processes exactly; on another (DDP, FSDP2, DeepSpeed ZeRO) its first step after the
checkpoint matches within the scale-out tolerances."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import ROOT, TINY, accelerate_launch



def write_recipe(tmp_path: Path, run_dir: Path, save_every: int = 4) -> Path:
    recipe = {
        "name": "resume", "output_dir": str(run_dir), "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 4, "synthetic": {"num_train": 24}},  # 6 batches of 4: a new epoch mid-run
        "rollout": {"backend": "hf", "num_generations": 4, "max_new_tokens": 6},
        "rewards": [{"name": "tests.plugin_rewards:character_codes"}],
        # adaptive entropy control: its coefficient and last entropy move every optimizer step and
        # must come back from the checkpoint
        "algo": {"loss_type": "dapo", "num_iterations": 2, "use_adaptive_entropy": True, "entropy_coef": 0.01,
                 "entropy_target": 100.0},
        "trainer": {"max_steps": 12, "save_every": save_every, "prompts_per_step": 4, "micro_batch_size": 8,
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


def assert_resumed_as_saved(one: Path, two: Path, first_step: int = 5) -> None:
    """Another layout resumed the saved state: the same steps, and the first step after the
    checkpoint (sampled from the very weights and RNG state saved) within the scale-out tolerances.

    Later steps are not compared: after one update on another layout the weights differ in the
    last bits, and a sampled token whose draw lands within that rounding of a boundary may differ,
    which says nothing about resuming.
    """
    assert [row["step"] for row in metrics(two)] == [row["step"] for row in metrics(one)]
    a, b = (next(row for row in metrics(run) if row["step"] == first_step) for run in (one, two))
    compared = [key for key in ("loss", "lr", "reward", "grad_norm") if key in a]
    assert {"loss", "reward"} <= set(compared)
    for key in compared:
        assert b[key] == pytest.approx(a[key], abs=1e-5, rel=1e-5), key
    resumed = load_file(two / "final" / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in resumed.values())


@pytest.mark.slow  # several CLI runs, some under accelerate launch
@pytest.mark.parametrize("config", ["ddp", "fsdp2", "deepspeed-zero2", "deepspeed-zero3"])
def test_a_one_process_run_resumes_on_two(uninterrupted, tmp_path, config):
    """The optimizer state goes in whole and comes out sharded: FSDP2 shards, ZeRO partitions."""
    run_dir = interrupted_copy(uninterrupted, tmp_path)
    run(accelerate_launch(config), write_recipe(tmp_path, run_dir), "--resume", str(run_dir / "checkpoint-4"))
    assert_resumed_as_saved(uninterrupted, run_dir)


@pytest.mark.slow  # several CLI runs, some under accelerate launch
def test_a_zero3_run_resumes_on_one_process(uninterrupted, tmp_path):
    """ZeRO-3 checkpoints hold the whole optimizer state, as the one-process run's do, and a
    one-process run continues from them as the ZeRO-3 run itself went on."""
    (tmp_path / "zero3").mkdir()
    zero3 = tmp_path / "zero3" / "run"
    run(accelerate_launch("deepspeed-zero3"), write_recipe(tmp_path / "zero3", zero3))
    saved, reference = (torch.load(run_dir / "checkpoint-4" / "training_state.pt", weights_only=False)["optimizer"]
                        for run_dir in (zero3, uninterrupted))
    assert saved["state"].keys() == reference["state"].keys()
    for name, state in reference["state"].items():
        assert float(saved["state"][name]["step"]) == float(state["step"]) == 8.0  # 4 steps x 2 iterations
        for moment in ("exp_avg", "exp_avg_sq"):  # the same moments, up to the runs' rounding drift (~0.3%)
            drift = (saved["state"][name][moment] - state[moment]).norm() / state[moment].norm()
            assert drift < 1e-2, (name, moment, drift)
    run_dir = interrupted_copy(zero3, tmp_path)
    run([sys.executable], write_recipe(tmp_path, run_dir), "--resume", str(run_dir / "checkpoint-4"))
    assert_resumed_as_saved(zero3, run_dir)


@pytest.mark.slow  # several CLI runs, some under accelerate launch
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


def last_logged_step(run_dir: Path) -> int:
    """The newest step in a live run's metrics.jsonl (0 before the first; a line being written is skipped)."""
    steps = [0]
    for line in (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            pass
    return max(steps)


@pytest.mark.slow  # several CLI runs, some under accelerate launch
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_a_signalled_run_saves_a_checkpoint_and_resumes_exactly(uninterrupted, tmp_path, stop):
    """No periodic checkpoints here: the one found was written because of the signal."""
    run_dir = tmp_path / "run"
    recipe = write_recipe(tmp_path, run_dir, save_every=0)
    process = subprocess.Popen([sys.executable, "-m", "cli", "train", str(recipe)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline and last_logged_step(run_dir) < 3:
        time.sleep(0.02)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 128 + stop, stderr[-3000:]
    saved = sorted(run_dir.glob("checkpoint-*"))
    assert len(saved) == 1 and not (run_dir / "final").exists()
    step = int(saved[0].name.removeprefix("checkpoint-"))
    assert 3 <= step < 12 and (saved[0] / "training_state.pt").exists()
    assert f"after step {step}" in stderr and "--resume" in stderr
    assert max(row["step"] for row in metrics(run_dir)) == step  # nothing logged past the checkpoint
    run([sys.executable], recipe, "--resume")
    assert metrics(run_dir) == metrics(uninterrupted)
    whole, resumed = load_file(uninterrupted / "final" / "model.safetensors"), load_file(run_dir / "final" / "model.safetensors")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_a_second_ctrl_c_stops_at_once():
    from rlreason.stopping import REPEAT_AFTER_S, StopRequests

    before = signal.getsignal(signal.SIGINT)  # Python's own, or SIG_IGN in a shell's background job
    with StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_number == signal.SIGINT  # noted, not raised
        os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C again (torchrun forwards it): still noted
        stop.noted_at -= REPEAT_AFTER_S  # as if pressed again later
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # handlers put back


def test_resume_without_a_checkpoint_says_so(tmp_path):
    recipe = write_recipe(tmp_path, tmp_path / "fresh")
    done = subprocess.run([sys.executable, "-m", "cli", "train", str(recipe), "--resume"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "--resume: " in done.stderr and "has no checkpoint-N" in done.stderr


def test_a_log_line_cut_off_mid_write_is_left_out_on_resume(tmp_path, caplog):
    """A disk that filled (or a kill) mid-write leaves half a line; a resume keeps the whole
    records up to its step and says which line of which file it left out."""
    from rlreason.runlog import RunLog

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "reward": 0.7}\n{"step": 3, "rew')
    log = RunLog(tmp_path, total_steps=5, description="test", resumed_at=2)
    log.close()
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2]
    assert "metrics.jsonl, line 3: not a whole record" in caplog.text


@contextmanager
def small_disk(directory: Path, size: str):
    """A tmpfs of ``size`` mounted at ``directory`` while the block runs (a disk that fills)."""
    import ctypes

    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    directory.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", str(directory).encode(), b"tmpfs", 0, f"size={size}".encode()) != 0:
        pytest.skip("no tmpfs mount here")
    try:
        yield directory
    finally:
        libc.umount2(str(directory).encode(), 2)


def test_a_full_disk_leaves_no_half_line_and_names_the_file(tmp_path):
    from rlreason.runlog import append_jsonl

    with small_disk(tmp_path / "small", "8k") as small:
        path = small / "metrics.jsonl"
        written = 0
        with pytest.raises(OSError, match="writing .*metrics.jsonl: No space left"):
            for step in range(10_000):
                append_jsonl(path, {"step": step, "text": "x" * 100})
                written += 1
        lines = path.read_text().splitlines()
        assert len(lines) == written and all(json.loads(line)["step"] == i for i, line in enumerate(lines))


def test_a_checkpoint_on_a_full_disk_says_so_and_leaves_no_temporary_copy(tmp_path, make_recipe):
    from rlreason.checkpoint import save_checkpoint
    from rlreason.session import open_session

    session = open_session(make_recipe(), "test")
    with small_disk(tmp_path / "small", "64k") as small:
        with pytest.raises(OSError, match="no space left on the device saving .*checkpoint-1"):
            save_checkpoint(session.policy, session.tokenizer, small / "checkpoint-1", {"step": 1})
        assert list(small.iterdir()) == []


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "weights cut short": lambda c: truncated(next(c.glob("*.safetensors"))),
    "optimizer state cut short": lambda c: truncated(c / "training_state.pt"),
    "trainer_state.json garbled": lambda c: (c / "trainer_state.json").write_text('{"step": 2, "sam'),
    "no optimizer state": lambda c: (c / "training_state.pt").unlink(),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_bad_newest_checkpoint_is_passed_over_naming_what_is_wrong(make_recipe, corruption, caplog):
    from rlreason.checkpoint import checkpoint_problem, latest_checkpoint
    from rlreason.trainer import train

    result = train(make_recipe(rewards=[{"name": "tests.plugin_rewards:shortness"}],
                               trainer={"max_steps": 2, "save_every": 1}))
    newest = result.run_dir / "checkpoint-2"
    assert checkpoint_problem(newest) is None and latest_checkpoint(result.run_dir) == newest
    CORRUPTIONS[corruption](newest)
    assert checkpoint_problem(newest) is not None
    assert latest_checkpoint(result.run_dir) == result.run_dir / "checkpoint-1"
    assert f"passing over {newest}" in caplog.text
