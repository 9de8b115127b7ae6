"""Code rewards: run model-written programs against tests in the sandbox.

- ``code_accuracy``: fraction of a row's tests passed; ``code_pass``: 1.0 only if all pass.
- The program is the last fenced code block of the completion (```python ... ```), or the
  whole completion when there is none. With a ``prompt`` column (HumanEval), the prompt is
  put in front, so a completion may be just the function body.
- Test styles, chosen per row by its columns:
  (a) assert style: ``test`` (defining ``check(candidate)``) + ``entry_point`` (HumanEval), or
      ``test_list`` (MBPP: one assert per test);
  (b) stdin/stdout: ``tests`` = [{"input": ..., "output": ...}], compared line by line with
      surrounding whitespace ignored (Codeforces/APPS/LiveCodeBench).
- Rows without tests score None. Rows score in parallel, one sandbox slot per worker thread.

Reward hacking the harness cannot reach: ``sys.exit(0)`` before the tests (the program must
load and the harness must report with a per-run secret), replacing ``check`` (tests run
after the program), patching builtins or modules (restored before each test).
"""

from __future__ import annotations

import json
import math
import queue
import re
import secrets
import time
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor

from rewards.registry import reward
from rewards.sandbox import Limits, run

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.S)

HARNESS = r'''
import builtins, os, signal, sys, types


class TestTimeout(BaseException):
    pass


def on_alarm(signum, frame):
    raise TestTimeout()


def snapshot():
    return {name: (module, dict(vars(module))) for name, module in list(sys.modules.items())
            if isinstance(module, types.ModuleType)}


def restore(saved):
    for name, (module, attrs) in saved.items():
        current = vars(module)
        for key in [k for k in current if k not in attrs]:
            del current[key]
        current.update(attrs)
        sys.modules[name] = module


def main():
    secret_fd, report_fd = int(os.environ.pop("RLREASON_SECRET_FD")), int(os.environ.pop("RLREASON_REPORT_FD"))
    secret = os.read(secret_fd, 256).decode()
    os.close(secret_fd)
    with open("tests.py") as f:
        test_seconds, tests = eval(f.read(), {"__builtins__": {}})  # written by the parent
    with open("program.py") as f:
        program = f.read()
    saved, passed = snapshot(), 0
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    signal.signal(signal.SIGALRM, on_alarm)
    try:  # loading the program gets one test's budget too
        signal.setitimer(signal.ITIMER_REAL, test_seconds)
        exec(compile(program, "program.py", "exec"), namespace)
        signal.setitimer(signal.ITIMER_REAL, 0)
        loaded = True
    except BaseException:
        signal.setitimer(signal.ITIMER_REAL, 0)
        loaded = False
    restore(saved)
    for test in tests if loaded else []:
        try:  # each test has its own budget; this process is the sandbox's, so a timer is safe
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, test_seconds)
            exec(compile(test, "test.py", "exec"), dict(namespace))
            signal.setitimer(signal.ITIMER_REAL, 0)
            passed += 1
        except BaseException:
            signal.setitimer(signal.ITIMER_REAL, 0)
        restore(saved)
    os.write(report_fd, f"{secret} {passed} {len(tests)}".encode())


main()
'''


def extract_code(completion: str) -> str:
    """The last fenced code block, else the whole completion.

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1\\n'
    >>> extract_code("    return x + 1")
    '    return x + 1'
    """
    blocks = _FENCE.findall(completion)
    return blocks[-1][1] if blocks else completion


def assemble(code: str, prompt: str | None, entry_point: str | None) -> str:
    """Prompt (if any) + code: a body completes the prompt's function, a full def replaces it."""
    if not prompt:
        return code
    return prompt + ("\n" if entry_point and re.search(rf"^def {re.escape(entry_point)}\b", code, re.M) else "") + code


def run_asserts(program: str, tests: list[str], budget: Budget, slot: int) -> float:
    """One execution: load the program once, then each test under its own time budget."""
    secret = secrets.token_hex(16)
    files = {"program.py": program, "tests.py": repr((budget.test_seconds, [str(t) for t in tests])),
             "harness.py": HARNESS}
    # the wall clock backs the in-sandbox timers up: loading plus each test, within the total
    wall = min(budget.completion_seconds, budget.test_seconds * (len(tests) + 1)) + 0.5
    done = run(files, ["harness.py"], limits=budget.limits(wall), slot=slot, secret=secret.encode())
    fields = done.report.split()
    # no report (crashed, exited early, killed) or a forged one: nothing passed
    if len(fields) != 3 or fields[0] != secret or fields[2] != str(len(tests)) or not fields[1].isdigit():
        return 0.0
    return min(int(fields[1]), len(tests)) / len(tests)


def run_io(program: str, cases: list[dict], budget: Budget, slot: int) -> float:
    """One execution per case, each within the test budget and all within the completion's."""
    passed, deadline = 0, time.monotonic() + budget.completion_seconds
    for case in cases:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break  # the completion's budget is spent: the remaining cases fail
        done = run({"program.py": program}, ["program.py"], stdin=str(case["input"]),
                   limits=budget.limits(min(budget.test_seconds, remaining)), slot=slot)
        passed += done.returncode == 0 and same_output(done.stdout, str(case["output"]))
    return passed / len(cases)


def same_output(got: str, expected: str) -> bool:
    """Equal line by line, ignoring trailing spaces and blank lines at the ends."""
    clean = lambda text: [line.rstrip() for line in text.strip().splitlines()]
    return clean(got) == clean(expected)


@dataclass(frozen=True)
class Budget:
    test_seconds: float  # wall clock for one test (one stdin/stdout case, or one assert test)
    completion_seconds: float  # wall clock for all tests of one completion together
    memory_mb: int

    def limits(self, wall: float) -> Limits:
        return Limits(wall_seconds=wall, cpu_seconds=max(1, math.ceil(wall)), memory_bytes=self.memory_mb << 20)


def score_row(completion: str, row: dict, budget: Budget, slot: int) -> float | None:
    language = (row.get("language") or "python").lower()
    if language != "python":
        raise ValueError(f"code rewards run Python only; row has language {language!r}")
    code = extract_code(completion)
    if row.get("test") and row.get("entry_point"):
        program = assemble(code, row.get("prompt"), row["entry_point"])
        return run_asserts(program, [f"{row['test']}\ncheck({row['entry_point']})\n"], budget, slot)
    if row.get("test_list"):
        return run_asserts(assemble(code, row.get("prompt"), None), list(row["test_list"]), budget, slot)
    if row.get("tests"):
        cases = json.loads(row["tests"]) if isinstance(row["tests"], str) else row["tests"]
        return run_io(code, cases, budget, slot)
    return None


def score_all(completions: list[str], columns: dict, budget: Budget, workers: int) -> list[float | None]:
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(completions))]
    slots: queue.Queue = queue.Queue()
    for k in range(workers):
        slots.put(k)

    def task(i: int):
        slot = slots.get()
        try:
            return score_row(completions[i], rows[i], budget, slot)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(task, range(len(completions))))


@reward("code_accuracy")
def code_accuracy(completions: list[str], timeout: float = 10.0, completion_timeout: float = 30.0,
                  memory_mb: int = 1024, workers: int = 2, **columns) -> list[float | None]:
    """Fraction of the row's tests the completion's program passes (sandboxed).

    ``timeout``: wall seconds per test; ``completion_timeout``: wall seconds for all tests of
    one completion; ``memory_mb``: address-space limit; ``workers``: parallel sandboxes.
    """
    return score_all(completions, columns, Budget(timeout, completion_timeout, memory_mb), workers)


@reward("code_pass")
def code_pass(completions: list[str], timeout: float = 10.0, completion_timeout: float = 30.0,
              memory_mb: int = 1024, workers: int = 2, **columns) -> list[float | None]:
    """1.0 when the completion's program passes every test of its row, else 0.0 (sandboxed)."""
    scores = score_all(completions, columns, Budget(timeout, completion_timeout, memory_mb), workers)
    return [None if s is None else float(s == 1.0) for s in scores]
