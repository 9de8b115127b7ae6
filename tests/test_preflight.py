"""Recipe errors that need more than one key: each stops the command in one line naming the key,
before any model loads (the model path below does not exist: reaching it would say so)."""

import os
import subprocess
import sys
import time

import pytest

from rlreason.preflight import check_recipe
from rlreason.recipe import RecipeError, load_recipe
from tests.conftest import ROOT

ABSENT_MODEL = "--set=model.name_or_path=/nonexistent/model"


@pytest.mark.parametrize("command, overrides, env, message", [
    ("train", ["evaluation.metric=accuracy"], {},
     "evaluation.metric: 'accuracy' is not one of the rewards (math_accuracy)"),
    ("eval", ["evaluation.metric=accuracy"], {},
     "evaluation.metric: 'accuracy' is not one of the rewards (math_accuracy)"),
    ("train", ["trainer.prompts_per_step=32"], {"WORLD_SIZE": "3"},
     "trainer.prompts_per_step: 32 prompts cannot be shared evenly by 3 processes"),
    ("train", ["rollout.backend=vllm", "rollout.vllm.sleep_mode=true"], {"CUDA_VISIBLE_DEVICES": ""},
     "rollout.vllm.sleep_mode: needs a GPU"),
    ("train", ["rollout.backend=tpu"], {}, "rollout.backend: must be one of"),
    ("sft", ["rewards=[{name: math_acuracy}]"], {}, "rewards[0].name: unknown reward 'math_acuracy'"),
    ("train", ["algo.loss_type=vespo", "algo.rollout_correction=sequence"], {},
     "algo.rollout_correction: vespo puts the rollout correction into its sequence weight token by token"),
    ("train", ["algo.loss_type=vespo", "algo.rollout_correction=sequence_mean"], {},
     "algo.rollout_correction: vespo puts the rollout correction into its sequence weight token by token"),
    ("train", ["algo.loss_type=clip_cov", "algo.clip_cov_lb=5", "algo.clip_cov_ub=2"], {},
     "algo.clip_cov_lb: 5.0 is not below algo.clip_cov_ub (2.0)"),
    ("train", ["rollout.max_staleness=1", "algo.rollout_correction=token"], {},
     "rollout.max_staleness: 1 generates while the trainer updates, which needs a rollout worker"),
    ("train", ["rollout.mode=server", "rollout.max_staleness=2"], {},
     "rollout.max_staleness: 2 trains on samples of policies up to 2 updates old; set algo.rollout_correction"),
    ("train", ["rollout.mode=server", "rollout.max_staleness=1", "algo.rollout_correction=token",
               "algo.dynamic_sampling=true"], {}, "rollout.max_staleness: 1 with algo.dynamic_sampling"),
    ("train", ["rollout.mode=server", "rollout.backend=hf"], {}, "rollout.backend: hf generates on the trainer's"),
    ("train", ["rollout.max_staleness=-1"], {}, "rollout.max_staleness: must be >= 0"),
    ("train", ["rollout.server.url=localhost:8300"], {}, "rollout.server.url: must be an http(s):// URL"),
    ("train", ["moe.replay_engine_weights=true", "moe.routing_replay=old_policy"], {},
     "moe.replay_engine_weights: replays the engine's combine weights of the experts it routed to, which needs"),
], ids=["metric", "metric-eval", "processes", "sleep-mode", "backend", "reward", "vespo-sequence",
        "vespo-sequence-mean", "clip-cov-bounds", "staleness-colocated", "staleness-uncorrected",
        "staleness-dynamic-sampling", "server-hf", "staleness-negative", "server-url", "engine-weights"])
def test_recipe_error_is_one_line_naming_the_key_before_the_model_loads(tmp_path, command, overrides, env, message):
    recipe = "recipes/demo/sft.yaml" if command == "sft" else "recipes/demo/grpo.yaml"
    args = [sys.executable, "-m", "cli", command, recipe, ABSENT_MODEL, f"--set=output_dir={tmp_path / 'run'}",
            *(f"--set={o}" for o in overrides)]
    if command == "eval":
        args = [sys.executable, "-m", "cli", "eval", recipe, "--model", "/nonexistent/model",
                *(f"--set={o}" for o in overrides)]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert time.perf_counter() - started < 5  # the checks run before the trainer's imports (about 0.5 s)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "nonexistent" not in done.stderr, done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1, done.stderr
    assert not (tmp_path / "run").exists()


def test_a_sound_recipe_passes_and_names_its_backend():
    recipe = load_recipe(ROOT / "recipes/demo/grpo.yaml", ["rollout.backend=hf"])
    assert check_recipe(recipe, num_processes=2).backend == "hf"
    with pytest.raises(RecipeError, match="by 3 processes; make it a multiple of 3"):
        check_recipe(recipe, num_processes=3)


def one_line_error(*args, env=None):
    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_prompts_past_the_models_context_are_refused_before_the_engine_starts():
    line = one_line_error("eval", "recipes/demo/grpo.yaml", "--set=model.name_or_path=null",
                          "--set=model.tiny.max_position_embeddings=16", "--set=rollout.max_new_tokens=20")
    assert "rollout.max_new_tokens: the longest prompt has 6 tokens; with max_new_tokens 20 that is 26, " \
           "past the model's context of 16 tokens" in line


def test_a_hub_set_that_cannot_be_reached_is_named():
    line = one_line_error("eval", "recipes/demo/grpo.yaml", "--set=model.name_or_path=null", "--dataset", "gsm8k",
                          env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert "cannot load the hub dataset 'openai/gsm8k'" in line


def test_a_malformed_jsonl_line_is_named_by_file_and_line(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"completion": "12", "answer": "12"}\n{"completion": "1\n')
    line = one_line_error("rewards", "score", "math_accuracy", "--input", str(rows))
    assert f"{rows}:2: not valid JSON" in line
