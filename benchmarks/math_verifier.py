"""rlreason's math_accuracy against Hugging Face Math-Verify, side by side in one run.

    python benchmarks/math_verifier.py [--data ../shared/data] [--out results.json]

Needs the bench extra (``pip install -e '.[bench]'``) for Math-Verify. For each row set it
reports the share of correct verdicts and rows/s of each verifier (one process each, the same
rows, the same order) and the speed ratio. Row sets:

- ``labelled``: benchmarks/math_cases.py, realistic completions in every answer category;
- ``math500`` / ``gsm8k``: each reference solution against its own answer (equal) and
  against the next problem's answer (unequal, unless the two answers are the same string).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.math_cases import rows as labelled_rows  # noqa: E402
from rewards.math_answer import math_accuracy  # noqa: E402


def solution_pairs(path: Path, solution: str, answer: str, gsm8k: bool) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    gold = (lambda r: r[answer].split("####")[-1].strip()) if gsm8k else (lambda r: r[answer])
    pairs = []
    for i, row in enumerate(rows):
        other = rows[(i + 1) % len(rows)]
        pairs.append({"completion": row[solution], "answer": gold(row), "expected": True})
        pairs.append({"completion": row[solution], "answer": gold(other),
                      "expected": gold(other).strip() == gold(row).strip()})
    return pairs


def run_rlreason(rows: list[dict]) -> list[bool]:
    scores = math_accuracy([r["completion"] for r in rows], answer=[r["answer"] for r in rows])
    return [s == 1.0 for s in scores]


def run_math_verify(rows: list[dict]) -> list[bool]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    verdicts = []
    for row in rows:
        try:
            gold = parse(f"${row['answer']}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()])
            predicted = parse(row["completion"])
            verdicts.append(bool(verify(gold, predicted)))
        except Exception:  # a verifier crash is a wrong verdict, not a crashed benchmark
            verdicts.append(False)
    return verdicts


def measure(name: str, fn, rows: list[dict]) -> dict:
    started = time.perf_counter()
    verdicts = fn(rows)
    elapsed = time.perf_counter() - started
    correct = sum(v == r["expected"] for v, r in zip(verdicts, rows))
    return {"verifier": name, "rows": len(rows), "correct": correct, "accuracy": correct / len(rows),
            "seconds": elapsed, "rows_per_s": len(rows) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sets = {"labelled": labelled_rows(),
            "math500": solution_pairs(args.data / "math500_test.jsonl", "solution", "answer", False),
            "gsm8k": solution_pairs(args.data / "gsm8k_test.jsonl", "answer", "answer", True)}
    results = []
    print(f"{'set':10} {'verifier':12} {'rows':>5} {'correct':>8} {'accuracy':>9} {'rows/s':>9}")
    for set_name, rows in sets.items():
        pair = [measure("rlreason", run_rlreason, rows), measure("math-verify", run_math_verify, rows)]
        for result in pair:
            result["set"] = set_name
            print(f"{set_name:10} {result['verifier']:12} {result['rows']:5d} {result['correct']:8d} "
                  f"{result['accuracy']:9.3f} {result['rows_per_s']:9.0f}")
        ratio = pair[0]["rows_per_s"] / pair[1]["rows_per_s"]
        print(f"{set_name:10} speed ratio rlreason / math-verify: {ratio:.1f}x")
        results += pair
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
