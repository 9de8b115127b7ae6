"""Sandboxed code_accuracy against a naive one-subprocess-per-program loop, in one run.

    python benchmarks/code_sandbox.py [--data ../shared/data] [--workers 2] [--repeat 3]
                                      [--out results.json] [--doc docs/code-sandbox.md]

Both execute the 164 HumanEval canonical programs (prompt + solution + test + check) on the
same interpreter (``sys.executable``). The baseline runs each as
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
    result = {"baseline_per_s": base_rate, "baseline_passed": base_passed, "sandbox_per_s": box_rate,
              "passed": box_passed, "ratio": box_rate / base_rate, "workers": args.workers, "rows": len(rows),
              "repeat": args.repeat, "missing": shared().missing, "commit": commit(), "machine": machine(),
              "user": "root" if os.geteuid() == 0 else "an unprivileged user",
              "all_runs": {"baseline_per_s": [r for r, _ in base], "sandbox_per_s": [r for r, _ in box]}}
    print(f"{'runner':34} {'programs/s':>10} {'passed':>7}")
    print(f"{'plain subprocess, sequential':34} {base_rate:10.1f} {base_passed:4d}/{len(rows)}")
    print(f"{f'rlreason sandbox, {args.workers} executions':34} {box_rate:10.1f} {box_passed:4d}/{len(rows)}")
    print(f"ratio rlreason / baseline: {result['ratio']:.2f}x; sandbox missing: {result['missing'] or 'nothing'}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(result))


if __name__ == "__main__":
    main()
