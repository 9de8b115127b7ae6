"""math_accuracy and answers_equal on N seeded random (completion, gold) pairs and on every
pathological input we know of: exceptions, the slowest calls and the memory used, in one run.

    python benchmarks/math_fuzz.py [--pairs 100000] [--seed 0] [--out results.json]

Each random string is random text or a random run of LaTeX fragments (the test suite's alphabet,
``tests/test_math_fuzz.py``, whose hypothesis search is too slow for this many). The
pathological inputs (``pathological_pairs``) are the deep nestings, huge numbers, long runs of one
character and 10 MB answers that once raised, stalled or took seconds, each on the completion's
side and on the gold's. Reports how many calls raised (with the first few), the slowest calls of
each kind, the peak memory of the caller and of the verdict workers, and pairs per second. The
aim: no exception, no call over 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rewards.bounded import shared_pool  # noqa: E402
from rewards.math_answer import math_accuracy  # noqa: E402
from rewards.math_equivalence import answers_equal, warm_up  # noqa: E402
from tests.test_math_fuzz import FRAGMENTS  # noqa: E402

ALPHABET = "0123456789xyn+-*/^_=(){}[]<>,.;:!'% \\$&|~\n\t" + "abcdefghijklmnopqrstuvwxyz" + "πσ∞√≤≥…é中"
MEGABYTES = 10_000_000


def random_answer(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(31)))
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(81)))


def pathological_answers() -> dict[str, str]:
    """Inputs that once raised, stalled or took seconds (and their relatives), by name."""
    n = 4_990  # just inside the longest answer compared
    return {
        "boxes 1,000 deep": "\\boxed{" * 1_000 + "3" + "}" * 1_000,
        "boxes 5,000 deep": "\\boxed{" * 5_000 + "3" + "}" * 5_000,
        "brackets 1,000 deep": "(" * 1_000 + "3" + ")" * 1_000,
        "brackets 300 deep": "(" * 300 + "3" + ")" * 300,
        "fractions 400 deep": "\\frac{1}{" * 400 + "3" + "}" * 400,
        "unbalanced braces": "\\boxed{" + "{" * 5_000 + "}",
        "100,000 digits": "1" * 100_000,
        "4,990 digits": "1" * n,
        "spaces before %": "3" + " " * 20_000 + "%",
        "spaces before p": "3" + " " * 20_000 + "p",
        "spaces before % (4,990)": "3" + " " * n + "%",
        "10 MB of text": "x" * MEGABYTES,
        "10 MB answer": "\\boxed{" + "1+" * (MEGABYTES // 2) + "1}",
        "10 MB of digits": "7" * MEGABYTES,
        "200 kB of stars": "*" * 200_000,
        "200 kB of dollars": "$" * 200_000,
        "200 kB of spaces": " " * 200_000 + "1",
        "100,000 openers": "\\(" * 100_000,
        "tower of powers": "10^{10^{10^{10}}}",
        "sine of a power": "\\sin(10^{1999})",
        "polynomial of degree 100,000": "(x+1)^{100000}",
        "inequality of degree 50": "x^{50}-3x+1>0",
        "abs inequality": "|x^2-3|+|x-1| < 5",
        "trig inequality": "\\tan x > \\sin x",
        "sum of 10^9 sines": "\\sum_{k=1}^{10^{9}} \\sin k",
        "symbolic harmonic sum": "\\sum_{k=1}^{n} \\frac{1}{k}",
        "plus-minus chain of 40": " \\pm ".join(["1"] * 40),
        "plus-minus products": "(1\\pm 1)" * 12,
        "2,500 terms": "x+" * (n // 2) + "1",
        "1,600 e-notations": "3e8" * (n // 3),
        "1,000 square roots": "\\sqrt" * (n // 5) + "2",
        "800 mixed numbers": "1 1/2 " * (n // 6),
        "500 unions": "(1,2)\\cup" * (n // 10) + "(1,2)",
        "a set of 2,500": "\\{" + "1," * (n // 2) + "\\}",
        "a 2,500-column matrix": "\\begin{pmatrix}" + "1&" * (n // 2) + "\\end{pmatrix}",
        "350 sums": "\\sum_{k=0}^{n}" * (n // 14) + "k",
        "2,500 factorials": "3!" * (n // 2),
        "2,500 bars": "|x" * (n // 2),
        "chain of 2,500 equalities": "1=" * (n // 2) + "1",
        "80 square roots": ", ".join(f"\\sqrt{{{k}}}" for k in range(2, 82)),
        "60 quadratics": ", ".join(f"x^2+{k}x+{k + 1}" for k in range(1, 61)),
    }


def pathological_pairs() -> list[tuple[str, str, str]]:
    """(name, completion, gold): each input as the completion (boxed or as it is) and as the gold."""
    pairs = []
    for name, text in pathological_answers().items():
        boxed = text if text.startswith("\\boxed") or len(text) > 100_000 else f"\\boxed{{{text}}}"
        pairs += [(f"{name} / completion", boxed, "3"), (f"{name} / gold", "\\boxed{3}", text),
                  (f"{name} / both", boxed, text)]
    return pairs


def timed(completion: str, gold: str) -> tuple[float, float, str | None]:
    """Seconds of math_accuracy and of answers_equal on one pair, and the error either raised."""
    try:
        began = time.perf_counter()
        math_accuracy([completion], answer=[gold])
        middle = time.perf_counter()
        answers_equal(completion, gold)
        return middle - began, time.perf_counter() - middle, None
    except Exception as err:  # what this measures
        return 0.0, 0.0, f"{type(err).__name__}: {err}"[:300]


def worker_peak_mb() -> float:
    """The largest peak resident memory of any verdict worker: those replaced (waited for) and
    those still running (their high-water mark)."""
    peaks = [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]
    for worker in shared_pool(None, warm_up).workers:
        try:
            status = Path(f"/proc/{worker.process.pid}/status").read_text()
            peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")]
        except OSError:
            pass
    return max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng, errors, slowest = random.Random(args.seed), [], []
    started = time.perf_counter()
    for _ in range(args.pairs):
        completion, gold = random_answer(rng), random_answer(rng)
        reward_s, equal_s, error = timed(completion, gold)
        if error:
            errors.append({"completion": completion, "gold": gold, "error": error})
        slowest = sorted([*slowest, (max(reward_s, equal_s), completion, gold)], reverse=True)[:5]
    elapsed = time.perf_counter() - started
    pathological = []
    for name, completion, gold in pathological_pairs():
        reward_s, equal_s, error = timed(completion, gold)
        pathological.append({"input": name, "math_accuracy_s": round(reward_s, 4), "answers_equal_s": round(equal_s, 4),
                             "error": error})
    result = {
        "pairs": args.pairs, "seed": args.seed, "exceptions": len(errors), "first_exceptions": errors[:5],
        "slowest_seconds": [round(s, 4) for s, _, _ in slowest], "slowest_pairs": [[c[:200], g[:200]] for _, c, g in slowest],
        "pairs_per_second": args.pairs / elapsed,
        "pathological_inputs": len(pathological),
        "pathological_exceptions": sum(p["error"] is not None for p in pathological),
        "pathological_slowest": sorted(pathological, key=lambda p: -max(p["math_accuracy_s"], p["answers_equal_s"]))[:8],
        "peak_memory_mb": {"caller": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "workers": worker_peak_mb()},
    }
    worst = max([slowest[0][0]] + [max(p["math_accuracy_s"], p["answers_equal_s"]) for p in pathological])
    print(f"{args.pairs} random pairs and {len(pathological)} pathological: {len(errors)} + "
          f"{result['pathological_exceptions']} exceptions, slowest call {worst:.3f} s, {args.pairs / elapsed:.0f} pairs/s, "
          f"peak memory {result['peak_memory_mb']['caller']:.0f} MB (caller), {result['peak_memory_mb']['workers']:.0f} MB (workers)")
    for p in result["pathological_slowest"][:3]:
        print(f"  {p['input']}: {p['math_accuracy_s']} s / {p['answers_equal_s']} s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
