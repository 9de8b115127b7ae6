"""The same recipe and seed on 1 process and on 2 (DDP and FSDP2 under ``accelerate launch``, gloo):
the same rollouts, the same losses, the same weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlreason.launch import LaunchError, accelerate_launch_arguments, relaunch_cpu_processes
from tests.conftest import ROOT, TINY, accelerate_launch


VARIANTS = {
    # rewards differ within every group
    "dapo": {"rewards": [{"name": "tests.plugin_rewards:character_codes"}],
             "algo": {"loss_type": "dapo", "scale_rewards": "batch"}},
    # about half the groups tie and are dropped; more prompts are drawn until 4 groups are kept
    "dynamic_sampling": {"rewards": [{"name": "tests.plugin_rewards:ties_on_even_prompts"}],
                         "algo": {"loss_type": "dapo", "scale_rewards": "batch", "dynamic_sampling": True,
                                  "max_sampling_rounds": 8}},
    # an entropy bonus under adaptive control (target above any entropy: applied from step 2 on)
    "entropy_bonus": {"rewards": [{"name": "tests.plugin_rewards:character_codes"}],
                      "algo": {"loss_type": "dapo", "scale_rewards": "batch", "use_adaptive_entropy": True,
                               "entropy_coef": 0.5, "entropy_target": 100.0}},
    # routing replay from the rollout engine (R3): each process's rollouts carry their own routing
    "routing_replay": {"rewards": [{"name": "tests.plugin_rewards:character_codes"}],
                       "algo": {"loss_type": "dapo", "scale_rewards": "batch"}, "moe": {"routing_replay": "rollout"}},
}


def train(tmp_path: Path, name: str, launcher: list[str], variant: str) -> Path:
    """Two GRPO steps of a tiny recipe, saving after each; returns the run directory."""
    run_dir = tmp_path / name
    recipe = {
        "name": name, "output_dir": str(run_dir), "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 4, "synthetic": {"num_train": 64}},
        "rollout": {"backend": "hf", "num_generations": 4, "max_new_tokens": 6, "temperature": 1.0},
        **VARIANTS[variant],
        "trainer": {"max_steps": 2, "save_every": 1, "prompts_per_step": 4, "micro_batch_size": 3,
                    "learning_rate": 1e-2, "lr_scheduler": "cosine", "seed": 5},
        "evaluation": {"every": 0, "batch_size": 4},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "cli", "train", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    processes = 1 if launcher == [sys.executable] else 2
    assert f"{run_dir}, {processes} process" in done.stderr
    return run_dir


def logged(run_dir: Path, key: str) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row[key] for row in rows if key in row]


def weights(run_dir: Path, checkpoint: str) -> dict[str, torch.Tensor]:
    return load_file(run_dir / checkpoint / "model.safetensors")


@pytest.mark.parametrize("path", sorted((ROOT / "recipes" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_every_launch_config_loads_in_accelerate_and_says_how_to_launch(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.num_processes >= 2 and config.num_machines >= 1
    assert f"accelerate launch --config_file recipes/accelerate/{path.name}" in path.read_text()


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The single-process run of a variant (each run once)."""
    runs = {}

    def run(variant: str) -> Path:
        if variant not in runs:
            runs[variant] = train(tmp_path_factory.mktemp(variant), "one", [sys.executable], variant)
        return runs[variant]
    return run


@pytest.mark.slow  # accelerate launch, 2 processes
@pytest.mark.parametrize("config, variant", [("ddp", "dapo"), ("fsdp2", "dapo"), ("fsdp2", "dynamic_sampling"),
                                             ("cpu", "dapo"),  # accelerate launch --cpu: DDP over gloo
                                             ("deepspeed-zero2", "dapo"), ("deepspeed-zero3", "dapo"),
                                             ("ddp", "entropy_bonus"), ("fsdp2", "entropy_bonus"),
                                             ("deepspeed-zero3", "entropy_bonus"),
                                             ("ddp", "routing_replay"), ("fsdp2", "routing_replay")])
def test_two_processes_train_as_one(one_process, tmp_path, config, variant):
    one_process, two = one_process(variant), train(tmp_path, config, accelerate_launch(config), variant)
    one_losses, two_losses = logged(one_process, "loss"), logged(two, "loss")
    assert len(one_losses) == len(two_losses) == 2
    assert one_losses[0] != 0.0
    assert logged(one_process, "lr") == pytest.approx([5e-3, 0.0])  # cosine: once per step, not per process
    assert logged(two, "lr") == pytest.approx(logged(one_process, "lr"))
    assert two_losses[0] == pytest.approx(one_losses[0], abs=1e-5)
    assert (one_process / "final" / "trainer_state.json").exists() and (two / "final").exists()
    one_norms, two_norms = logged(one_process, "grad_norm"), logged(two, "grad_norm")
    assert two_norms[0] == pytest.approx(one_norms[0], rel=1e-6)  # the same gradient, clipped alike
    assert two_norms[1] == pytest.approx(one_norms[1], rel=1e-4)
    after_one, after_two = weights(one_process, "final"), weights(two, "final")
    assert after_one.keys() == after_two.keys()
    # Two processes sum gradients in another order (an all-reduce of halves; DeepSpeed in flattened
    # buckets); Adam's first steps turn that fp32 rounding into visible moves on the few entries
    # whose gradient is near zero (|g| ~ eps: one entry in ~10^5 on some CPUs). Everywhere else
    # the weights agree to 1e-4.
    differences = torch.cat([(tensor - after_two[name]).abs().flatten() for name, tensor in after_one.items()])
    assert differences.max() < 1e-3
    assert (differences > 1e-4).float().mean() < 1e-4, (differences > 1e-4).sum()
    step_one = weights(two, "checkpoint-1")
    assert max((after_two[n] - step_one[n]).abs().max().item() for n in step_one) > 1e-3, \
        "the second step should move the weights (else the comparison proves nothing)"
    if variant == "entropy_bonus":  # the coefficient moved alike: the entropy is measured over every process
        assert logged(two, "entropy/coef") == pytest.approx(logged(one_process, "entropy/coef")) == [0.505, 0.51]
    if variant == "routing_replay":  # each process's engine routed as its trainer recomputes
        assert logged(two, "moe/engine_topk_differs") == logged(one_process, "moe/engine_topk_differs") == [0.0, 0.0]
    if variant == "dynamic_sampling":  # groups were dropped and refilled, the same way
        assert logged(two, "dynamic_sampling/rounds") == logged(one_process, "dynamic_sampling/rounds")
        assert max(logged(two, "dynamic_sampling/rounds")) > 1
        assert logged(two, "dynamic_sampling/groups_kept") == [1.0, 1.0]


def test_cpu_launch_reads_accelerates_own_arguments_and_refuses_what_it_cannot_relaunch():
    asked = accelerate_launch_arguments(["python", "accelerate", "launch", "--cpu", "--num_processes=3",
                                         "-m", "cli", "train", "r.yaml"])
    assert (asked.num_processes, asked.training_script, asked.training_script_args) == (3, "cli", ["train", "r.yaml"])
    assert accelerate_launch_arguments(["python", "-m", "pytest"]) is None
    relaunch_cpu_processes({})  # not an accelerate launch: nothing happens
    single = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"}
    with pytest.raises(LaunchError, match="recipes/accelerate/ddp.yaml"):
        relaunch_cpu_processes(single)  # this process's parent (pytest's launcher) is no accelerate launch


@pytest.mark.slow  # accelerate launch, 2 processes, a vLLM engine each
@pytest.mark.usefixtures("vllm_installed")
def test_zero3_pushes_whole_weights_to_each_process_vllm_engine(tmp_path):
    """ZeRO-3 holds a shard of each parameter per process: the engines' first weights and every
    push after an optimizer step are gathered. The run's last held-out evaluation (greedy, on
    its vLLM engines) equals an evaluation of the saved checkpoint with transformers."""
    run_dir = tmp_path / "run"
    recipe = {
        "name": "zero3-vllm", "output_dir": str(run_dir), "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 16, "synthetic": {"num_train": 64}},
        "rollout": {"backend": "vllm", "num_generations": 4, "max_new_tokens": 6, "temperature": 1.0},
        "rewards": [{"name": "tests.plugin_rewards:character_codes"}],
        "trainer": {"max_steps": 2, "prompts_per_step": 4, "micro_batch_size": 8, "learning_rate": 1e-2},
        "evaluation": {"every": 0, "batch_size": 16},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    done = subprocess.run([*accelerate_launch("deepspeed-zero3"), "-m", "cli", "train", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"{run_dir}, 2 processes" in done.stderr
    in_run = logged(run_dir, "eval/reward/tests.plugin_rewards:character_codes")
    assert len(in_run) == 2 and in_run[0] != in_run[1]  # the policy moved, and the engines with it
    checked = subprocess.run([sys.executable, "-m", "cli", "eval", str(path), "--model", str(run_dir / "final"),
                              "--set", "rollout.backend=hf"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stderr[-4000:]
    assert json.loads(checked.stdout)["reward/tests.plugin_rewards:character_codes"] == pytest.approx(in_run[1], abs=1e-9)
