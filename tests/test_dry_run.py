"""--dry-run: every shipped recipe for big hardware is checked here on a tiny stand-in."""

import dataclasses
import subprocess
import sys

import pytest

from rlreason.dry_run import dry_run, stand_in
from rlreason.recipe import load_recipe
from tests.conftest import ROOT

BIG_HARDWARE = sorted((ROOT / "recipes").glob("*.yaml")) + sorted((ROOT / "recipes" / "moe").glob("*.yaml"))


@pytest.mark.parametrize("path", BIG_HARDWARE, ids=lambda p: p.name)
def test_recipe_takes_a_step_on_its_tiny_stand_in(path, shared_data, monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name data relative to the repository root
    recipe = load_recipe(path)
    copy = stand_in(recipe, "unused")
    assert copy.model.tiny.architecture == recipe.model.tiny.architecture
    same_algo = dataclasses.replace(copy.algo, max_sampling_rounds=recipe.algo.max_sampling_rounds)
    assert (same_algo, copy.moe, copy.rewards, copy.model.lora) == (recipe.algo, recipe.moe, recipe.rewards,
                                                                    recipe.model.lora)
    result = dry_run(recipe)
    assert len(result.evals) == 2 and not result.run_dir.exists()  # a step ran; nothing was left


def test_cli_dry_run_reports_the_stand_in_and_writes_nothing(shared_data, tmp_path):
    recipe = ROOT / "recipes" / "moe" / "deepseek-v2-lite-gsm8k.yaml"
    before = sorted(p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts)
    done = subprocess.run([sys.executable, "-m", "cli", "train", str(recipe), "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "tiny deepseek_v2 stand-in" in done.stdout
    after = sorted(p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts)
    assert [p for p in after if p not in before and "__pycache__" not in p.parts] == []
