"""Training forward + backward with logits for every position, against logits only from the first
completion target on (``policy_forward``'s ``logits_to_keep``), against the completion tokens'
logits only, ``CHUNK`` at a time (``trainer.logits_chunk_tokens``), at real vocabulary sizes.

    python benchmarks/completion_logits.py [--rows 16] [--doc docs/completion-logits.md] [--out results.json]

A random-init Qwen3-MoE (hidden 256, 2 layers, 8 experts, top-2) with its vocabulary at 32,000
and 151,936 rows; GSM8K-like shapes: prompts of 80-200 tokens, completions long-tailed from 16 to
256 tokens (the same seeded draw for both variants). Each (vocabulary, variant) runs in its own
process, so its peak resident memory is its own; reported: median seconds of a forward and
backward of the policy loss's logprob sum over ``--repeats`` calls, and the peak RSS growth over
the process after the model was built.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.provenance import commit, machine, measured_apart, write_outputs  # noqa: E402
from rlreason.logprobs import token_logprobs_and_entropy  # noqa: E402
from rlreason.recipe import TinyModelConfig  # noqa: E402
from rlreason.sequences import TokenBatch, policy_forward, right_padded  # noqa: E402
from rlreason.tiny import build_char_tokenizer, build_tiny_moe  # noqa: E402

VOCABULARIES = (32_000, 151_936)
MODEL = TinyModelConfig(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, num_experts=8,
                        experts_per_token=2, expert_intermediate_size=256, max_position_embeddings=1024)


def full_logits_forward(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """What the trainer computed before: logits at every position, then each next token's logprob."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return token_logprobs_and_entropy(logits[:, :-1], batch.input_ids[:, 1:], with_entropy=True)[0]


def completion_logits_forward(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    return policy_forward(model, batch, with_entropy=True).logprobs


CHUNK = 1024


def chunked_logits_forward(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    return policy_forward(model, batch, with_entropy=True, logits_chunk_tokens=CHUNK).logprobs


VARIANTS = {"every position": full_logits_forward, "completion only": completion_logits_forward,
            f"completion tokens, {CHUNK} at a time": chunked_logits_forward}


def batch_of(rows: int, vocabulary: int) -> TokenBatch:
    rng = random.Random(0)
    prompts = [[rng.randrange(3, vocabulary) for _ in range(rng.randint(80, 200))] for _ in range(rows)]
    lengths = [min(256, max(16, int(rng.lognormvariate(4.0, 0.8)))) for _ in range(rows)]  # median ~55
    completions = [[rng.randrange(3, vocabulary) for _ in range(n)] for n in lengths]
    return right_padded(prompts, completions, pad_id=0)


def measure_one(vocabulary: int, variant: str, rows: int, repeats: int) -> dict:
    """In this process: build the model, time forward + backward, report peak RSS growth."""
    torch.manual_seed(0)
    model = build_tiny_moe(MODEL, build_char_tokenizer())
    model.resize_token_embeddings(vocabulary)
    batch = batch_of(rows, vocabulary)
    forward = VARIANTS[variant]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        started = time.perf_counter()
        (forward(model, batch) * batch.completion_mask).sum().backward()
        times.append(time.perf_counter() - started)
        model.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mask = batch.completion_mask
    return {"vocabulary": vocabulary, "variant": variant, "seconds": statistics.median(times[1:]),
            "peak_rss_growth_mb": (peak - before) / 1024, "sequences": rows, "width": batch.input_ids.shape[1],
            "completion_tokens": int(mask.sum()), "first_completion_target": int(mask.any(0).nonzero()[0])}


def table(results: list[dict]) -> str:
    lines = ["| vocabulary | logits at | forward + backward | peak RSS growth |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['vocabulary']:,} | {r['variant']} | {r['seconds']:.2f} s | "
                     f"{r['peak_rss_growth_mb']:,.0f} MB |")
    for vocabulary in VOCABULARIES:
        full, kept, chunked = (next(r for r in results if r["vocabulary"] == vocabulary and r["variant"] == v)
                               for v in VARIANTS)
        lines.append(f"\nAt {vocabulary:,} rows, against logits at every position: completion-only logits take "
                     f"{kept['seconds'] / full['seconds']:.2f}x the time and "
                     f"{kept['peak_rss_growth_mb'] / full['peak_rss_growth_mb']:.2f}x the peak memory growth; the "
                     f"completion tokens' logits {CHUNK} at a time {chunked['seconds'] / full['seconds']:.2f}x and "
                     f"{chunked['peak_rss_growth_mb'] / full['peak_rss_growth_mb']:.2f}x.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("VOCABULARY", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1], args.rows, args.repeats)))
        return
    results = []
    for vocabulary in VOCABULARIES:
        for variant in VARIANTS:
            results.append(measured_apart([sys.executable, __file__, "--one", str(vocabulary), variant, "--rows",
                                           str(args.rows), "--repeats", str(args.repeats)]))
            print(json.dumps(results[-1]), flush=True)
    text = table(results)
    print(text)
    shape = results[0]
    provenance = {"commit": commit(), "machine": machine(), "torch": torch.__version__}
    write_outputs(
        args.out, args.doc, provenance, results,
        "# Logits only where the loss needs them\n\n"
        "Produced by `python benchmarks/completion_logits.py --doc docs/completion-logits.md` "
        f"(commit {provenance['commit']}; {provenance['machine']}; torch {provenance['torch']}).\n\n"
        f"{shape['sequences']} sequences padded to {shape['width']} tokens, {shape['completion_tokens']} "
        f"completion tokens; the first completion target is position {shape['first_completion_target']}. "
        "Qwen3-MoE, hidden 256, 2 layers, 8 experts (top-2); fp32 on CPU.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
