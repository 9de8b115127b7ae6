import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import rewards
from rewards import RewardError, RewardSuite, available, resolve
from rewards.math_answer import math_accuracy
from rewards.math_extract import extract_answer
from rlreason.recipe import load_recipe


@pytest.mark.parametrize("completion, gold, expected", [
    ("47+85=132", "132", 1.0),                         # bare number after the prompt
    ("47+85=131", "132", 0.0),                         # off by one
    ("so the answer is \\boxed{132}.", "132", 1.0),   # boxed wins over earlier numbers
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),            # fraction vs decimal
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", 1.0),  # dfrac normalised
    ("The answer is 1,000.", "1000", 1.0),             # thousands separator, trailing dot
    ("<answer> -7 </answer>", "-7", 1.0),              # answer tags, negative
    ("<answer>7</answer>", "-7", 0.0),                 # sign matters
    ("blah #### 72", "Natalia sold ... #### 72", 1.0),  # GSM8K-style gold is extracted too
    ("no number here", "5", 0.0),                      # nothing to extract
    ("12", "12.0", 1.0),                               # exact numeric equality
    ("\\boxed{x + 1}", "x+1", 1.0),                   # non-numeric: normalised strings
    ("\\boxed{x+2}", "x+1", 0.0),
])
def test_math_accuracy_cases(completion, gold, expected):
    assert math_accuracy([completion], answer=[gold]) == [expected]


def test_math_accuracy_is_not_applicable_without_a_gold():
    assert math_accuracy(["12"], answer=[None]) == [None]


def test_extract_answer_handles_nested_braces():
    assert extract_answer("x \\boxed{\\frac{a}{\\sqrt{b}}} y") == "\\frac{a}{\\sqrt{b}}"


def test_plugin_registered_in_a_test_module_is_found_by_name_from_a_recipe(tmp_path):
    import tests.plugin_rewards  # noqa: F401  (registration happens on import, as in a user's package)

    path = tmp_path / "r.yaml"
    path.write_text("rewards:\n  - {name: test_plugin_shortness, weight: 2.0}\n"
                    "  - {name: 'tests.plugin_rewards:digits_fraction'}\n")
    suite = RewardSuite(load_recipe(path).rewards)
    batch = suite.score(["1", "abc"], {"answer": ["1", "2"]})
    assert batch.per_function["test_plugin_shortness"] == [0.5, 0.25]
    assert batch.per_function["tests.plugin_rewards:digits_fraction"] == [1.0, 0.0]
    assert batch.total == [2 * 0.5 + 1.0, 2 * 0.25 + 0.0]


def test_none_rewards_are_skipped_in_the_weighted_sum():
    class Spec:
        def __init__(self, name, weight):
            self.name, self.weight, self.args = name, weight, {}

    batch = RewardSuite([Spec("math_accuracy", 3.0)]).score(["5", "5"], {"answer": ["5", None]})
    assert batch.per_function["math_accuracy"] == [1.0, None]
    assert batch.total == [3.0, 0.0]


def test_unknown_reward_lists_valid_names_and_suggests():
    with pytest.raises(RewardError, match="unknown reward 'math_acuracy'; did you mean 'math_accuracy'"):
        resolve("math_acuracy")
    with pytest.raises(RewardError, match="cannot import reward 'nowhere.module:fn'"):
        resolve("nowhere.module:fn")


def test_a_reward_that_breaks_its_contract_is_named():
    class Spec:
        name, weight, args = "tests.plugin_rewards:digits_fraction", 1.0, {}

    suite = RewardSuite([Spec()])
    suite.rewards[0] = suite.rewards[0].__class__(Spec.name, lambda completions, **c: [1.0], 1.0)
    with pytest.raises(RewardError, match="returned 1 values for 2 completions"):
        suite.score(["a", "b"], {})


def suite_of(fn) -> RewardSuite:
    class Spec:
        name, weight, args = "tests.plugin_rewards:digits_fraction", 1.0, {}

    suite = RewardSuite([Spec()])
    suite.rewards[0] = suite.rewards[0].__class__("plugin", fn, 1.0)
    return suite


def longest_share(completions, **columns):
    """Length over the longest completion in the call (compares a group's completions);
    raises on a completion that says boom, and answers NaN for one that says nan."""
    if "boom" in completions:
        raise ValueError("boom")
    longest = max(map(len, completions))
    return [float("nan") if c == "nan" else len(c) / longest for c in completions]


def test_rows_a_reward_fails_on_score_none_are_counted_and_logged_and_groups_stay_whole(caplog):
    suite = suite_of(longest_share)
    prompts = ["p1", "p1", "p2", "p2", "p3"]
    batch = suite.score(["a", "aaaa", "boom", "bb", "nan"], {"prompts": prompts})
    # p1 scored as a group (1/4 of its longest); p2 failed as a group, then row by row
    assert batch.per_function["plugin"] == [0.25, 1.0, None, 1.0, None]
    assert batch.total == [0.25, 1.0, 0.0, 1.0, 0.0]
    assert batch.counts == {"plugin": {"errors": 2}}
    assert "reward 'plugin' failed on 2 of 5 rows (scored None); row 2:" in caplog.text
    assert "ValueError: boom" in caplog.text  # with its traceback


def test_a_reward_that_fails_on_every_row_stops_with_its_name():
    with pytest.raises(RewardError, match="reward 'plugin' failed on every row of the batch .row 0: ValueError: boom"):
        suite_of(longest_share).score(["boom", "boom"], {"prompts": ["p", "q"]})


@pytest.mark.parametrize("name", [m.name for m in pkgutil.walk_packages(rewards.__path__, "rewards.")
                                  if m.name != "rewards.sandbox.zygote"])  # the zygote is a script
def test_the_docstring_examples_of_every_rewards_module_hold(name):
    assert doctest.testmod(importlib.import_module(name)).failed == 0


def test_rewards_package_does_not_import_torch():
    code = "import sys, rewards; rewards.resolve('math_accuracy'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_builtin_rewards_are_available():
    assert "math_accuracy" in available()


def test_entry_point_plugin_from_an_installed_distribution(tmp_path, monkeypatch):
    # an installed package = importable module + dist-info with an entry point, as pip leaves it
    (tmp_path / "shout_reward.py").write_text(
        "def shout(completions, **columns):\n"
        "    '''Share of upper-case letters.'''\n"
        "    return [sum(c.isupper() for c in s) / max(len(s), 1) for s in completions]\n")
    dist = tmp_path / "shout_reward-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-reward\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlreason.rewards]\nshout = shout_reward:shout\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve("shout")(["AB", "ab"]) == [1.0, 0.0]
    assert "shout" in available()
