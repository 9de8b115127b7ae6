"""Per-token cost of the hf backend's seeded sampling step: one multinomial per prompt group
(the former sampler) against one inverse-CDF draw over all rows (``inverse_cdf_sample``).

    python benchmarks/hf_sampler.py [--rows 64] [--group-size 8] [--out results.json] [--doc docs/hf-sampler.md]

Both take the same (rows, vocabulary) probabilities (a softmax of random logits) and draw one
token per row, each group from its own seed; timed as the median of ``--repeats`` calls, at the
demo's vocabulary (99 rows of the character tokenizer) and at Qwen's (151,936).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.provenance import commit, machine  # noqa: E402
from rlreason.rollout.hf import inverse_cdf_sample  # noqa: E402

VOCABULARIES = {"demo (99)": 99, "Qwen (151,936)": 151_936}


def per_group_multinomial(probs: torch.Tensor, generators: list[torch.Generator], group_size: int) -> torch.Tensor:
    """The former sampler: one ``torch.multinomial`` call per group, each with its generator."""
    return torch.cat([torch.multinomial(group, 1, generator=generator)
                      for group, generator in zip(probs.split(group_size), generators)])


def median_ms(draw, repeats: int) -> float:
    draw()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        draw()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def measure(rows: int, group_size: int, vocabulary: int, repeats: int) -> dict:
    probs = torch.softmax(torch.randn(rows, vocabulary, generator=torch.Generator().manual_seed(0)), dim=-1)
    generators = [torch.Generator().manual_seed(seed) for seed in range(rows // group_size)]
    uniforms = torch.rand(rows, generator=torch.Generator().manual_seed(1))
    multinomial = median_ms(lambda: per_group_multinomial(probs, generators, group_size), repeats)
    inverse_cdf = median_ms(lambda: inverse_cdf_sample(probs, uniforms), repeats)
    return {"vocabulary": vocabulary, "per_group_multinomial_ms": multinomial, "inverse_cdf_ms": inverse_cdf,
            "speedup": multinomial / inverse_cdf}


def table(results: list[dict], rows: int, group_size: int) -> str:
    lines = [f"Sampling one token for {rows} rows ({rows // group_size} groups of {group_size}), median "
             "milliseconds per step.", "",
             "| vocabulary | per-group multinomial | inverse CDF (all rows) | speed-up |", "|---|---|---|---|"]
    for name, r in results:
        lines.append(f"| {name} | {r['per_group_multinomial_ms']:.3f} ms | {r['inverse_cdf_ms']:.3f} ms | "
                     f"{r['speedup']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()
    results = [(name, measure(args.rows, args.group_size, v, args.repeats)) for name, v in VOCABULARIES.items()]
    text = table(results, args.rows, args.group_size)
    print(text)
    provenance = {"commit": commit(), "machine": machine(), "torch": torch.__version__,
                  "threads": torch.get_num_threads()}
    if args.out:
        args.out.write_text(json.dumps({**provenance, "results": dict(results)}, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(
            "# hf backend: the sampling step\n\n"
            "Produced by `python benchmarks/hf_sampler.py --doc docs/hf-sampler.md` "
            f"(commit {provenance['commit']}; {provenance['machine']}; torch {provenance['torch']}, "
            f"{provenance['threads']} threads).\n\n" + text + "\n")


if __name__ == "__main__":
    main()
