"""Every reward call has a time limit: a call past it scores None for its rows (counted, logged
naming the reward), a reward that hangs call after call stops the run with a checkpoint, and
Ctrl-C during a stuck reward still saves."""

import json
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace as Spec

import pytest
import yaml

from rewards import suite as suite_module
from rewards.suite import RewardCancelled, RewardStalled, RewardSuite
from tests import plugin_rewards
from tests.conftest import ROOT, TINY, accelerate_launch


def reward_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "reward call"]


def ended(threads, within_s: float = 10.0) -> bool:
    """Whether every thread in ``threads`` ends within ``within_s`` (a bound on waiting, not a timing)."""
    deadline = time.monotonic() + within_s
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(t.is_alive() for t in threads)


def test_a_call_past_its_limit_scores_none_is_counted_and_named_and_its_thread_is_stopped(caplog):
    before = set(reward_threads())
    suite = RewardSuite([Spec(name="tests.plugin_rewards:spins_forever", weight=1.0, args={}, timeout_s=0.5),
                         Spec(name="tests.plugin_rewards:digits_fraction", weight=1.0, args={})])
    batch = suite.score(["12", "ab"], {})
    assert batch.per_function["tests.plugin_rewards:spins_forever"] == [None, None]
    assert batch.per_function["tests.plugin_rewards:digits_fraction"] == [1.0, 0.0]  # the others still score
    assert batch.counts["tests.plugin_rewards:spins_forever"] == {"timeouts": 1}
    assert "'tests.plugin_rewards:spins_forever' ran past its time limit (rewards[0].timeout_s: 0.5 s)" in caplog.text
    assert ended(set(reward_threads()) - before)  # the spinning loop was told to stop, and did


def test_a_reward_that_hangs_on_some_calls_scores_the_others():
    plugin_rewards._calls["hangs_every_other_call"] = 0
    suite = RewardSuite([Spec(name="tests.plugin_rewards:hangs_every_other_call", weight=1.0, args={}, timeout_s=0.3)])
    scored = [suite.score(["a", "bb"], {}) for _ in range(5)]
    assert [b.per_function["tests.plugin_rewards:hangs_every_other_call"] for b in scored] == [
        [0.5, 1 / 3], [None, None], [0.5, 1 / 3], [None, None], [0.5, 1 / 3]]
    assert [b.counts["tests.plugin_rewards:hangs_every_other_call"].get("timeouts", 0) for b in scored] == [0, 1, 0, 1, 0]


def test_a_reward_that_times_out_call_after_call_stops_naming_itself():
    suite = RewardSuite([Spec(name="tests.plugin_rewards:digits_fraction", weight=1.0, args={}),
                         Spec(name="tests.plugin_rewards:spins_forever", weight=1.0, args={}, timeout_s=0.2)])
    suite.score(["1"], {})
    suite.score(["1"], {})
    with pytest.raises(RewardStalled, match=r"reward 'tests.plugin_rewards:spins_forever' timed out on 3 calls in a "
                                            r"row \(rewards\[1\].timeout_s: 0.2 s\)"):
        suite.score(["1"], {})


def test_a_stop_request_abandons_a_stuck_call_after_the_grace_time(monkeypatch):
    monkeypatch.setattr(suite_module, "STOP_GRACE_S", 0.2)
    suite = RewardSuite([Spec(name="tests.plugin_rewards:spins_forever", weight=1.0, args={}, timeout_s=600)])
    threading.Timer(0.2, suite.request_stop).start()
    with pytest.raises(RewardCancelled):
        suite.score(["1"], {})


def test_a_reward_that_sets_its_own_alarm_works_as_a_plain_call():
    """From the main thread a reward runs in it: one that uses signal.alarm (as Math-Verify's
    parse and verify do) is not broken by the time limit."""
    suite = RewardSuite([Spec(name="tests.plugin_rewards:with_its_own_alarm", weight=1.0, args={}, timeout_s=5)])
    batch = suite.score(["a", "bb"], {})
    assert batch.per_function["tests.plugin_rewards:with_its_own_alarm"] == [0.5, 1 / 3]
    assert batch.counts["tests.plugin_rewards:with_its_own_alarm"] == {}


def test_a_reward_cannot_turn_its_timeout_into_scores():
    suite = RewardSuite([Spec(name="tests.plugin_rewards:swallows_its_errors", weight=1.0, args={}, timeout_s=0.3)])
    batch = suite.score(["a", "b"], {})
    assert batch.per_function["tests.plugin_rewards:swallows_its_errors"] == [None, None]
    assert batch.counts["tests.plugin_rewards:swallows_its_errors"] == {"timeouts": 1}


def test_from_another_thread_a_stuck_call_is_abandoned():
    outcome = {}
    suite = RewardSuite([Spec(name="tests.plugin_rewards:spins_forever", weight=1.0, args={}, timeout_s=0.3)])
    thread = threading.Thread(target=lambda: outcome.update(batch=suite.score(["1"], {})))
    thread.start()
    thread.join(60)
    assert outcome["batch"].per_function["tests.plugin_rewards:spins_forever"] == [None]


def test_a_call_that_ends_in_native_code_past_its_limit_leaves_nothing_behind():
    """Its interrupt is handled only after it returned, on the way out: it still counts as a
    timeout, and no watchdog, and no interrupt, outlives it."""
    with pytest.raises(suite_module.RewardTimeout):
        suite_module.call_limited(lambda: sum(range(60_000_000)), 0.05, lambda: None)  # one loop in C
    for _ in range(20):
        time.sleep(0.05)  # the trainer's own code goes on undisturbed
    assert not [t for t in threading.enumerate() if t.name == "reward watchdog"]


def test_a_reward_raising_inside_its_thread_is_handled_as_before():
    suite = RewardSuite([Spec(name="tests.plugin_rewards:as_integer", weight=1.0, args={})])
    batch = suite.score(["1", "x"], {})  # one row raises: that row is None, the other scores
    assert batch.per_function["tests.plugin_rewards:as_integer"] == [1.0, None]
    assert batch.counts["tests.plugin_rewards:as_integer"] == {"errors": 1}


def write_recipe(tmp_path, reward: str, timeout_s: float, max_steps: int):
    recipe = {
        "name": "timeouts", "output_dir": str(tmp_path / "run"), "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 4, "synthetic": {"num_train": 32}},
        "rollout": {"backend": "hf", "num_generations": 4, "max_new_tokens": 6},
        "rewards": [{"name": "tests.plugin_rewards:character_codes"},
                    {"name": f"tests.plugin_rewards:{reward}", "timeout_s": timeout_s}],
        "trainer": {"max_steps": max_steps, "prompts_per_step": 4, "micro_batch_size": 8, "save_every": 0},
        "evaluation": {"every": 0, "batch_size": 4, "metric": "tests.plugin_rewards:character_codes"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train(recipe, **kwargs):
    return subprocess.run([sys.executable, "-m", "cli", "train", str(recipe)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, **kwargs)


@pytest.mark.slow  # two CLI training runs
def test_a_run_with_a_reward_that_hangs_on_some_calls_finishes_and_counts_them(tmp_path):
    done = train(write_recipe(tmp_path, "hangs_every_other_call", timeout_s=1.0, max_steps=4))
    assert done.returncode == 0, done.stderr[-3000:]
    timeouts = [row.get("reward/tests.plugin_rewards:hangs_every_other_call/timeouts", 0) for row in metrics(tmp_path / "run")
                if "loss" in row]
    assert len(timeouts) == 4 and sum(timeouts) == 2  # calls 2 and 4 of 6 (evaluations at steps 0 and 4 included)
    assert "ran past its time limit" in done.stderr


@pytest.mark.slow
def test_a_run_whose_reward_hangs_on_every_call_stops_with_its_name_and_a_checkpoint(tmp_path):
    done = train(write_recipe(tmp_path, "spins_forever", timeout_s=0.5, max_steps=6))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "reward 'tests.plugin_rewards:spins_forever' timed out on 3 calls in a row" in last
    checkpoint = tmp_path / "run" / "checkpoint-1"  # calls at evaluation 0 and steps 1, 2: step 2 never updated
    assert f"saved as of step 1: {checkpoint}" in last and "--resume" in last
    assert (checkpoint / "training_state.pt").exists()
    assert max(row["step"] for row in metrics(tmp_path / "run")) == 1


@pytest.mark.slow
def test_ctrl_c_during_a_stuck_reward_saves_a_checkpoint(tmp_path):
    recipe = write_recipe(tmp_path, "hangs_every_other_call", timeout_s=600, max_steps=4)
    process = subprocess.Popen([sys.executable, "-m", "cli", "train", str(recipe)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir, deadline = tmp_path / "run", time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not (
            (run_dir / "metrics.jsonl").exists() and (run_dir / "metrics.jsonl").read_text().strip()):
        time.sleep(0.05)  # the evaluation at step 0 is logged: step 1's reward call (its second) hangs next
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "after step 0" in stderr and "--resume" in stderr
    assert (run_dir / "checkpoint-0" / "training_state.pt").exists()


@pytest.mark.slow  # two processes
def test_a_reward_failing_on_one_process_stops_every_process_with_a_checkpoint(tmp_path):
    """The processes agree on a failed scoring before any of them goes on: none waits forever in
    an update the failed one never joins, and all of them save together."""
    recipe = write_recipe(tmp_path, "fails_on_the_second_process", timeout_s=60, max_steps=3)
    done = subprocess.run([*accelerate_launch("cpu"), "-m", "cli", "train", str(recipe)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "failed on every row" in done.stderr and "saved as of step 0" in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint-0" / "training_state.pt").exists()
