"""One AdamW step of torch's two multi-tensor implementations, foreach (the default) and fused,
on the parameters of the demo's tiny MoE and of a ~50M-parameter MoE.

    python benchmarks/adamw_step.py [--device cpu] [--repeats 30] [--doc docs/adamw-step.md] [--out results.json]

Each (model, implementation) pair builds its model, fills every gradient with the same seeded
noise, and times ``optimizer.step()`` (median of ``--repeats`` after 3 warm-up steps); the two
run in one process one after the other, with the same parameters and gradients.
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

from benchmarks.provenance import commit, machine, write_outputs  # noqa: E402
from rlreason.recipe import TinyModelConfig  # noqa: E402
from rlreason.tiny import build_char_tokenizer, build_tiny_moe  # noqa: E402

SIZES = {
    "tiny (demo), 0.9M": TinyModelConfig(),
    "~50M MoE": TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4, num_experts=8,
                                experts_per_token=2, expert_intermediate_size=512),
}


def step_ms(config: TinyModelConfig, fused: bool, device: str, repeats: int) -> float:
    model = build_tiny_moe(config, build_char_tokenizer()).to(device)
    generator = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused, foreach=None if fused else True)
    times = []
    for k in range(repeats + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if k >= 3:
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args()
    rows = []
    for name, config in SIZES.items():
        foreach, fused = (step_ms(config, f, args.device, args.repeats) for f in (False, True))
        rows.append({"model": name, "foreach_ms": foreach, "fused_ms": fused, "fused_over_foreach": fused / foreach})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| model | foreach | fused | fused / foreach |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['foreach_ms']:.2f} ms | {r['fused_ms']:.2f} ms | {r['fused_over_foreach']:.2f}x |"
              for r in rows]
    text = "\n".join(lines)
    print(text)
    provenance = {"commit": commit(), "machine": machine(), "torch": torch.__version__, "device": args.device,
                  "threads": torch.get_num_threads()}
    write_outputs(
        args.out, args.doc, provenance, rows,
        "# AdamW: foreach against fused\n\n"
        f"Produced by `python benchmarks/adamw_step.py --device {args.device} --doc {args.doc}` (commit "
        f"{provenance['commit']}; {provenance['machine']}; torch {provenance['torch']}, "
        f"{provenance['threads']} threads). Median time of one `optimizer.step()`.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
