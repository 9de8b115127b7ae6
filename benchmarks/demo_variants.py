"""The demo's GRPO stage under other algorithm settings and LoRA layouts, from one cold start.

    python benchmarks/demo_variants.py [--sft-seed 0] [--backend hf] [--doc docs/demo-variants.md]
                                       [--out benchmarks/demo_variants_results.json]

One SFT cold start (``recipes/demo/sft.yaml``), then ``recipes/demo/grpo.yaml`` once per variant
below, each stage in its own process as ``make demo`` runs it. Reported per variant: held-out
greedy accuracy at each evaluation, the trainable parameters, the GRPO stage's wall time and
its peak resident memory (the process's own, from ``wait4``), and means over the training steps
of the share of clipped completion tokens and of the generation rounds per step (more than 1
only with dynamic sampling).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.demo_seeds import accuracies, stage  # noqa: E402
from benchmarks.provenance import commit, machine  # noqa: E402

ATTENTION = "[q_proj, k_proj, v_proj, o_proj]"
VARIANTS = {
    "algorithms": {
        "grpo (the recipe)": [],
        "dr_grpo, unscaled advantages": ["algo.loss_type=dr_grpo", "algo.scale_rewards=none"],
        "dapo + dynamic sampling": ["algo.loss_type=dapo", "algo.dynamic_sampling=true"],
        "gspo": ["algo.loss_type=gspo"],
        "gspo, 2 policy iterations": ["algo.loss_type=gspo", "algo.num_iterations=2"],
        "leave-one-out baseline (RLOO)": ["algo.baseline=leave_one_out"],
    },
    "lora": {
        "LoRA r16 on attention (lr 1e-3)": [f"model.lora={{r: 16, alpha: 32, target_modules: {ATTENTION}}}",
                                            "trainer.learning_rate=1e-3"],
        "LoRA r16 all-linear: attention, routers, experts (lr 1e-3)": [
            "model.lora={r: 16, alpha: 32}", "trainer.learning_rate=1e-3"],
        "full fine-tuning (lr 1e-4, the recipe)": [],
    },
}


def step_means(run_dir: Path) -> dict[str, float]:
    """Means over the training steps of the clipped-token share and the generation rounds per step."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_time" in r]
    return {"clipped": sum(r.get("clip_ratio/region", 0.0) for r in steps) / len(steps),
            "rounds": sum(r.get("dynamic_sampling/rounds", 1.0) for r in steps) / len(steps)}


def trainable(log: Path) -> int:
    found = re.search(r"parameters \((\d+) trainable\)", log.read_text())
    return int(found.group(1)) if found else -1


def run_all(args) -> list[dict]:
    sft_dir = args.workdir / f"sft-{args.sft_seed}"
    stage("sft", "recipes/demo/sft.yaml", [f"output_dir={sft_dir}", f"trainer.seed={args.sft_seed}",
                                           f"model.tiny.seed={args.sft_seed}"], args.workdir / "sft.log")
    sft_curve = accuracies(sft_dir)
    results = []
    for table, variants in VARIANTS.items():
        for k, (name, overrides) in enumerate(variants.items()):
            run_dir, log = args.workdir / f"{table}-{k}", args.workdir / f"{table}-{k}.log"
            seconds, peak = stage("train", "recipes/demo/grpo.yaml",
                                  [f"output_dir={run_dir}", f"model.name_or_path={sft_dir / 'final'}",
                                   f"rollout.backend={args.backend}", *overrides], log)
            result = {"table": table, "variant": name, "overrides": overrides, "sft": sft_curve[max(sft_curve)],
                      "curve": accuracies(run_dir), **step_means(run_dir), "trainable": trainable(log),
                      "seconds": seconds, "peak_rss_mb": peak}
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def table(results: list[dict], which: str) -> str:
    rows = [r for r in results if r["table"] == which]
    steps = sorted({int(s) for r in rows for s in r["curve"] if int(s) > 0})
    lines = ["| variant | `--set` | trainable parameters | " + " | ".join(f"step {s}" for s in steps)
             + " | tokens clipped | generation rounds per step | GRPO wall time | peak RSS |",
             "|---|---|---|" + "---|" * len(steps) + "---|---|---|---|"]
    for r in rows:
        curve = {int(s): a for s, a in r["curve"].items()}
        sets = " ".join(f"`{o}`" for o in r["overrides"]) or "(none)"
        cells = " | ".join(f"{100 * curve[s]:.1f}%" for s in steps)
        lines.append(f"| {r['variant']} | {sets} | {r['trainable']:,} | {cells} | {100 * r['clipped']:.2f}% | "
                     f"{r['rounds']:.2f} | {r['seconds']:.0f} s | {r['peak_rss_mb']:,.0f} MB |")
    return "\n".join(lines)


def document(results: list[dict], args, ran_on: str) -> str:
    return f"""# The demo under other settings

Made by `python benchmarks/demo_variants.py --sft-seed {args.sft_seed} --backend {args.backend} --doc
docs/demo-variants.md` on commit {ran_on}. One cold start (SFT seed {args.sft_seed}, greedy held-out
accuracy {100 * results[0]['sft']:.1f}%), then `recipes/demo/grpo.yaml` (200 steps, `rollout.backend={args.backend}`)
once per row with the overrides shown; accuracy is greedy on the 200 held-out problems; one
seed per row, so differences of a point or two are noise. "Tokens clipped": the mean share of
completion tokens whose importance ratio was clipped; "generation rounds per step": how many
batches dynamic sampling generated to fill one step (1 without it). Peak RSS is the GRPO
process's own.

## Algorithm settings

{table(results, "algorithms")}

## LoRA on the demo's Mixture-of-Experts model

{table(results, "lora")}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-seed", type=int, default=0)
    parser.add_argument("--backend", default="hf", choices=["vllm", "hf"])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo-variants")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ran_on = f"{commit()}, {machine()}"  # before the runs: the code they ran
    results = run_all(args)
    for which in VARIANTS:
        print(table(results, which))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(results, args, ran_on))


if __name__ == "__main__":
    main()
