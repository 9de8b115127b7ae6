"""The expert kernels transformers offers (``experts_implementation``), timed on B3's model.

    python benchmarks/experts_kernels.py [--device cpu] [--doc docs/experts-kernels.md] [--out results.json]

The model of ``benchmarks/grpo_step_vs_trl.py``'s B3 (Qwen3-MoE, hidden 256, 4 layers, 32 experts,
top-8 routing, a vocabulary of 32,000 rows), random init, in each implementation: ``eager`` (a loop
over the experts hit), ``grouped_mm`` (one grouped matmul over tokens sorted by expert; transformers'
default where torch has it) and ``batched_mm`` (each token's top-k expert weights gathered, one
batched matmul). Two shapes of work, each timed as the median over ``--repeats`` calls after one
warm-up: a decoding step (64 rows, one new token each, over a 200-token KV cache) and an update
(forward + backward of the completion tokens' logprob sum over 16 sequences of 256 tokens, the
trainer's default token budget of 4,096). Each implementation runs in its own process; its
logprobs are compared with eager's on the same weights and batch.
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

from benchmarks.provenance import commit, machine, measured_apart, write_outputs  # noqa: E402
from rlreason.recipe import TinyModelConfig  # noqa: E402
from rlreason.sequences import policy_forward, right_padded  # noqa: E402
from rlreason.tiny import build_char_tokenizer, build_tiny_moe  # noqa: E402

IMPLEMENTATIONS = ("eager", "grouped_mm", "batched_mm")
MODEL = TinyModelConfig(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, num_experts=32,
                        experts_per_token=8, expert_intermediate_size=128, max_position_embeddings=1024)
VOCABULARY = 32_000
DECODE_ROWS, CACHED = 64, 200
UPDATE_ROWS, UPDATE_PROMPT, UPDATE_COMPLETION = 16, 100, 156


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def measure_one(implementation: str, device: str, repeats: int) -> dict:
    """In this process: the decoding step's and the update's median seconds and the logprobs; a
    phase that runs out of memory (batched_mm gathers every token's expert weights) is reported."""
    torch.manual_seed(0)
    model = build_tiny_moe(MODEL, build_char_tokenizer())
    model.resize_token_embeddings(VOCABULARY)
    model.to(device)
    model.set_experts_implementation(implementation)
    generator = torch.Generator().manual_seed(1)
    prefix = torch.randint(3, VOCABULARY, (DECODE_ROWS, CACHED), generator=generator).to(device)
    step = torch.randint(3, VOCABULARY, (DECODE_ROWS, 1), generator=generator).to(device)
    prompts = torch.randint(3, VOCABULARY, (UPDATE_ROWS, UPDATE_PROMPT), generator=generator).tolist()
    completions = torch.randint(3, VOCABULARY, (UPDATE_ROWS, UPDATE_COMPLETION), generator=generator).tolist()
    batch = right_padded(prompts, completions, pad_id=0, device=device)
    result = {"implementation": implementation, "decode_step_s": None, "update_s": None, "logprobs": None}
    try:
        with torch.no_grad():
            cache = model(input_ids=prefix, use_cache=True).past_key_values

            def decode() -> None:
                model(input_ids=step, past_key_values=cache, use_cache=True)
                cache.crop(CACHED)  # the same cache length every call

            result["decode_step_s"] = timed(decode, repeats)
        model.train()

        def update() -> None:
            logprobs = policy_forward(model, batch, with_entropy=True, logits_chunk_tokens=1024).logprobs
            (logprobs * batch.completion_mask).sum().backward()
            model.zero_grad(set_to_none=True)

        result["update_s"] = timed(update, repeats)
        with torch.no_grad():
            logprobs = policy_forward(model, batch, with_entropy=False, logits_chunk_tokens=1024).logprobs
        result["logprobs"] = logprobs[batch.completion_mask.bool()].cpu().tolist()
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if "allocate" not in str(error):
            raise
        result["error"] = str(error).splitlines()[-1][:160]
    return result


def table(results: list[dict]) -> str:
    eager = next(r for r in results if r["implementation"] == "eager")
    lines = ["| experts_implementation | decoding step (64 rows) | update (16 x 256 tokens) | "
             "max logprob difference from eager |", "|---|---|---|---|"]
    for r in results:
        if r["update_s"] is None:
            lines.append(f"| {r['implementation']} | out of memory in the prefill or update: {r['error']} | | - |")
            continue
        decode = f"{r['decode_step_s'] * 1000:.1f} ms ({r['decode_step_s'] / eager['decode_step_s']:.2f}x)"
        difference = max(abs(a - b) for a, b in zip(r["logprobs"], eager["logprobs"]))
        lines.append(f"| {r['implementation']} | {decode} | {r['update_s']:.2f} s "
                     f"({r['update_s'] / eager['update_s']:.2f}x) | {difference:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.device, args.repeats)))
        return
    results = []
    for implementation in IMPLEMENTATIONS:
        results.append(measured_apart([sys.executable, __file__, "--one", implementation, "--device", args.device,
                                       "--repeats", str(args.repeats)]))
        print(implementation, results[-1]["decode_step_s"], results[-1]["update_s"], flush=True)
    text = table(results)
    print(text)
    provenance = {"commit": commit(), "machine": machine(), "torch": torch.__version__}
    write_outputs(
        args.out, args.doc, provenance, results,
        "# Expert kernels\n\n"
        f"Produced by `python benchmarks/experts_kernels.py --device {args.device} --doc {args.doc}` "
        f"(commit {provenance['commit']}; {provenance['machine']}; torch {provenance['torch']}).\n\n"
        "B3's model: Qwen3-MoE, hidden 256, 4 layers, 32 experts (top-8), 32,000-row vocabulary, fp32. "
        "Median over calls after a warm-up; each implementation in its own process. What transformers "
        "picks by default, and what rlreason's `model.experts_implementation: auto` keeps: "
        "docs/speed.md.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
