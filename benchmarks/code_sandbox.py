"""Sandboxed code_accuracy against a plain one-subprocess-per-program baseline, in one run.

    python benchmarks/code_sandbox.py [--data ../shared/data] [--workers 2] [--out results.json]

Both execute the 164 HumanEval canonical programs (prompt + solution + test + check). The
baseline runs each as ``python program.py`` sequentially, without any isolation; rlreason runs
them through the full sandbox (namespaces where available, limits, harness) on ``workers``
slots. Reports programs/s of each, how many passed, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.code import code_accuracy  # noqa: E402
from rewards.sandbox import namespaces_available  # noqa: E402


def baseline(rows: list[dict]) -> tuple[float, int]:
    passed = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(rows):
            path = Path(tmp) / f"p{i}.py"
            path.write_text(row["prompt"] + row["canonical_solution"] + "\n" + row["test"]
                            + f"\ncheck({row['entry_point']})\n")
            done = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=30)
            passed += done.returncode == 0
    return len(rows) / (time.perf_counter() - started), passed


def sandboxed(rows: list[dict], workers: int) -> tuple[float, int]:
    columns = {k: [r[k] for r in rows] for k in ("prompt", "test", "entry_point")}
    started = time.perf_counter()
    scores = code_accuracy([r["canonical_solution"] for r in rows], workers=workers, **columns)
    return len(rows) / (time.perf_counter() - started), sum(s == 1.0 for s in scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.data / "humaneval.jsonl").read_text().splitlines()]
    base_rate, base_passed = baseline(rows)
    box_rate, box_passed = sandboxed(rows, args.workers)
    isolation = "namespaces + limits" if namespaces_available() else "limits only (no namespaces)"
    print(f"{'runner':34} {'programs/s':>10} {'passed':>7}")
    print(f"{'plain subprocess, sequential':34} {base_rate:10.1f} {base_passed:4d}/{len(rows)}")
    print(f"{f'rlreason sandbox, {args.workers} slots':34} {box_rate:10.1f} {box_passed:4d}/{len(rows)}   ({isolation})")
    print(f"ratio rlreason / baseline: {box_rate / base_rate:.1f}x")
    if args.out:
        args.out.write_text(json.dumps({"baseline_per_s": base_rate, "sandbox_per_s": box_rate,
                                        "ratio": box_rate / base_rate, "workers": args.workers,
                                        "isolation": isolation, "passed": box_passed}, indent=2))


if __name__ == "__main__":
    main()
