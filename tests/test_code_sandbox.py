"""Code rewards on real sandboxed executions: HumanEval, test styles, honest programs, and the
attacks a hostile policy tries (each: wrong code scores 0.0, no exception, nothing left behind)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewards import tally
from rewards.code import code_accuracy, code_pass, extract_code
from rewards.sandbox.client import GRACE_SECONDS, WALL_CEILING, Limits, Sandbox, shared
from rewards.sandbox.isolation import JUDGE_UID
from tests.conftest import ROOT

# tests expect twice the input; a wrong program returns -1
DOUBLE = {"prompt": "def double(x):\n    \"\"\"Return 2 * x.\"\"\"\n",
          "test": ("def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-3) == -6\n"
                   "    assert abs(candidate(0.25) - 0.5) < 1e-9\n"),
          "entry_point": "double"}
RIGHT = "def double(x):\n    return 2 * x\n"
WRONG = "def double(x):\n    return -1\n"
BUDGET = 1.0
# the completion's budget (per test + loading), as wall time where a loaded machine stretches it
# as far as the sandbox allows (budgets are time not spent waiting for a CPU), and slack
WALL = BUDGET * 2 * WALL_CEILING + GRACE_SECONDS + 2.5

fully_isolated = pytest.mark.skipif(os.geteuid() != 0, reason="the isolation layers need root")


def score(completion: str, timeout: float = BUDGET, memory_mb: int = 1024) -> float | None:
    return code_accuracy([completion], timeout=timeout, memory_mb=memory_mb, **{k: [v] for k, v in DOUBLE.items()})[0]


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def sandbox_processes() -> list[int]:
    """This test session's processes of the sandbox's users (executions and judges), its own
    zygotes aside (other sessions on the machine may be scoring too)."""
    found, zygotes = [], {shared().candidates.process.pid, shared().judges.process.pid}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in zygotes:
            continue
        try:
            if entry.stat().st_uid < JUDGE_UID:
                continue
        except FileNotFoundError:
            continue
        pid = int(entry.name)
        while pid > 1 and pid != os.getpid():
            pid = parent_of(pid)
        if pid == os.getpid():
            found.append(int(entry.name))
    return found


def ipc_objects() -> dict[str, list[str]]:
    return {kind: Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:] for kind in ("shm", "msg", "sem")}


def execution_cgroups() -> list[str]:
    """The sandbox's cgroups that hold a process or are not reusable slots (the judges' holds
    its judge zygote, and nothing else between two scorings)."""
    found, judge_zygote = [], str(shared().judges.process.pid)
    for base in Path("/sys/fs/cgroup").glob(f"**/rlreason-{shared().candidates.process.pid}"):
        for cgroup in (p for p in base.iterdir() if p.is_dir()):
            held = (cgroup / "cgroup.procs").read_text().split()
            if cgroup.name == "judges" and set(held) <= {judge_zygote}:
                continue
            if not cgroup.name.startswith("slot") or held:
                found.append(str(cgroup))
    return found


@fully_isolated
def test_the_judges_share_a_memory_cgroup():
    judge_zygote = shared().judges.process.pid
    assert Path(f"/proc/{judge_zygote}/cgroup").read_text().count(f"/rlreason-{shared().candidates.process.pid}/judges") >= 1


def shared_dirs() -> dict[str, set[str]]:
    """What the sandbox could have left in the host's shared directories: entries of its users,
    and working directories of executions without namespaces (other tests write here too)."""
    def ours(path: Path) -> bool:
        try:
            return path.name.startswith("rlreason-run-") or path.lstat().st_uid >= JUDGE_UID
        except FileNotFoundError:
            return False

    return {d: {p.name for p in Path(d).iterdir() if ours(p)} for d in ("/tmp", "/var/tmp", "/dev/shm")
            if os.path.isdir(d)}


@pytest.fixture(autouse=True)
def nothing_left_behind():
    shared()  # zygotes started before the first snapshot
    before = (shared_dirs(), ipc_objects())
    yield
    for _ in range(40):  # another process's zygotes leave when it has gone
        if not sandbox_processes():
            break
        time.sleep(0.05)
    assert sandbox_processes() == [], "sandboxed processes outlived their execution"
    assert execution_cgroups() == [], "an execution's cgroup was left behind"
    assert (shared_dirs(), ipc_objects()) == before, "files or IPC objects were left behind"


def test_humaneval_canonical_solutions_all_pass_and_return_none_fails(shared_data):
    rows = [json.loads(line) for line in (shared_data / "humaneval.jsonl").read_text().splitlines()]
    columns = {k: [r[k] for r in rows] for k in ("prompt", "test", "entry_point")}
    assert code_accuracy([r["canonical_solution"] for r in rows], **columns) == [1.0] * len(rows)
    assert code_pass(["    return None\n"] * len(rows), **columns) == [0.0] * len(rows)


def test_fenced_block_and_full_definition():
    completion = "Sure:\n```python\ndef double(x):\n    return x + x\n```\nThat is it."
    assert extract_code(completion).startswith("def double(")
    assert score(completion) == 1.0
    assert score("```python\n" + WRONG + "```") == 0.0


def test_stdin_stdout_cases_are_whitespace_tolerant_and_partial():
    program = "a, b = map(int, input().split())\nprint(a + b, ' ')\nprint()\n"
    cases = [{"input": "1 2\n", "output": "3"}, {"input": "5 5", "output": "10\n"}, {"input": "2 2", "output": "5"}]
    assert code_accuracy([program], tests=[cases]) == [pytest.approx(2 / 3)]
    assert code_pass([program], tests=[json.dumps(cases)]) == [0.0]


def test_mbpp_style_assert_list_counts_each_test_with_setup_and_imports():
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(2, 2) == 5",
             "assert math.isclose(add(0.1, 0.2), 0.3)", "assert add(*PAIR) == 7"]
    row = {"test_list": [tests], "test_imports": [["import math"]], "test_setup_code": ["PAIR = (3, 4)"]}
    assert code_accuracy(["def add(a, b):\n    return a + b\n"], **row) == [pytest.approx(4 / 5)]


def test_plain_data_of_every_kind_crosses_and_builtin_exceptions_keep_their_type():
    program = ("def echo(x):\n    return x\n"
               "def fail(kind):\n    raise {'value': ValueError, 'key': KeyError}[kind]('no')\n")
    tests = ["v = {'a': (1, 2.5, None), 'b': [True, {3, 4}], 5: b'x', 'c': 1 + 2j, 'f': frozenset({1})}\n"
             "assert echo(v) == v and type(echo(v)['a']) is tuple",
             "assert echo(10 ** 5000) == 10 ** 5000 and echo(float('inf')) == float('inf')",
             "assert echo(x=[-0.0])[0] == 0.0",
             "try:\n    fail('value')\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError",
             "try:\n    fail('key')\nexcept KeyError:\n    pass\nelse:\n    raise AssertionError"]
    assert code_accuracy([program], test_list=[tests]) == [1.0]


HONEST = {
    "writes and reads its working directory and /tmp": (
        "def double(x):\n    open('scratch.txt', 'w').write(str(2 * x))\n"
        "    open('/tmp/more.txt', 'w').write('ok')\n    return int(open('scratch.txt').read()) if x == int(x) else 2 * x\n"),
    "keeps state between calls": "seen = []\ndef double(x):\n    seen.append(x)\n    return 2 * x\n",
    "uses a thread and a child process": (
        "import os, threading\ndef double(x):\n    out = []\n    t = threading.Thread(target=lambda: out.append(2 * x))\n"
        "    t.start(); t.join()\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n"
        "    return out[0]\n"),
    "imports the standard library": "import collections, fractions, sqlite3, json\ndef double(x):\n    return json.loads(json.dumps(2 * x))\n",
    "prints a lot": "def double(x):\n    print('x' * 100000)\n    return 2 * x\n",
}


@pytest.mark.parametrize("name", HONEST)
def test_honest_programs_score_full_marks(name):
    assert score(HONEST[name]) == 1.0


def attack(body: str) -> str:
    """A wrong ``double`` (returns -1) with ``body`` run at import time."""
    return body + "\n" + WRONG


# Each takes a shot at the verdict: reaching the tests, the report or the comparison.
VERDICT_ATTACKS = {
    "empty the harness's tests through its frame": attack(
        "import sys\nf = sys._getframe(0)\nwhile f:\n    for key in ('tests', 'test', 'check'):\n"
        "        if isinstance(f.f_locals.get(key), list):\n            f.f_locals[key].clear()\n    f = f.f_back\n"),
    "the same through a traceback": attack(
        "try:\n    raise ValueError\nexcept ValueError as e:\n    f = e.__traceback__.tb_frame\n"
        "while f:\n    f.f_globals.pop('check', None)\n    f = f.f_back\n"),
    "through gc": attack(
        "import gc\nfor o in gc.get_objects():\n    if isinstance(o, list) and o and all(isinstance(t, str) and 'assert' in t for t in o):\n"
        "        o.clear()\n    if isinstance(o, dict) and 'check' in o:\n        o['check'] = lambda c: None\n"),
    "through settrace": attack(
        "import sys\ndef tracer(frame, event, arg):\n    frame.f_locals.pop('tests', None)\n    return tracer\n"
        "sys.settrace(tracer)\nsys._getframe(1).f_trace = tracer\n"),
    "through a thread and _current_frames": attack(
        "import sys, threading\ndef meddle():\n    for f in sys._current_frames().values():\n        while f:\n"
        "            f.f_globals['check'] = lambda c: None\n            f = f.f_back\nthreading.Thread(target=meddle).start()\n"),
    "forge the report on every descriptor and exit": attack(
        "import os, json\nfor fd in range(0, 256):\n    for line in (json.dumps({'passed': 1, 'total': 1}),\n"
        "                 '{\"loaded\": true, \"names\": [\"double\"]}', 'ok 1 1', '[\"dict\", []]'):\n"
        "        try:\n            os.write(fd, (line + '\\n').encode())\n        except OSError:\n            pass\n"
        "os._exit(0)\n"),
    "forge the report from a thread": attack(
        "import os, threading\ndef forge():\n    for fd in range(256):\n        try:\n"
        "            os.write(fd, b'{\"passed\": 1, \"total\": 1}\\n')\n        except OSError:\n            pass\n"
        "    os._exit(0)\nthreading.Thread(target=forge).start()\n"),
    "forge answers at call time": (
        "import os\ndef double(x):\n    for fd in range(256):\n        try:\n"
        "            os.write(fd, b'[\"dict\",[[\"id\",[\"int\",\"1\"]],[\"value\",[\"int\",\"2\"]]]]\\n' * 50)\n"
        "        except OSError:\n            pass\n    os._exit(0)\n"),
    "replace exec": attack("import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: None\n"),
    "always-equal result": (
        "class Any:\n    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
        "    __hash__ = lambda self: 0\n    __sub__ = __rsub__ = lambda self, other: 0.0\n    __abs__ = lambda self: 0.0\n"
        "    __lt__ = __le__ = __gt__ = __ge__ = lambda self, other: True\ndef double(x):\n    return Any()\n"),
    "always-equal subclass of int": (
        "class Int(int):\n    __eq__ = lambda self, other: True\n    __sub__ = __rsub__ = lambda self, other: 0\n"
        "def double(x):\n    return Int(-1)\n"),
    "shadow the builtins the tests call": "def abs(x):\n    return 0\ndef round(x, n=0):\n    return 0\n" + WRONG,
    "replace __builtins__": attack("import builtins\n__builtins__ = dict(vars(builtins), abs=lambda x: 0)\nbuiltins.abs = lambda x: 0\n"),
    "answer with a deep nest": "def double(x):\n    v = []\n    for _ in range(100000):\n        v = [v]\n    return v\n",
    "answer with a huge string": "def double(x):\n    return 'x' * (64 << 20)\n",
}


@pytest.mark.parametrize("name", VERDICT_ATTACKS)
def test_attacks_on_the_verdict_score_zero(name):
    started = time.perf_counter()
    assert score(VERDICT_ATTACKS[name]) == 0.0
    assert time.perf_counter() - started < WALL


def test_one_attack_program_passes_no_humaneval_row(shared_data):
    rows = [json.loads(line) for line in (shared_data / "humaneval.jsonl").read_text().splitlines()][:40]
    columns = {k: [r[k] for r in rows] for k in ("prompt", "test", "entry_point")}
    hack = ("    return None\nimport gc, sys\nfor o in gc.get_objects():\n    if isinstance(o, dict) and 'check' in o:\n"
            "        o['check'] = lambda c: None\nf = sys._getframe(0)\nwhile f:\n    f.f_globals['check'] = lambda c: None\n"
            "    f = f.f_back\n")
    assert code_pass([hack] * len(rows), **columns) == [0.0] * len(rows)


# Each tries to crash, hang or escape the sandbox; the function itself is wrong, or right only
# when the escape worked.
RESOURCE_ATTACKS = {
    "fork bomb": attack("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"),
    "memory bomb": attack("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n"),
    "memory spread over children": (
        "import os\ndef double(x):\n    pids = []\n    for _ in range(4):\n        pid = os.fork()\n        if pid == 0:\n"
        "            block = bytearray(400 * 2**20)\n            os._exit(0 if block else 1)\n        pids.append(pid)\n"
        "    ok = all(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) == 0 for p in pids)\n    return 2 * x if ok else -1\n"),
    "disk spread over many files": (
        "def double(x):\n    try:\n        for i in range(1000):\n            open(f'f{i}', 'wb').write(b'x' * 2**20)\n"
        "    except OSError:\n        return -1\n    return 2 * x\n"),
    "infinite loop": attack("while True:\n    pass\n"),
    "infinite loop inside the call": "def double(x):\n    while True:\n        pass\n",
    "uninterruptible call": "def double(x):\n    return sum(range(10 ** 12)) * 0 + 2 * x\n",
    "infinite output": attack("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"),
    "sleep past the budget": attack("import time\ntime.sleep(60)\n"),
    "ignore the alarm": attack("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n") .replace(
        "return -1", "import time\n    time.sleep(60)\n    return 2 * x"),
    "kill everything": attack("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\n"),
    "delete, replace and link the output files": attack(
        "import os\nfor name in ('stdout.txt', 'stderr.txt', 'report'):\n    for make in (os.remove, os.mkfifo,\n"
        "                 lambda p: os.symlink('/etc/shadow', p)):\n        try:\n            make(name)\n        except OSError:\n"
        "            pass\nos.close(1)\nos.close(2)\n"),
    "nest directories past the recursion limit": attack(
        "import os\nfor i in range(1100):\n    try:\n        os.mkdir('d')\n        os.chdir('d')\n    except OSError:\n        break\n"),
    "sysv shared memory and queues": attack(
        "import ctypes\nlibc = ctypes.CDLL(None)\nfor i in range(8):\n    libc.shmget(0, 4096, 0o1666)\n"
        "    libc.msgget(0, 0o1666)\n    libc.semget(0, 1, 0o1666)\n"),
    "a new user namespace": (
        "import ctypes, os\ndef double(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    return 2 * x if libc.unshare(0x10000000) == 0 else -1\n"),
    "ptrace": (
        "import ctypes\ndef double(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    return 2 * x if libc.ptrace(0, 0, 0, 0) == 0 else -1\n"),
    "mount": (
        "import ctypes\ndef double(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    return 2 * x if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0 else -1\n"),
    "lock or watch the host's files": (
        "import ctypes, fcntl, os\ndef double(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    fd = os.open(os.__file__, os.O_RDONLY)\n    try:\n        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "        return 2 * x\n    except OSError:\n        pass\n    return 2 * x if libc.inotify_init() >= 0 else -1\n"),
    "a set of colliding hashes for the judge": (  # ints that all hash to 0 make set() quadratic in C
        "def double(x):\n    return [i * ((1 << 61) - 1) for i in range(1, 30001)] + [[]]\n"),
}


@pytest.mark.parametrize("name", RESOURCE_ATTACKS)
def test_attacks_on_the_sandbox_score_zero_within_the_wall_clock(name):
    started = time.perf_counter()
    assert score(RESOURCE_ATTACKS[name], memory_mb=256) == 0.0
    assert time.perf_counter() - started < WALL


@fully_isolated
def test_the_host_is_out_of_reach(tmp_path, shared_data):
    """The function answers right only if it could read, write or reach something of the host."""
    unix_path = tmp_path / "server.sock"
    servers = [socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX), socket.socket()]
    servers[0].bind(str(unix_path))
    servers[1].bind("\0rlreason-abstract-test")
    servers[2].bind(("127.0.0.1", 0))
    for server in servers:
        server.listen(1)
    port = servers[2].getsockname()[1]
    marker = f"rlreason-escape-{os.getpid()}"
    reads = [str(shared_data / "humaneval.jsonl"), str(ROOT / "README.md"), "/etc/passwd", "/etc/hostname",
             "/proc/cmdline", "/proc/kallsyms", "/proc/sysvipc/shm",
             f"/proc/{os.getpid()}/environ", "/sys/fs/cgroup", "/home", "/work", "/var", "/run"]
    probes = {
        "read": f"def double(x):\n    import os\n    for p in {reads!r}:\n        try:\n"
                "            os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read(1)\n            return 2 * x\n"
                "        except OSError:\n            pass\n    return -1\n",
        # (its own /dev/shm is private: what it writes there stays out of the host's, checked below)
        "write": f"def double(x):\n    try:\n        open('/dev/shm/{marker}', 'w').write('x')\n    except OSError:\n        pass\n"
                 f"    for p in ['/tmp/../{marker}', '/var/tmp/{marker}', '{tmp_path}/{marker}',\n"
                 f"              '/{marker}', '/usr/{marker}']:\n        try:\n            open(p, 'w').write('x')\n"
                 "            return 2 * x\n        except OSError:\n            pass\n    return -1\n",
        "connect": f"import socket\ndef double(x):\n    for family, address in ((socket.AF_UNIX, {str(unix_path)!r}),\n"
                   f"            (socket.AF_UNIX, '\\0rlreason-abstract-test'), (socket.AF_INET, ('127.0.0.1', {port}))):\n"
                   "        try:\n            socket.socket(family).connect(address)\n            return 2 * x\n"
                   "        except OSError:\n            pass\n    return -1\n",
        "see the host's processes": "import os\ndef double(x):\n    return 2 * x if len([p for p in os.listdir('/proc') if p.isdigit()]) > 2 else -1\n",
    }
    try:
        for name, program in probes.items():
            assert score(program) == 0.0, name
    finally:
        for server in servers:
            server.close()
    for path in ("/tmp", "/var/tmp", "/dev/shm", str(tmp_path), "/", "/usr"):
        assert not (Path(path) / marker).exists()


def test_the_parents_secrets_stay_out_of_reach(monkeypatch):
    monkeypatch.setenv("RLREASON_TEST_SECRET", "hunter2-do-not-leak")
    program = ("import os\nprint(dict(os.environ))\n"
               "for path in ('/proc/%d/environ' % os.getppid(), '/proc/1/environ', '/proc/self/environ'):\n"
               "    try:\n        print(open(path, 'rb').read())\n    except OSError as err:\n        print(err)\n")
    done = shared().run_main(program, "", Limits(wall_seconds=5))
    assert done.returncode == 0
    assert "hunter2" not in done.stdout + done.stderr


def test_a_judge_stuck_in_the_programs_data_scores_what_it_finished():
    """Ints that all hash to 0 keep a test's set() in C for seconds, past every alarm: the
    judge is stopped at its own CPU limit and the tests it did not finish fail (not a sandbox error)."""
    colliding = "def f(x):\n    return [i * ((1 << 61) - 1) for i in range(1, 40001)] + [[]]\n"
    started = time.perf_counter()
    with tally.collecting() as counts:
        assert code_accuracy([colliding], test_list=[["assert set(f(1)) == {1}"]], timeout=1.0) == [0.0]
    assert counts == {} and time.perf_counter() - started < WALL


def test_completions_that_are_slow_to_read_are_not():
    started = time.perf_counter()
    assert score("```" + " " * 200_000) == 0.0  # no fence: the whole text is the (broken) program
    assert score(RIGHT + "# \ud800 a lone surrogate\n") == 1.0
    assert time.perf_counter() - started < 3


def test_closing_stdout_still_scores_correctly():
    assert score("import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\n" + RIGHT) == 1.0


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


def test_rows_that_cannot_run_score_none_and_are_counted():
    with tally.collecting() as counts:
        scores = code_accuracy(["print(1)", "fn main() {}", "print(1)"], answer=["1", None, None],
                               language=["python", "rust", "python"],
                               tests=[None, json.dumps([{"input": "", "output": "1"}]), "not json"])
    assert scores == [None, None, None]
    assert counts == {"bad_rows": 2}


def test_a_failing_sandbox_scores_none_and_is_counted(monkeypatch):
    broken = shared()
    broken.judges.process.kill()
    broken.judges.process.wait()
    monkeypatch.setattr("rewards.code.shared", lambda: broken)  # the dead zygote, not a fresh one
    with tally.collecting() as counts:
        assert score(RIGHT) is None
    assert counts == {"sandbox_errors": 1}
    monkeypatch.undo()
    assert shared() is not broken and score(RIGHT) == 1.0  # the next call starts a new sandbox


@pytest.mark.parametrize("without", [("cgroups", "seccomp", "namespaces", "minimal_root"), ("namespaces",), ("root",)])
def test_without_isolation_layers_it_still_judges_and_warns(without, caplog):
    sandbox = Sandbox(without=without)
    try:
        assert [m.split(" ")[0].replace("minimal", "minimal_root") for m in sandbox.missing] == list(without)
        assert f"code sandbox without: {without[0]}" in caplog.text
        done = sandbox.run_main("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n", "1 2 3", Limits())
        assert (done.returncode, done.stdout) == (0, "6\n")
        spec = {"prelude": DOUBLE["prompt"], "tests": [DOUBLE["test"] + "check(double)\n"], "entry_point": "double",
                "test_seconds": BUDGET, "completion_seconds": BUDGET * 2}
        for program, passed in ((RIGHT, 1), (WRONG, 0), (VERDICT_ATTACKS["through gc"], 0),
                                (VERDICT_ATTACKS["always-equal result"], 0)):
            assert sandbox.run_calls(program, spec, Limits(wall_seconds=BUDGET * 2)).passed == passed
    finally:
        sandbox.close()


def test_score_command_runs_humaneval_rows_directly(shared_data, tmp_path):
    rows = [json.loads(line) for line in (shared_data / "humaneval.jsonl").read_text().splitlines()][:20]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({**r, "completion": r["canonical_solution"]}) for r in rows))
    done = subprocess.run([sys.executable, "-m", "cli", "rewards", "score", "code_accuracy", "--input", str(path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "code_accuracy: 20 rows, mean 1.0000, 0 not applicable, 0 errors" in done.stdout


CONCURRENT_SCORER = """
import json, sys
from rewards.code import code_accuracy
rows = [json.loads(line) for line in open(sys.argv[1])]
completions = json.loads(sys.argv[2])
columns = {k: [r[k] for r in rows] for k in ("prompt", "test", "entry_point")}
print(json.dumps(code_accuracy(completions, timeout=3.0, memory_mb=256, **columns)))
"""


def test_two_processes_scoring_at_once_do_not_change_each_others_scores(shared_data, tmp_path):
    rows = [json.loads(line) for line in (shared_data / "humaneval.jsonl").read_text().splitlines()][:12]
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    honest = [r["canonical_solution"] if i % 3 else "    return None\n" for i, r in enumerate(rows)]
    hostile = [RESOURCE_ATTACKS[name].replace("def double(x)", f"def {r['entry_point']}(*a)") for r, name in
               zip(rows, ["fork bomb", "memory spread over children", "sleep past the budget", "disk spread over many files"] * 3)]

    def scorer(completions):
        return subprocess.Popen([sys.executable, "-c", CONCURRENT_SCORER, str(data), json.dumps(completions)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)

    alone = json.loads(scorer(honest).communicate()[0])
    together = [scorer(honest), scorer(hostile)]
    honest_score, hostile_score = (json.loads(p.communicate()[0]) for p in together)
    assert honest_score == alone == [0.0 if i % 3 == 0 else 1.0 for i in range(len(rows))]
    assert hostile_score == [0.0] * len(rows)


@fully_isolated
def test_the_cgroups_of_a_killed_zygote_go_with_the_next_start():
    first = Sandbox()
    pid = first.candidates.process.pid
    assert list(Path("/sys/fs/cgroup").glob(f"*/**/rlreason-{pid}"))
    first.candidates.process.kill()
    first.candidates.process.wait()
    first.close()
    Sandbox().close()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/**/rlreason-{pid}"))


CHANNELS = {
    # page-cache state: one execution warms or probes a host file's pages (a read-only bind of the
    # standard library's), the next reads the signal
    "posix_fadvise": "import os\nfd = os.open(os.__file__, os.O_RDONLY)\nos.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)\n",
    "readahead": ("import ctypes, os\nfd = os.open(os.__file__, os.O_RDONLY)\n"
                  "assert ctypes.CDLL(None, use_errno=True).syscall(187, fd, 0, 4096) == 0\n"),
    "mincore": ("import ctypes, mmap, os\nf = open(os.__file__, 'rb')\nm = mmap.mmap(f.fileno(), 4096, access=mmap.ACCESS_COPY)\n"
                "address = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n"
                "assert ctypes.CDLL(None, use_errno=True).mincore(address, 4096, (ctypes.c_ubyte * 1)()) == 0\n"),
    "preadv2 with RWF_NOWAIT": "import os\nfd = os.open(os.__file__, os.O_RDONLY)\nos.preadv(fd, [bytearray(16)], 0, os.RWF_NOWAIT)\n",
    "a vsock socket (the host VM)": "import socket\nsocket.socket(40, socket.SOCK_STREAM)\n",
    "a netlink socket": "import socket\nsocket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)\n",
    "the host's cgroup path": "assert any(line.rsplit(':', 1)[1].strip() != '/' for line in open('/proc/self/cgroup'))\n",
    "installed packages": ("import os, sysconfig\npath = sysconfig.get_paths()['purelib']\n"
                           "assert os.path.isdir(path) and os.listdir(path)\n"),
}


@fully_isolated
@pytest.mark.parametrize("name", CHANNELS)
def test_side_channels_and_host_effects_are_closed(name):
    """Each probe answers right only if its channel works."""
    program = "def double(x):\n    try:\n" + "".join(f"        {line}\n" for line in CHANNELS[name].splitlines()) + \
              "    except Exception:\n        return -1\n    return 2 * x\n"
    assert score(program) == 0.0


def dirty_pages(path: Path) -> int:
    """Pages of ``path`` waiting to be written to its disk (the kernel's cachestat; we own the file)."""
    import ctypes

    fd = os.open(path, os.O_RDONLY)
    try:
        whole, stat = (ctypes.c_uint64 * 2)(0, 0), (ctypes.c_uint64 * 5)()
        if ctypes.CDLL(None, use_errno=True).syscall(451, fd, whole, stat, 0) != 0:
            pytest.skip("no cachestat on this kernel")
        return stat[1]
    finally:
        os.close(fd)


@fully_isolated
def test_durable_syncs_answer_done_without_reaching_the_host(tmp_path):
    """fsync, sync and syncfs succeed (an honest program that syncs its output keeps working) but
    are answered by the filter: a file the host left dirty on its disk is still dirty after an
    execution synced everything it could (executions write only tmpfs)."""
    host_file = tmp_path / "dirty.bin"
    host_file.write_bytes(os.urandom(1 << 20))
    if not dirty_pages(host_file):
        pytest.skip("the test's directory is not on a disk file system")
    program = ("import ctypes, os\ndef double(x):\n    fd = os.open(os.__file__, os.O_RDONLY)\n    os.fsync(fd)\n"
               "    os.fdatasync(fd)\n    os.sync()\n    if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:\n"
               "        return -1\n    with open('out.txt', 'w') as f:\n        f.write('x')\n"
               "        f.flush()\n        os.fsync(f.fileno())\n    return 2 * x\n")
    assert score(program) == 1.0
    assert dirty_pages(host_file) > 0
