"""Sandboxed code_accuracy against a naive one-subprocess-per-program loop, in one run.

    python benchmarks/code_sandbox.py [--data ../shared/data] [--workers 2] [--repeat 3]
                                      [--out results.json] [--doc docs/code-sandbox.md]

Both execute the 164 HumanEval canonical programs (prompt + solution + test + check) on the
same interpreter (``sys.executable``), and, once each, MBPP's 974 reference solutions with
their setup code and challenge tests (the baseline runs code + setup + asserts as one script),
which also checks that honest programs score what they earn: every reference passes but those
whose tests expect an older CPython. Two row shapes only the sandbox takes are checked too:
MBPP-sanitized style (the task in prose in the ``prompt`` column) and stdin/stdout cases. The baseline runs each as
``subprocess.run([sys.executable, file], timeout=...)``, sequentially and without isolation;
rlreason scores them with ``code_accuracy`` through the whole sandbox (an isolated execution
serving the program's functions, a judge process running the tests) on ``workers`` parallel
executions. Each side runs ``--repeat`` times, alternating; the best rate of each is
reported with the ratio, and ``--doc`` writes the table with the commit and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import commit, machine  # noqa: E402
from rewards.code import code_accuracy  # noqa: E402
from rewards.sandbox.client import shared  # noqa: E402


def baseline(rows: list[dict]) -> tuple[float, int]:
    passed = 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, row in enumerate(rows):
            path = Path(tmp) / f"p{i}.py"
            path.write_text(row["prompt"] + row["canonical_solution"] + "\n" + row["test"]
                            + f"\ncheck({row['entry_point']})\n")
            paths.append(path)
        started = time.perf_counter()
        for path in paths:
            done = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=30)
            passed += done.returncode == 0
        return len(rows) / (time.perf_counter() - started), passed


def sandboxed(rows: list[dict], workers: int) -> tuple[float, int]:
    columns = {k: [r[k] for r in rows] for k in ("prompt", "test", "entry_point")}
    started = time.perf_counter()
    scores = code_accuracy([r["canonical_solution"] for r in rows], workers=workers, **columns)
    return len(rows) / (time.perf_counter() - started), sum(s == 1.0 for s in scores)


def mbpp_rows(data: Path) -> list[dict]:
    rows = [json.loads(line) for line in (data / "mbpp.jsonl").read_text().splitlines()]
    return [{**r, "tests": r["test_list"] + r["challenge_test_list"]} for r in rows]


def mbpp_baseline(rows: list[dict]) -> tuple[float, list[int]]:
    """Each reference, its setup code and its asserts as one script; the tasks whose script fails."""
    failing = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        for r in rows:
            path = Path(tmp) / f"t{r['task_id']}.py"
            path.write_text("\n".join([r["code"], r["test_setup_code"], *r["tests"]]) + "\n")
            try:
                done = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=30)
                ok = done.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if not ok:
                failing.append(r["task_id"])
        return len(rows) / (time.perf_counter() - started), failing


def mbpp_sandboxed(rows: list[dict], workers: int) -> tuple[float, list[int], int]:
    """The references' scores (tasks below 1.0), and how many rows ``return None`` passes."""
    columns = {"test_list": [r["tests"] for r in rows], "test_setup_code": [r["test_setup_code"] for r in rows]}
    started = time.perf_counter()
    scores = code_accuracy([r["code"] for r in rows], workers=workers, **columns)
    rate = len(rows) / (time.perf_counter() - started)
    nothing = code_accuracy(["def f(*args, **kwargs):\n    return None\n"] * len(rows), workers=workers, **columns)
    return rate, [r["task_id"] for r, s in zip(rows, scores) if s != 1.0], sum(s == 1.0 for s in nothing)


# rows of the shapes beside HumanEval/MBPP: a prose prompt (MBPP-sanitized), stdin/stdout (APPS,
# CodeContests), each with a right program (expected 1.0) and a wrong one (0.0)
SHAPES = [
    ("MBPP-sanitized: the task in prose", {"prompt": "Write a function to find the shared elements of two lists.",
                                          "test_list": ["assert set(similar([1, 2, 3], [2, 3, 4])) == {2, 3}"]},
     "```python\ndef similar(a, b):\n    return list(set(a) & set(b))\n```", "def similar(a, b):\n    return a\n"),
    ("stdin/stdout: sum of a list", {"tests": [{"input": "3\n1 2 3\n", "output": "6"}, {"input": "1\n-5\n", "output": "-5"}]},
     "input()\nprint(sum(map(int, input().split())))\n", "print(0)\n"),
    ("stdin/stdout: a decimal answer", {"tests": [{"input": "1 3\n", "output": "0.333333333"}, {"input": "2 7\n", "output": "0.285714286"}]},
     "a, b = map(int, input().split())\nprint(a / b)\n", "a, b = map(int, input().split())\nprint(round(a / b, 2))\n"),
    ("stdin/stdout: the threading idiom", {"tests": [{"input": "4\n", "output": "24"}, {"input": "1\n", "output": "1"}]},
     "import sys, threading\nsys.setrecursionlimit(10000)\ndef main():\n    import math\n    print(math.factorial(int(input())))\n"
     "threading.Thread(target=main).start()\n", "print(int(input()) + 1)\n"),
]


def shapes(workers: int) -> list[dict]:
    found = []
    for name, row, right, wrong in SHAPES:
        columns = {k: [v, v] for k, v in row.items()}
        scores = code_accuracy([right, wrong], workers=workers, **columns)
        found.append({"row": name, "right": scores[0], "wrong": scores[1]})
    return found


def runs(result: dict, key: str) -> str:
    return ", ".join(f"{rate:.1f}" for rate in result["all_runs"][key])


def document(result: dict) -> str:
    isolation = f"without {'; '.join(result['missing'])}" if result["missing"] else "every isolation layer"
    return f"""# Code sandbox throughput

Made by `python benchmarks/code_sandbox.py --doc docs/code-sandbox.md` (`make bench-code`) on
commit {result['commit']}, {result['machine']}, as {result['user']}.

HumanEval's {result['rows']} canonical programs, best of {result['repeat']} alternating runs of each side:

| runner | programs/s | passed |
|---|---|---|
| `subprocess.run([sys.executable, file])`, sequential, no isolation | {result['baseline_per_s']:.1f} | {result['baseline_passed']}/{result['rows']} |
| rlreason `code_accuracy`, {result['workers']} parallel executions, {isolation} | {result['sandbox_per_s']:.1f} | {result['passed']}/{result['rows']} |

Ratio **{result['ratio']:.2f}x** (every run, programs/s: baseline {runs(result, 'baseline_per_s')}; sandbox
{runs(result, 'sandbox_per_s')}). Every sandboxed program ran in its own execution (fresh
namespaces, cgroup, uid and `/tmp`, seccomp filter) forked from a warm zygote, its tests in a
judge process forked from a second one.

MBPP's {result['mbpp_rows']} reference solutions with their setup code and challenge tests, once each:

| runner | programs/s | passed | failing tasks |
|---|---|---|---|
| one script per task (code + setup + asserts), `subprocess.run` | {result['mbpp_baseline_per_s']:.1f} | {result['mbpp_rows'] - len(result['mbpp_baseline_failing'])} | {', '.join(map(str, result['mbpp_baseline_failing'])) or 'none'} |
| rlreason `code_accuracy` | {result['mbpp_sandbox_per_s']:.1f} | {result['mbpp_rows'] - len(result['mbpp_failing'])} | {', '.join(map(str, result['mbpp_failing'])) or 'none'} |

A program that returns None passes {result['mbpp_none_passed']} of them. Tasks 596 and 642 expect
what CPython did before 3.8 (`sys.getsizeof` of a tuple; the order of a set of tuples), so their
references fail on this interpreter either way ([code-rewards.md](code-rewards.md)).

Other row shapes, a right and a wrong program each:

| row | right | wrong |
|---|---|---|
{chr(10).join(f"| {r['row']} | {r['right']:.2f} | {r['wrong']:.2f} |" for r in result['shapes'])}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.data / "humaneval.jsonl").read_text().splitlines()]
    shared()  # the zygotes start once per process, before any timing
    base, box = [], []
    for _ in range(args.repeat):
        base.append(baseline(rows))
        box.append(sandboxed(rows, args.workers))
    (base_rate, base_passed), (box_rate, box_passed) = max(base), max(box)
    mbpp = mbpp_rows(args.data)
    mbpp_base_rate, mbpp_base_failing = mbpp_baseline(mbpp)
    mbpp_rate, mbpp_failing, none_passed = mbpp_sandboxed(mbpp, args.workers)
    result = {"baseline_per_s": base_rate, "baseline_passed": base_passed, "sandbox_per_s": box_rate,
              "passed": box_passed, "ratio": box_rate / base_rate, "workers": args.workers, "rows": len(rows),
              "repeat": args.repeat, "missing": shared().missing, "commit": commit(), "machine": machine(),
              "user": "root" if os.geteuid() == 0 else "an unprivileged user",
              "all_runs": {"baseline_per_s": [r for r, _ in base], "sandbox_per_s": [r for r, _ in box]},
              "mbpp_rows": len(mbpp), "mbpp_baseline_per_s": mbpp_base_rate, "mbpp_baseline_failing": mbpp_base_failing,
              "mbpp_sandbox_per_s": mbpp_rate, "mbpp_failing": mbpp_failing, "mbpp_none_passed": none_passed,
              "shapes": shapes(args.workers)}
    print(f"{'runner':34} {'programs/s':>10} {'passed':>7}")
    print(f"{'plain subprocess, sequential':34} {base_rate:10.1f} {base_passed:4d}/{len(rows)}")
    print(f"{f'rlreason sandbox, {args.workers} executions':34} {box_rate:10.1f} {box_passed:4d}/{len(rows)}")
    print(f"ratio rlreason / baseline: {result['ratio']:.2f}x; sandbox missing: {result['missing'] or 'nothing'}")
    print(f"MBPP references: baseline fails {mbpp_base_failing}, sandbox fails {mbpp_failing}; return None passes {none_passed}")
    for shape in result["shapes"]:
        print(f"{shape['row']}: right {shape['right']:.2f}, wrong {shape['wrong']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(result))


if __name__ == "__main__":
    main()
