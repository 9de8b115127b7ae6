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
def test_recipe_takes_a_step_on_its_tiny_stand_in(path, shared_data):
    recipe = on_local_rows(load_recipe(path), shared_data)
    copy = stand_in(recipe, "unused")
    assert copy.model.tiny.architecture == recipe.model.tiny.architecture
    same_algo = dataclasses.replace(copy.algo, max_sampling_rounds=recipe.algo.max_sampling_rounds)
    assert (same_algo, copy.moe, copy.rewards, copy.model.lora) == (recipe.algo, recipe.moe, recipe.rewards,
                                                                    recipe.model.lora)
    result = dry_run(recipe)
    assert len(result.evals) == 2 and not result.run_dir.exists()  # a step ran; nothing was left


def test_shipped_recipes_name_no_path_outside_the_repository():
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        assert "../" not in path.read_text(), path


def test_cli_dry_run_reports_the_stand_in_and_writes_nothing(shared_data, tmp_path):
    recipe = ROOT / "recipes" / "moe" / "deepseek-v2-lite-gsm8k.yaml"
    gsm8k = shared_data / "gsm8k_test.jsonl"  # the hub's GSM8K, offline: a local file of its columns
    before = sorted(p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts)
    done = subprocess.run([sys.executable, "-m", "cli", "train", str(recipe), "--dry-run",
                           f"--set=data.source={gsm8k}", "--set=data.subset=null",
                           f"--set=data.eval_source={gsm8k}", "--set=data.eval_subset=null"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "tiny deepseek_v2 stand-in" in done.stdout
    after = sorted(p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts)
    assert [p for p in after if p not in before and "__pycache__" not in p.parts] == []


# Hub datasets of the recipes for real work, and a local file of the same columns to check them on
MBPP_ROWS = [
    {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
     "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
     "test_list": ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))"]},
    {"task_id": 3, "text": "Write a python function to identify non-prime numbers.",
     "code": "def is_not_prime(n):\n    return n < 2 or any(n % i == 0 for i in range(2, int(n ** 0.5) + 1))",
     "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"]},
    {"task_id": 4, "text": "Write a function to find the n largest integers from a given list of numbers.",
     "code": "def heap_queue_largest(nums, n):\n    return sorted(nums, reverse=True)[:n]",
     "test_list": ["assert heap_queue_largest([25, 35, 22, 85, 14, 65, 75, 22, 58], 3) == [85, 75, 65]"]},
    {"task_id": 6, "text": "Write a python function to check whether two numbers differ at one bit position only.",
     "code": "def differ_at_one_bit_pos(a, b):\n    x = a ^ b\n    return x != 0 and x & (x - 1) == 0",
     "test_list": ["assert differ_at_one_bit_pos(13, 9) == True", "assert differ_at_one_bit_pos(15, 8) == False"]},
    {"task_id": 7, "text": "Write a function to find all words which are at least 4 characters long in a string.",
     "code": "import re\ndef find_char_long(text):\n    return re.findall(r'\\b\\w{4,}\\b', text)",
     "test_list": ["assert set(find_char_long('Please move back to stream')) == set(['Please', 'move', 'back', 'stream'])"]},
]
REAL_WORK = sorted((ROOT / "recipes" / "r1").glob("*.yaml"))


def on_local_rows(recipe, shared_data, mbpp_file=None):
    """The recipe with each hub dataset replaced by a local file of the same columns."""
    local = {"openai/gsm8k": shared_data / "gsm8k_test.jsonl",
             "DigitalLearningGmbH/MATH-lighteval": shared_data / "math500_test.jsonl",
             "HuggingFaceH4/MATH-500": shared_data / "math500_test.jsonl",
             "google-research-datasets/mbpp": mbpp_file}
    data = dataclasses.replace(recipe.data, source=str(local.get(recipe.data.source, recipe.data.source)),
                               eval_source=recipe.data.eval_source and str(local.get(recipe.data.eval_source,
                                                                                     recipe.data.eval_source)),
                               subset=None, eval_subset=None)
    assert not any(s and "/" in s and not s.startswith("/") for s in (data.source, data.eval_source)), data
    return dataclasses.replace(recipe, data=data)


@pytest.mark.parametrize("path", REAL_WORK, ids=lambda p: p.name)
def test_recipe_for_real_work_takes_a_step_on_local_rows_of_its_data(path, shared_data, tmp_path):
    """Hub data cannot be fetched here: the same recipe runs on local rows with the same columns
    (the shared GSM8K / MATH-500 files, or MBPP-format rows), template and rewards unchanged."""
    import json

    from rlreason.sft import sft

    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text("".join(json.dumps(row) + "\n" for row in MBPP_ROWS))
    recipe = load_recipe(path)
    local = on_local_rows(recipe, shared_data, mbpp)
    header = path.read_text().split("\nname:")[0]
    if "Run: rlreason sft" in header:
        result = sft(stand_in(local, str(tmp_path / "run")))
    else:
        result = dry_run(local)
    assert len(result.evals) == 2  # evaluated before and after the step
