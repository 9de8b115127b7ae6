"""Every input to math_accuracy is bounded, and its verdicts are the same at any load.

A verdict is a function of (completion, gold): never of the machine's load or a wall clock. What
could take long is refused before it starts (lengths, nesting, degrees, ranges); the CPU-time
limit that remains is a last resort whose rows score None (counted), never a 0.
"""

import subprocess
import sys
import time

import pytest

from rewards import tally
from rewards.bounded import BoundedPool
from rewards.math_answer import MAX_GOLD_CHARS, math_accuracy
from tests.conftest import ROOT
from tests.load import busy_cpus

PATHOLOGICAL_GOLDS = {  # each gold and what it scores against \boxed{3}
    "100,000 digits": ("1" * 100_000, None),
    "5,000 digits": ("1" * 4_990, 0.0),
    "spaces before %": ("3" + " " * 4_000 + "%", 1.0),  # 3 for a gold of 3%, as ever
    "spaces before p": ("3" + " " * 4_000 + "p", 0.0),
    "10 MB": ("x" * 10_000_000, None),
    "boxes 5,000 deep": ("\\boxed{" * 5_000 + "3" + "}" * 5_000, 1.0),
    "brackets 1,000 deep": ("(" * 1_000 + "3" + ")" * 1_000, None),
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL_GOLDS))
def test_a_pathological_gold_is_judged_or_scores_none(name):
    gold, expected = PATHOLOGICAL_GOLDS[name]
    with tally.collecting() as counts:
        assert math_accuracy(["\\boxed{3}"], answer=[gold]) == [expected]
    assert counts["unreadable_golds"] == (1 if expected is None else 0)


@pytest.mark.parametrize("completion, expected", [
    ("\\boxed{" * 1_000 + "3" + "}" * 1_000, 1.0),   # boxes in boxes: the innermost answer
    ("\\boxed{" * 5_000 + "3" + "}" * 5_000, 1.0),
    ("\\boxed{" + "(" * 1_000 + "3" + ")" * 1_000 + "}", 0.0),  # deeper than any answer: compared to nothing
    ("x" * 10_000_000 + "\\boxed{3}", 1.0),          # 10 MB of output: its end is read
    ("\\boxed{" + "1+" * 5_000_000 + "1}", 0.0),      # a 10 MB answer
    ("\\boxed{x^{50}-3x+1>0}", 0.0),                  # no solver runs on it
    ("\\boxed{" + " \\pm ".join(["1"] * 40) + "}", 0.0),  # 2^39 values
])
def test_pathological_completions_get_a_verdict(completion, expected):
    assert math_accuracy([completion], answer=["3"]) == [expected]


def test_a_gold_longer_than_any_worked_solution_is_not_read():
    assert math_accuracy(["\\boxed{1}"], answer=["1" + " " * MAX_GOLD_CHARS]) == [None]


def test_more_completions_than_answers_is_an_error_naming_the_reward():
    with pytest.raises(ValueError, match=r"math_accuracy: 3 completions but 2 rows in column 'answer'"):
        math_accuracy(["1", "2", "3"], answer=["1", "2"])


def spin(seconds: float) -> str:
    """Burn ``seconds`` of CPU time (not wall time)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return "done"


def test_the_pool_limits_cpu_time_and_reports_what_ran_out():
    pool = BoundedPool(workers=2)
    try:
        mapped = pool.map(spin, [(0.0,), (30.0,), (0.0,)], timeout=0.5, default="default")
        assert mapped.results == ["done", "default", "done"] and mapped.timed_out == [1] and mapped.crashed == []
        mapped = pool.map(time.sleep, [(60.0,)], timeout=0.05, default="default")  # no CPU: the wall ceiling
        assert mapped.timed_out == [0]
    finally:
        pool.close()


def test_a_loaded_machine_stretches_wall_time_not_the_cpu_budget():
    """Eight times as many busy processes as cores: work of 0.3 CPU s against a 1 CPU s limit
    takes several wall seconds and still finishes, every time."""
    pool = BoundedPool(workers=2)
    try:
        with busy_cpus(per_core=4):
            mapped = pool.map(spin, [(0.3,)] * 4, timeout=1.0, default="default")
        assert mapped.results == ["done"] * 4 and mapped.timed_out == []
    finally:
        pool.close()


ORPHANING = """
import os, threading
from rewards.bounded import BoundedPool
pool = BoundedPool(2)
thread = threading.Thread(target=lambda: pool.map(abs, [(-1,)], 1.0, None))  # forked from a thread that then ends
thread.start(); thread.join()
assert pool.map(abs, [(-2,), (-3,)], 1.0, None).crashed == []  # the workers outlive that thread
print(" ".join(str(w.process.pid) for w in pool.workers), flush=True)
os._exit(0)  # the caller dies without cleaning up, as under SIGKILL
"""


def test_workers_die_with_their_caller_however_it_dies():
    done = subprocess.run([sys.executable, "-c", ORPHANING], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    deadline = time.monotonic() + 10  # a bound on waiting; they go within about a second
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_a_sigterm_to_the_process_group_does_not_kill_verdicts_in_flight():
    """A scheduler's SIGTERM reaches every process of the group; the trainer finishes its step,
    and its verdicts must finish with it."""
    import os
    import signal

    pool = BoundedPool(workers=2)
    try:
        pool.map(spin, [(0.0,), (0.0,)], timeout=5.0, default="default")
        for worker in pool.workers:
            os.kill(worker.process.pid, signal.SIGTERM)
        mapped = pool.map(spin, [(0.2,), (0.2,)], timeout=5.0, default="default")
        assert mapped.results == ["done", "done"] and mapped.crashed == []
    finally:
        pool.close()
