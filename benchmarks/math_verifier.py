"""rlreason's math_accuracy against Hugging Face Math-Verify, side by side in one run.

    python benchmarks/math_verifier.py [--data ../shared/data] [--out results.json] [--doc docs/math-verifier.md]

Needs the bench extra (``pip install -e '.[bench]'``) for Math-Verify. For each row set, each
verifier runs in a process of its own (fresh interpreter, a few warm-up rows untimed, then every
row of the set in the same order, repeated until a second has passed) and reports its verdicts' agreement with the labels and rows/s;
the table gives the speed ratio. Row sets:

- ``labelled``: benchmarks/math_cases.py, realistic completions in every answer category;
- ``math500`` / ``gsm8k``: each reference solution against its own answer (equal) and
  against the next problem's answer (unequal, unless the two answers are the same string);
- the peers' own suites in ``peer_math/`` (Math-Verify's tests, MARIO_EVAL's as ``\\boxed{pred}``,
  MATH's ``is_equiv`` tests, verl's), each case fed as a completion and its ``answer`` column;
- the attack sets of benchmarks/math_attack_cases.jsonl (``attack-1`` ...), completions independent
  testers wrote against math_accuracy as a black box, labelled as a strict grader would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import commit, machine  # noqa: E402

VERIFIERS = ("rlreason", "math-verify")
PEER_SUITES = ("mathverify_suite", "mario_eval_suite", "hendrycks_math_suite", "verl_math_suite")
WARM_UP = 5
MIN_SECONDS = 1.0


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


def peer_rows(data: Path, suite: str) -> list[dict]:
    rows = [json.loads(line) for line in (data / "peer_math" / f"{suite}.jsonl").read_text().splitlines()]
    boxed = suite == "mario_eval_suite"
    return [{"completion": f"\\boxed{{{r['completion']}}}" if boxed else r["completion"], "answer": r["answer"],
             "expected": bool(r["expected"])} for r in rows]


def attack_sets() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "benchmarks" / "math_attack_cases.jsonl").read_text().splitlines()]
    return sorted({row["set"] for row in rows})


def attack_rows(name: str) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / "benchmarks" / "math_attack_cases.jsonl").read_text().splitlines()]
    return [{"completion": r["completion"], "answer": r["answer"], "expected": r["expected"]} for r in rows
            if r["set"] == name]


def row_set(name: str, data: Path) -> list[dict]:
    if name == "labelled":
        from benchmarks.math_cases import rows
        return rows()
    if name == "math500":
        return solution_pairs(data / "math500_test.jsonl", "solution", "answer", False)
    if name == "gsm8k":
        return solution_pairs(data / "gsm8k_test.jsonl", "answer", "answer", True)
    if name.startswith("attack-"):
        return attack_rows(name)
    return peer_rows(data, name)


def run_rlreason(rows: list[dict]) -> list[bool]:
    from rewards.math_answer import math_accuracy

    scores = math_accuracy([r["completion"] for r in rows], answer=[r["answer"] for r in rows])
    return [s == 1.0 for s in scores]


def run_math_verify(rows: list[dict]) -> list[bool]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    verdicts = []
    for row in rows:
        answer = str(row["answer"])
        gold_text = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
        try:
            gold = parse(gold_text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()])
            predicted = parse(row["completion"])
            verdicts.append(bool(verify(gold, predicted)))
        except Exception:  # a verifier crash is a wrong verdict, not a crashed benchmark
            verdicts.append(False)
    return verdicts


def measure(verifier: str, set_name: str, data: Path) -> dict:
    """Runs in its own process (``--measure``): warm up, then run the whole set, repeated until
    ``MIN_SECONDS`` have passed so that a set of a few rows still gives a steady rate."""
    rows = row_set(set_name, data)
    run = run_rlreason if verifier == "rlreason" else run_math_verify
    run(rows[:WARM_UP])  # imports, caches and worker pools start before the clock
    started, repeats = time.perf_counter(), 0
    while True:
        verdicts = run(rows)
        repeats += 1
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            break
    correct = sum(v == r["expected"] for v, r in zip(verdicts, rows))
    return {"verifier": verifier, "set": set_name, "rows": len(rows), "correct": correct,
            "accuracy": correct / len(rows), "seconds": elapsed / repeats, "repeats": repeats,
            "rows_per_s": len(rows) * repeats / elapsed}


def in_own_process(verifier: str, set_name: str, data: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", verifier, set_name, "--data", str(data)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def document(results: list[dict], sets: list[str]) -> str:
    lines = ["# math_accuracy against Math-Verify", "",
             "Made by `python benchmarks/math_verifier.py --doc docs/math-verifier.md` (`make bench-math`) on",
             f"commit {results[0]['commit']}, {results[0]['machine']}. Hugging Face Math-Verify 0.9.0 with its",
             "default `parse`/`verify` (gold read as LaTeX and expression); each verifier in its own process, a few",
             "warm-up rows untimed, then every row of the set in one call (rlreason) or one loop (Math-Verify),",
             f"the set repeated until {MIN_SECONDS:.0f} s had passed.", "",
             "| rows | rlreason agrees | Math-Verify agrees | rlreason rows/s | Math-Verify rows/s | speed |",
             "|---|---|---|---|---|---|"]
    for name in sets:
        ours, theirs = (next(r for r in results if r["set"] == name and r["verifier"] == v) for v in VERIFIERS)
        lines.append(f"| {name} ({ours['rows']}) | {ours['correct']} ({ours['accuracy']:.1%}) | "
                     f"{theirs['correct']} ({theirs['accuracy']:.1%}) | {ours['rows_per_s']:,.0f} | "
                     f"{theirs['rows_per_s']:,.0f} | {ours['rows_per_s'] / theirs['rows_per_s']:.1f}x |")
    total = {v: sum(r["rows"] for r in results if r["verifier"] == v) / sum(r["seconds"] for r in results
             if r["verifier"] == v) for v in VERIFIERS}
    lines += ["", f"Over all rows: rlreason {total['rlreason']:,.0f} rows/s, Math-Verify {total['math-verify']:,.0f} "
              f"rows/s, **{total['rlreason'] / total['math-verify']:.1f}x**.", "",
              "`labelled` is benchmarks/math_cases.py; MATH-500/GSM8K pair each reference solution with its own",
              "answer and the next problem's. The peer suites' labels are their authors' (for Math-Verify's, under",
              "the settings each test used); the cases where math_accuracy differs on purpose, with reasons, are",
              "the table in tests/test_math_peer_suites.py. The attack sets (benchmarks/math_attack_cases.jsonl)",
              "are completions independent testers wrote against math_accuracy as a black box, labelled as a",
              "strict grader would; attack-3 to attack-7 are long reasoning-model output in the families of issue 35.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None)
    parser.add_argument("--measure", nargs=2, metavar=("VERIFIER", "SET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.data)))
        return
    sets = ["labelled", "math500", "gsm8k", *PEER_SUITES, *attack_sets()]
    results, provenance = [], {"commit": commit(), "machine": machine()}
    print(f"{'set':22} {'verifier':12} {'rows':>5} {'correct':>8} {'accuracy':>9} {'rows/s':>9}")
    for set_name in sets:
        pair = [{**in_own_process(v, set_name, args.data), **provenance} for v in VERIFIERS]
        for r in pair:
            print(f"{set_name:22} {r['verifier']:12} {r['rows']:5d} {r['correct']:8d} {r['accuracy']:9.3f} "
                  f"{r['rows_per_s']:9.0f}")
        print(f"{set_name:22} speed ratio rlreason / math-verify: {pair[0]['rows_per_s'] / pair[1]['rows_per_s']:.1f}x")
        results += pair
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(results, sets))


if __name__ == "__main__":
    main()
