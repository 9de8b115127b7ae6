"""math_accuracy and answers_equal on N seeded random (completion, gold) pairs: exceptions and
slowest calls, in one run.

    python benchmarks/math_fuzz.py [--pairs 100000] [--seed 0] [--out results.json]

Each string is random text or a random run of LaTeX fragments (the test suite's alphabet,
``tests/test_math_fuzz.py``, whose hypothesis search is too slow for this many). Reports how
many calls raised (with the first few), the slowest calls, and pairs per second.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rewards.math_answer import math_accuracy  # noqa: E402
from rewards.math_equivalence import answers_equal  # noqa: E402
from tests.test_math_fuzz import FRAGMENTS  # noqa: E402

ALPHABET = "0123456789xyn+-*/^_=(){}[]<>,.;:!'% \\$&|~\n\t" + "abcdefghijklmnopqrstuvwxyz" + "πσ∞√≤≥…é中"


def random_answer(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(31)))
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(81)))


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
        began = time.perf_counter()
        try:
            math_accuracy([completion], answer=[gold])
            answers_equal(completion, gold)
        except Exception as err:  # what this measures
            errors.append({"completion": completion, "gold": gold, "error": f"{type(err).__name__}: {err}"})
        slowest = sorted([*slowest, (time.perf_counter() - began, completion, gold)], reverse=True)[:5]
    elapsed = time.perf_counter() - started
    result = {"pairs": args.pairs, "seed": args.seed, "exceptions": len(errors), "first_exceptions": errors[:5],
              "slowest_seconds": [round(s, 4) for s, _, _ in slowest],
              "slowest_pairs": [[c, g] for _, c, g in slowest], "pairs_per_second": args.pairs / elapsed}
    print(f"{args.pairs} pairs, {len(errors)} exceptions, slowest {slowest[0][0]:.3f} s, "
          f"{args.pairs / elapsed:.0f} pairs/s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
