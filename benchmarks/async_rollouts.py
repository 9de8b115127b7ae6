"""The demo's GRPO stage colocated, with a rollout worker on-policy, and generating ahead
(``rollout.max_staleness`` 1 and 2): time split per step and held-out accuracy.

    python benchmarks/async_rollouts.py [--steps 200] [--doc docs/async-rollouts.md]
                                        [--out benchmarks/async_rollouts_results.json]
    python benchmarks/async_rollouts.py --render benchmarks/async_rollouts_results.json --doc ...
                                        (the document again from a run's results)

One SFT cold start (``recipes/demo/sft.yaml``), then ``recipes/demo/grpo.yaml`` once per setting,
each process on cores of its own (``taskset``): colocated, the trainer (and its engine) on every
core; in server mode the worker (``rlreason rollout-worker``) on core 0 and the trainer on the
others. Reported per setting: mean seconds per step (steps 2..N) of generation the trainer waited
for, update, weight push and generation hidden behind the update (``time/overlap``), the stage's
wall time, mean staleness and held-out greedy accuracy after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accelerate.utils.other import get_free_port  # noqa: E402

from benchmarks.demo_seeds import accuracies, stage  # noqa: E402
from benchmarks.provenance import commit, machine, write_outputs  # noqa: E402

CLI = [sys.executable, "-m", "cli"]
SERVER = ["rollout.mode=server", "rollout.backend=vllm"]
SETTINGS = {  # name: (GRPO overrides, in server mode)
    "colocated (vllm in the trainer)": (["rollout.backend=vllm"], False),
    "server, on-policy": (SERVER, True),
    "server, max_staleness 1": ([*SERVER, "rollout.max_staleness=1", "algo.rollout_correction=token"], True),
    "server, max_staleness 2": ([*SERVER, "rollout.max_staleness=2", "algo.rollout_correction=token"], True),
}
TIMES = ("time/generate", "time/update", "time/sync", "time/overlap", "step_time")


def pinned(cores: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cores, *command]


def start_worker(overrides: list[str], cores: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = get_free_port()
    args = [*CLI, "rollout-worker", "recipes/demo/grpo.yaml", "--port", str(port),
            *[x for o in overrides for x in ("--set", o)]]
    env = {**os.environ, "OMP_NUM_THREADS": str(len(expand(cores))), "VLLM_CPU_OMP_THREADS_BIND": cores}
    worker = subprocess.Popen(pinned(cores, args), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if worker.poll() is not None:
            raise SystemExit(f"the rollout worker failed; see {log}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return worker, url
        except OSError:
            time.sleep(1)
    worker.kill()
    raise SystemExit(f"the rollout worker did not start; see {log}")


def expand(cores: str) -> list[int]:
    out = []
    for part in cores.split(","):
        low, _, high = part.partition("-")
        out.extend(range(int(low), int(high or low) + 1))
    return out


def step_means(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_time" in r][1:]  # step 1 waits for the whole first batch
    means = {key: statistics.mean(r.get(key, 0.0) for r in steps) for key in TIMES}
    means["staleness"] = statistics.mean(r.get("rollout/staleness_mean", 0.0) for r in steps)
    return means


def run_all(args) -> list[dict]:
    work = args.workdir
    stage("sft", "recipes/demo/sft.yaml", [f"output_dir={work}/sft"], work / "sft.log")
    cores = expand(args.cores)
    trainer_cores = ",".join(map(str, cores[1:]))
    base = [f"model.name_or_path={work}/sft/final", f"trainer.max_steps={args.steps}", "evaluation.every=0"]
    results = []
    for name, (overrides, served) in SETTINGS.items():
        run_dir = work / name.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
        worker = None
        settings = [*base, *overrides, f"output_dir={run_dir}"]
        if served:
            worker, url = start_worker([*base, *overrides], str(cores[0]), work / f"{run_dir.name}-worker.log")
            settings.append(f"rollout.server.url={url}")
        on = trainer_cores if served else args.cores
        env = {**os.environ, "OMP_NUM_THREADS": str(len(expand(on))), "VLLM_CPU_OMP_THREADS_BIND": on}
        try:
            started = time.perf_counter()
            log = work / f"{run_dir.name}.log"
            done = subprocess.run(pinned(on, [*CLI, "train", "recipes/demo/grpo.yaml",
                                              *[x for o in settings for x in ("--set", o)]]),
                                  cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
            seconds = time.perf_counter() - started
        finally:
            if worker is not None:
                worker.kill()
                worker.wait()
        if done.returncode:
            raise SystemExit(f"{name} failed; see {log}")
        curve = accuracies(run_dir)
        results.append({"setting": name, "trainer_cores": on, "worker_cores": str(cores[0]) if served else None,
                        "wall_seconds": seconds, "accuracy": curve[max(curve)], "start_accuracy": curve[0],
                        **step_means(run_dir)})
        print(json.dumps(results[-1]), flush=True)
    return results


def table(results: list[dict]) -> str:
    lines = ["| setting | cores (trainer / worker) | s/step | generation waited | update | push | generation hidden "
             "| mean staleness | GRPO stage wall time | held-out accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['setting']} | {r['trainer_cores']} / {r['worker_cores'] or '-'} | {r['step_time']:.3f} | "
                     f"{r['time/generate']:.3f} | {r['time/update']:.3f} | {r['time/sync']:.3f} | "
                     f"{r['time/overlap']:.3f} | {r['staleness']:.2f} | {r['wall_seconds']:.0f} s | "
                     f"{100 * r['start_accuracy']:.1f}% -> {100 * r['accuracy']:.1f}% |")
    return "\n".join(lines)


def findings(results: list[dict]) -> str:
    """What the table shows, in numbers taken from it."""
    by = {r["setting"]: r for r in results}
    colocated, on, ahead = (by["colocated (vllm in the trainer)"], by["server, on-policy"],
                            by["server, max_staleness 1"])
    worst = min(r["accuracy"] for r in results if r["setting"].startswith("server"))
    predicted = max(on["time/generate"], on["time/update"] + on["time/sync"])
    return (f"Generating one step ahead cut the generation the trainer waited for from {on['time/generate']:.3f} s "
            f"to {ahead['time/generate']:.3f} s a step ({ahead['time/overlap']:.3f} s of it now runs behind the "
            f"update), and the step from {on['step_time']:.3f} s to {ahead['step_time']:.3f} s "
            f"({on['step_time'] / ahead['step_time']:.2f}x faster than on-policy with a worker). But the update "
            f"took {ahead['time/update'] / on['time/update']:.2f}x as long with the worker generating beside it "
            f"on the other core (the processes share the machine's caches and memory bandwidth; not "
            f"measured further), so on this machine the "
            f"async step is {ahead['step_time'] / colocated['step_time']:.2f}x the colocated one's, which gives "
            f"both cores to whichever phase runs. Every server run ended at {100 * worst:.1f}% or better "
            f"(colocated: {100 * colocated['accuracy']:.1f}%). Wall times count the trainer only: the "
            f"colocated trainer starts its engine itself, the server runs' worker was started before.\n\n"
            f"What the overlap gives, as a model: on-policy, a step costs generation + update + push, since each "
            f"waits for the other. Generating ahead, the worker generates step s+1 while the trainer updates on "
            f"step s, so a step costs about max(generation, update + push), plus any part of the push that waits "
            f"for the worker to finish its batch. With the on-policy server run's own phases that is "
            f"max({on['time/generate']:.3f}, {on['time/update']:.3f} + {on['time/sync']:.3f}) = {predicted:.3f} s, "
            f"{on['step_time'] / predicted:.2f}x shorter than its {on['step_time']:.3f} s, where the two sides do "
            f"not slow each other: devices of their own (the worker on its GPUs, the trainer on the rest; "
            f"docs/rollouts.md), not two cores of one small machine. The gain is largest when generation and "
            f"update + push take about as long; it is bounded by 2x.")


def document(results: list[dict], args, ran_on: str) -> str:
    return f"""# Generation apart from training: colocated, server, async

Made by `python benchmarks/async_rollouts.py --steps {args.steps} --cores {args.cores} --doc docs/async-rollouts.md
--out benchmarks/async_rollouts_results.json` on commit {ran_on}.

The demo's GRPO stage ({args.steps} steps of 32 prompts x 8 completions, from one SFT cold start) under
each setting. Seconds are means per step over steps 2-{args.steps}: *generation waited* is the time the
trainer spent waiting for its batch, *generation hidden* the worker's generation time that ran
while the trainer was busy (async only), *push* the weight broadcast and load. Accuracy: greedy
on the 200 held-out problems, before -> after.

{table(results)}

{findings(results)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cores", default="0-1", help="cores to use: the worker gets the first, the trainer the rest")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "async-rollouts")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, help="write --doc from this run's results JSON")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        args.doc.write_text(document(saved["results"], args, saved["commit"]))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    ran_on = f"{commit()}, {machine()}"
    results = run_all(args)
    print(table(results))
    write_outputs(args.out, args.doc, {"commit": ran_on}, results, document(results, args, ran_on))


if __name__ == "__main__":
    main()
