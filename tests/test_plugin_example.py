"""The worked plugin package in examples/: pip installs it, and a recipe uses its rewards by name."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.helpers import TINY_SET

EXAMPLE = ROOT / "examples" / "reward-plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The environment of a process that sees the package as pip installed it (into a target
    directory, so the test environment itself is left as it was)."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(target.glob("rlreason_example_rewards-*.dist-info/entry_points.txt"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def run(env, *args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_example_package_passes_its_own_tests(installed):
    done = run(installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(EXAMPLE),
               "--doctest-modules", str(EXAMPLE / "tests"), str(EXAMPLE / "src"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_installed_rewards_are_listed_and_score_rows_by_name(installed, tmp_path):
    listed = run(installed, "-m", "cli", "rewards", "list")
    assert listed.returncode == 0, listed.stderr
    assert "reasoning_steps" in listed.stdout and "answer_mentioned" in listed.stdout
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"completion": "the sum is 12", "answer": "12"}) + "\n"
                    + json.dumps({"completion": "13", "answer": "12"}) + "\n")
    out = tmp_path / "scored.jsonl"
    scored = run(installed, "-m", "cli", "rewards", "score", "answer_mentioned", "--input", str(rows),
                 "--output", str(out))
    assert scored.returncode == 0, scored.stderr
    assert "2 rows, mean 0.5000" in scored.stdout
    assert [json.loads(line)["reward"] for line in out.read_text().splitlines()] == [1.0, 0.0]


def test_a_recipe_trains_with_the_installed_reward_by_name(installed, tmp_path):
    recipe = tmp_path / "plugin.yaml"
    recipe.write_text((ROOT / "recipes" / "demo" / "grpo.yaml").read_text().replace(
        "rewards:\n  - name: math_accuracy\n    weight: 1.0\n",
        "rewards:\n  - name: math_accuracy\n    weight: 1.0\n  - name: answer_mentioned\n    weight: 0.5\n"))
    assert "answer_mentioned" in recipe.read_text()
    done = run(installed, "-m", "cli", "train", str(recipe), *TINY_SET, "--set", "model.name_or_path=null",
               "--set", "trainer.max_steps=2", "--set", "trainer.prompts_per_step=4", "--set", "data.num_eval=4",
               "--set", "rollout.backend=hf", "--set", f"output_dir={tmp_path / 'runs'}")
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line) for line in (tmp_path / "runs" / "metrics.jsonl").read_text().splitlines()]
    trained = [s for s in steps if "reward" in s]
    assert len(trained) == 2 and all("reward/answer_mentioned" in s for s in trained)
    for s in trained:  # the total is the weighted sum of the two functions' means
        assert s["reward"] == pytest.approx(s["reward/math_accuracy"] + 0.5 * s["reward/answer_mentioned"])
