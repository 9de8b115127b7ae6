"""The whole demo (SFT cold start, then GRPO) over several SFT and GRPO seeds.

    python benchmarks/demo_seeds.py [--sft-seeds 0 1 2 3 4] [--grpo-seeds 0 1] [--backend vllm]
                                    [--other-backend-runs 3] [--doc docs/demo-seeds.md] [--out results.json]

Each SFT seed sets both the tiny model's initialisation and the cold start's data order and
sampling (``model.tiny.seed`` and ``trainer.seed``); each GRPO seed sets the GRPO run's
``trainer.seed``. Every stage runs in its own process, exactly as ``make demo`` runs it, with
``--sft-set``/``--grpo-set`` overrides for experiments. Prints one row per run (held-out greedy
accuracy after SFT and at each GRPO evaluation) and the min/median/max of the final accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import commit, machine  # noqa: E402

CLI = [sys.executable, "-m", "cli"]


def stage(command: str, recipe: str, overrides: list[str], log: Path) -> tuple[float, float]:
    """Run one CLI stage in its own process (output to ``log``); returns its wall seconds and
    its peak RSS in MB (the process's own, from ``wait4``)."""
    args = CLI + [command, recipe] + [x for o in overrides for x in ("--set", o)]
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} {recipe} failed; see {log}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def accuracies(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["eval/accuracy"] for r in rows if "eval/accuracy" in r}


def run_all(args) -> list[dict]:
    results = []
    other = "hf" if args.backend == "vllm" else "vllm"
    for index, sft_seed in enumerate(args.sft_seeds):
        sft_dir = args.workdir / f"sft-{sft_seed}"
        sft_seconds, _ = stage("sft", "recipes/demo/sft.yaml",
                               [f"output_dir={sft_dir}", f"trainer.seed={sft_seed}", f"model.tiny.seed={sft_seed}",
                                *args.sft_set], args.workdir / f"sft-{sft_seed}.log")
        sft_curve = accuracies(sft_dir)
        sft_accuracy = sft_curve[max(sft_curve)]
        for grpo_seed in args.grpo_seeds:
            # the first --other-backend-runs cold starts also train with the other backend (first GRPO seed)
            also = index < args.other_backend_runs and grpo_seed == args.grpo_seeds[0]
            backends = [args.backend, other] if also else [args.backend]
            for backend in backends:
                grpo_dir = args.workdir / f"grpo-{sft_seed}-{grpo_seed}-{backend}"
                grpo_seconds, _ = stage("train", "recipes/demo/grpo.yaml",
                                        [f"output_dir={grpo_dir}", f"model.name_or_path={sft_dir / 'final'}",
                                         f"trainer.seed={grpo_seed}", f"rollout.backend={backend}", *args.grpo_set],
                                        args.workdir / f"grpo-{sft_seed}-{grpo_seed}-{backend}.log")
                curve = accuracies(grpo_dir)
                result = {"sft_seed": sft_seed, "grpo_seed": grpo_seed, "backend": backend, "sft": sft_accuracy,
                          "curve": curve, "final": curve[max(curve)], "sft_seconds": sft_seconds,
                          "grpo_seconds": grpo_seconds}
                print(json.dumps(result), flush=True)
                results.append(result)
    return results


def table(results: list[dict]) -> str:
    steps = sorted({s for r in results for s in r["curve"] if s > 0})
    lines = ["| SFT seed | GRPO seed | rollouts | after SFT | " + " | ".join(f"step {s}" for s in steps)
             + " | SFT + GRPO time |",
             "|---|---|---|---|" + "---|" * len(steps) + "---|"]
    for r in results:
        cells = " | ".join(f"{100 * r['curve'][s]:.1f}%" for s in steps)
        lines.append(f"| {r['sft_seed']} | {r['grpo_seed']} | {r['backend']} | {100 * r['sft']:.1f}% | {cells} | "
                     f"{r['sft_seconds'] + r['grpo_seconds']:.0f} s |")
    lines.append("")
    for backend in dict.fromkeys(r["backend"] for r in results):
        finals = [r["final"] for r in results if r["backend"] == backend]
        lines.append(f"Final held-out accuracy over {len(finals)} runs with {backend} rollouts: min "
                     f"{100 * min(finals):.1f}%, median {100 * statistics.median(finals):.1f}%, max "
                     f"{100 * max(finals):.1f}%.")
    return "\n".join(lines)


def document(results: list[dict], args, ran_on: str) -> str:
    overrides = " ".join(f"`--set {o}`" for o in args.sft_set + args.grpo_set) or "none"
    return f"""# The demo over seeds

Made by `python benchmarks/demo_seeds.py --sft-seeds {' '.join(map(str, args.sft_seeds))} --grpo-seeds
{' '.join(map(str, args.grpo_seeds))} --backend {args.backend} --other-backend-runs {args.other_backend_runs} --doc docs/demo-seeds.md`
(`make bench-demo`) on commit {ran_on}; overrides: {overrides}.

Each row is `make demo` with one SFT seed (the tiny model's initialisation and the cold start's
data order) and one GRPO seed; accuracy is greedy on the 200 held-out problems. The first
{args.other_backend_runs} cold starts also train with the other rollout backend (first GRPO seed), from the same SFT
checkpoint; the time column counts the cold start in each row.

{table(results)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--grpo-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--backend", default="vllm", choices=["vllm", "hf"])
    parser.add_argument("--other-backend-runs", type=int, default=3,
                        help="the first N cold starts also train with the other backend (hf when --backend is "
                             "vllm), with the first GRPO seed")
    parser.add_argument("--sft-set", action="append", default=[], help="override for the SFT stage")
    parser.add_argument("--grpo-set", action="append", default=[], help="override for the GRPO stage")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo-seeds")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ran_on = f"{commit()}, {machine()}"  # before the runs: the code they ran
    results = run_all(args)
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(results, args, ran_on))


if __name__ == "__main__":
    main()
