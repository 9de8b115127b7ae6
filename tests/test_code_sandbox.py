"""Code rewards on real sandboxed executions: HumanEval, test styles, and hostile programs."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from rewards.code import code_accuracy, code_pass, extract_code
from rewards.sandbox import SANDBOX_UID_BASE, namespaces_available, run, sandbox_root

ADD = {"prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n",
       "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n",
       "entry_point": "add"}
GOOD = "    return a + b\n"
BUDGET = 2.0

isolated = pytest.mark.skipif(not namespaces_available(), reason="needs root and unshare for namespaces")


def score(completion: str, timeout: float = BUDGET) -> float:
    return code_accuracy([completion], timeout=timeout, **{k: [v] for k, v in ADD.items()})[0]


def sandbox_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if SANDBOX_UID_BASE <= entry.stat().st_uid < SANDBOX_UID_BASE + 64:
                    found.append(int(entry.name))
            except FileNotFoundError:
                pass
    return found


@pytest.fixture(autouse=True)
def machine_unaffected():
    before = set(os.listdir(sandbox_root()))
    yield
    time.sleep(0.05)
    assert sandbox_processes() == [], "sandboxed processes outlived their execution"
    assert set(os.listdir(sandbox_root())) == before, "a working directory was left behind"


def test_humaneval_canonical_solutions_all_pass_and_return_none_fails(shared_data):
    rows = [json.loads(line) for line in (shared_data / "humaneval.jsonl").read_text().splitlines()]
    columns = {k: [r[k] for r in rows] for k in ("prompt", "test", "entry_point")}
    assert code_accuracy([r["canonical_solution"] for r in rows], **columns) == [1.0] * len(rows)
    assert code_pass(["    return None\n"] * len(rows), **columns) == [0.0] * len(rows)


def test_fenced_block_and_full_definition():
    completion = "Sure:\n```python\ndef add(a, b):\n    return b + a\n```\nThat is it."
    assert extract_code(completion).startswith("def add(")
    assert score(completion) == 1.0
    assert score("```python\ndef add(a, b):\n    return a - b\n```") == 0.0


def test_stdin_stdout_cases_are_whitespace_tolerant_and_partial():
    program = "a, b = map(int, input().split())\nprint(a + b, ' ')\nprint()\n"
    cases = [{"input": "1 2\n", "output": "3"}, {"input": "5 5", "output": "10\n"}, {"input": "2 2", "output": "5"}]
    assert code_accuracy([program], tests=[cases]) == [pytest.approx(2 / 3)]
    assert code_pass([program], tests=[json.dumps(cases)]) == [0.0]


def test_mbpp_style_assert_list_counts_each_test():
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(2, 2) == 5"]
    assert code_accuracy(["def add(a, b):\n    return a + b\n"], test_list=[tests]) == [pytest.approx(2 / 3)]


def test_rows_without_tests_are_not_applicable_and_other_languages_are_refused():
    assert code_accuracy(["print(1)"], answer=["1"]) == [None]
    with pytest.raises(ValueError, match="Python only; row has language 'rust'"):
        code_accuracy(["fn main() {}"], language=["rust"], **{k: [v] for k, v in ADD.items()})


HOSTILE = {
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "memory bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n",
    "infinite loop": "while True:\n    pass\n",
    "infinite output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "sleep past the budget": "import time\ntime.sleep(60)\n",
    "exit before the tests": "import sys\nsys.exit(0)\n",
    "hard exit before the tests": "import os\nos._exit(0)\n",
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\n",
    "redefine the checker": "def add(a, b):\n    return 0\ndef check(candidate):\n    pass\n",
    "patch builtins the checker uses": ("import builtins\nbuiltins.abs = lambda x: 0\n"
                                        "def add(a, b):\n    return 3\n"),
    "forge the report": ("import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'00 1 1')\n"
                         "    except OSError:\n        pass\ndef add(a, b):\n    return 0\n"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_program_scores_zero_within_budget(name):
    started = time.perf_counter()
    assert score(HOSTILE[name]) == 0.0
    assert time.perf_counter() - started < BUDGET + 1.5


def test_closing_stdout_still_scores_correctly():
    completion = "import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\ndef add(a, b):\n    return a + b\n"
    assert score(completion) == 1.0


@isolated
def test_writes_outside_the_working_directory_do_not_reach_the_machine(tmp_path):
    marker = f"rlreason-escape-{os.getpid()}"
    targets = [f"/tmp/{marker}", f"/var/tmp/{marker}", f"/dev/shm/{marker}", str(tmp_path / marker),
               f"../{marker}", f"{Path.home()}/{marker}"]
    completion = ("def add(a, b):\n    for path in %r:\n        try:\n            open(path, 'w').write('x')\n"
                  "        except OSError:\n            pass\n    return a + b\n") % (targets,)
    assert score(completion) == 1.0  # scored correctly: the function is right
    for target in targets:
        assert not Path(target).exists(), target
    assert not (sandbox_root() / marker).exists()


@isolated
def test_no_network_connection_leaves_the_sandbox():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=serve)
    thread.start()
    completion = ("import socket\ndef add(a, b):\n    s = socket.create_connection(('127.0.0.1', %d), timeout=1)\n"
                  "    s.sendall(b'leak')\n    return a + b\n") % port
    try:
        assert score(completion) == 0.0
    finally:
        stop.set()
        thread.join()
        server.close()
    assert accepted == []


def test_the_parents_secrets_stay_out_of_reach(monkeypatch):
    monkeypatch.setenv("RLREASON_TEST_SECRET", "hunter2-do-not-leak")
    program = ("import os\nprint(dict(os.environ))\n"
               "for path in ('/proc/%d/environ' % os.getppid(), '/proc/1/environ', '/proc/self/environ'):\n"
               "    try:\n        print(open(path, 'rb').read())\n    except OSError as err:\n        print(err)\n")
    done = run({"p.py": program}, ["p.py"])
    assert done.returncode == 0
    assert "hunter2" not in done.stdout + done.stderr


def test_score_command_runs_humaneval_rows_directly(shared_data, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    rows = [json.loads(line) for line in (shared_data / "humaneval.jsonl").read_text().splitlines()][:20]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({**r, "completion": r["canonical_solution"]}) for r in rows))
    done = subprocess.run([sys.executable, "-m", "cli", "rewards", "score", "code_accuracy", "--input", str(path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "code_accuracy: 20 rows, mean 1.0000, 0 not applicable, 0 errors" in done.stdout


def test_each_test_has_its_own_budget_and_the_completion_a_total():
    slow_on_two = "import time\ndef add(a, b):\n    if a == 2:\n        time.sleep(30)\n    return a + b\n"
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(3, 4) == 7"]
    started = time.perf_counter()
    # the sleeping test fails on its own budget; the tests around it still count
    assert code_accuracy([slow_on_two], test_list=[tests], timeout=1.0) == [pytest.approx(2 / 3)]
    assert time.perf_counter() - started < 4
    cases = [{"input": "", "output": "ok"}] * 5
    started = time.perf_counter()
    # every case sleeps 1 s of a 1.5 s test budget; the 2.5 s completion budget stops the rest
    result = code_accuracy(["import time\ntime.sleep(1)\nprint('ok')\n"], tests=[cases], timeout=1.5,
                           completion_timeout=2.5)
    assert result[0] in (pytest.approx(2 / 5), pytest.approx(3 / 5))
    assert time.perf_counter() - started < 4.5
