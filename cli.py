"""rlreason command line: thin click wrappers over the library."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import click

from rewards.registry import RewardError
from rlreason.launch import LaunchError, relaunch_cpu_processes
from rlreason.recipe import RecipeError, load_recipe
from rlreason.rollout.errors import RolloutWorkerError
from rlreason.stopping import RunInterrupted

SET_HELP = "Override a recipe key, e.g. --set trainer.max_steps=2 (repeatable)."
RESUME_HELP = ("Continue the run from its newest checkpoint-N, or from CHECKPOINT: weights, optimizer, "
               "scheduler, RNG, data position, step (on any number of processes).")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """GRPO-style reinforcement learning with rule-based rewards."""
    try:
        relaunch_cpu_processes()
    except LaunchError as err:
        raise click.ClickException(str(err)) from None
    level = logging.DEBUG if verbose else logging.INFO if main_process() else logging.WARNING
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def recipe_from(path: str, overrides: tuple[str, ...]):
    try:
        return load_recipe(path, overrides)
    except RecipeError as err:
        raise click.ClickException(str(err)) from None


def checked(recipe):
    """``recipe`` once it passed the pre-load checks (``preflight``), run here before the command
    imports the trainer (transformers, peft, accelerate: seconds), so a bad one fails at once."""
    from rlreason.preflight import check_recipe

    run_guarded(check_recipe, recipe)
    return recipe


def run_guarded(fn, *args):
    """Run a library call, turning bad-input errors into one-line CLI errors; a run stopped by a
    signal (after saving a checkpoint) exits with the shell's code for that signal."""
    try:
        return fn(*args)
    except (RecipeError, RewardError, LaunchError, RolloutWorkerError) as err:
        raise click.ClickException(str(err)) from None
    except RunInterrupted as stopped:
        if main_process():
            click.echo(str(stopped), err=True)
        sys.exit(128 + stopped.signal_number)


def main_process() -> bool:
    """False in the other processes of a multi-process launch (accelerate, torchrun): they log
    only warnings, and the main process reports."""
    return os.environ.get("RANK", "0") == "0"


def report(result) -> None:
    if not main_process():
        return
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"checkpoint:    {result.checkpoint}")
    for step, evaluation in result.evals:
        click.echo(f"held-out accuracy at step {step}: {evaluation.accuracy:.3f} "
                   f"({len(evaluation.samples)} problems, greedy)")
    if len(result.evals) > 1:
        (_, first), (last_step, last) = result.evals[0], result.evals[-1]
        gain = 100 * (last.accuracy - first.accuracy)
        click.echo(f"held-out accuracy: {first.accuracy:.3f} before -> {last.accuracy:.3f} after "
                   f"{last_step} steps ({gain:+.1f} points)")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--dry-run", is_flag=True,
              help="Validate the recipe and take one step on a tiny stand-in of its model family "
                   "(no weights needed, writes nothing).")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[CHECKPOINT]",
              help=RESUME_HELP)
def train(recipe: str, overrides: tuple[str, ...], dry_run: bool, resume: str | None) -> None:
    """Train a policy with GRPO as RECIPE (a YAML file) says."""
    if dry_run:
        from rlreason.dry_run import dry_run as run_dry

        loaded = recipe_from(recipe, overrides)
        result = run_guarded(run_dry, loaded)
        click.echo(f"dry run ok: {recipe} is valid; one GRPO step ran on a tiny "
                   f"{loaded.model.tiny.architecture} stand-in (held-out accuracy "
                   f"{result.evals[-1][1].accuracy:.3f} on {len(result.evals[-1][1].samples)} problems)")
        return
    loaded = checked(recipe_from(recipe, overrides))
    from rlreason.trainer import train as run_grpo

    report(run_guarded(run_grpo, loaded, resume_point(loaded.run_dir, resume)))


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[CHECKPOINT]",
              help=RESUME_HELP)
def sft(recipe: str, overrides: tuple[str, ...], resume: str | None) -> None:
    """Supervised fine-tuning (cold start) as RECIPE says."""
    loaded = checked(recipe_from(recipe, overrides))
    from rlreason.sft import sft as run_sft

    report(run_guarded(run_sft, loaded, resume_point(loaded.run_dir, resume)))


@main.command(name="rollout-worker")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on (0.0.0.0: every one, for a trainer on another machine).")
@click.option("--port", default=8300, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on.")
def rollout_worker(recipe: str, overrides: tuple[str, ...], host: str, port: int) -> None:
    """Serve generation for trainers of RECIPE with rollout.mode: server: a vLLM engine of RECIPE's
    model on this process's devices (CUDA_VISIBLE_DEVICES, or CPU cores), taking the trainer's
    weight pushes. Runs until interrupted."""
    loaded = checked(recipe_from(recipe, overrides))
    from rlreason.rollout.worker import serve

    run_guarded(serve, loaded, host, port)


def resume_point(run_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint ``--resume`` names: the run's newest one, or the given directory."""
    from rlreason.checkpoint import TRAINING_STATE, checkpoint_problem, latest_checkpoint

    if resume is None:
        return None
    if resume == "latest":  # the newest that reads back whole (latest_checkpoint checks each)
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise click.ClickException(f"--resume: {run_dir} has no checkpoint-N to resume from "
                                       "(trainer.save_every sets how often they are written)")
    else:
        checkpoint = Path(resume)
        if not (checkpoint / TRAINING_STATE).exists():
            raise click.ClickException(f"--resume: {checkpoint} is not a resumable checkpoint "
                                       f"(no {TRAINING_STATE}; final/ holds the model only)")
        problem = checkpoint_problem(checkpoint)
        if problem is not None:
            raise click.ClickException(f"--resume: {checkpoint} cannot be resumed: {problem}")
    click.echo(f"resuming from {checkpoint}", err=True)
    return checkpoint


@main.command(name="eval")
@click.argument("recipe", type=click.Path(exists=True))
@click.option("--model", "model_path", default=None, help="Checkpoint to evaluate instead of the recipe's model.")
@click.option("--dataset", default=None,
              help="Evaluate on gsm8k, math500 or humaneval (from the hub), or a local file of one of them "
                   "(e.g. gsm8k_test.jsonl), with that set's prompt template.")
@click.option("--split", default=None, help="Split of a --dataset from the hub (default: test).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Only the first N problems of --dataset.")
@click.option("--keep-template", is_flag=True,
              help="Prompt --dataset problems with the recipe's data.prompt_template (e.g. the R1 template "
                   "the model was trained with) instead of the set's own.")
@click.option("--output", "output_path", default=None, type=click.Path(dir_okay=False),
              help="Write metrics and per-problem samples here (JSON).")
@click.option("--k", "k", default=None, type=click.IntRange(min=1),
              help="Sample K completions per problem (rollout.temperature) and report pass@1..K and maj@K "
                   "instead of greedy accuracy.")
@click.option("--output-dir", "output_dir", default=None, type=click.Path(file_okay=False),
              help="Write eval.json (metrics) and eval_samples.jsonl (every completion, its scores) here.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def evaluate_command(recipe: str, model_path: str | None, dataset: str | None, split: str | None,
                     limit: int | None, keep_template: bool, output_path: str | None, k: int | None,
                     output_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Accuracy of a model on RECIPE's held-out data (greedy), or pass@k with --k.

    RECIPE may also be a checkpoint directory of a run (e.g. runs/NAME/final): the run's
    config.yaml is the recipe and the checkpoint the model."""
    from rlreason.eval_sets import with_eval_set

    recipe, model_path = recipe_and_model(Path(recipe), model_path)
    extra = (f"model.name_or_path={model_path}",) if model_path else ()
    loaded = recipe_from(recipe, overrides + extra)
    dataset_name = None
    if dataset:
        loaded, dataset_name = run_guarded(with_eval_set, loaded, dataset, split, limit, keep_template)
    elif split or limit or keep_template:
        raise click.UsageError("--split, --limit and --keep-template go with --dataset")
    loaded = checked(loaded)
    from rlreason.evaluate import evaluate_recipe

    result = run_guarded(evaluate_recipe, loaded, k)
    if output_path:
        Path(output_path).write_text(json.dumps({"metrics": result.metrics, "samples": result.samples}, indent=1))
    if output_dir:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        settings = {"model": loaded.model.name_or_path, "dataset": dataset_name or loaded.data.eval_source,
                    "source": loaded.data.eval_source or loaded.data.source, "k": k,
                    "problems": len(result.samples) // (k or 1), "temperature": loaded.rollout.temperature if k else 0.0}
        (out / "eval.json").write_text(json.dumps({**settings, "metrics": result.metrics}, indent=2))
        (out / "eval_samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in result.samples))
    click.echo(json.dumps(result.metrics, indent=2))


def recipe_and_model(path: Path, model_path: str | None) -> tuple[str, str | None]:
    """A recipe file as given; a checkpoint directory -> its run's config.yaml and itself."""
    if path.is_file():
        return str(path), model_path
    if (path.parent / "config.yaml").is_file():  # runs/NAME/final or runs/NAME/checkpoint-N
        return str(path.parent / "config.yaml"), model_path or str(path)
    if (path / "config.yaml").is_file():  # runs/NAME: its final weights, else its newest checkpoint
        from rlreason.checkpoint import latest_checkpoint

        newest = path / "final" if (path / "final").is_dir() else latest_checkpoint(path)
        if model_path is None and newest is None:
            raise click.UsageError(f"{path}: a run directory without final/ or checkpoint-N/; pass --model")
        return str(path / "config.yaml"), model_path or str(newest)
    raise click.UsageError(f"{path}: a directory with no config.yaml in it or above it; pass a recipe file, "
                           "or a checkpoint directory of a run (runs/NAME/final)")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="PNG to write (default: RUN_DIR/plot.png of the first run).")
@click.option("--smooth", default=1, show_default=True, type=click.IntRange(min=1),
              help="Moving average over this many steps (the raw curve stays, faint).")
def plot(run_dirs: tuple[str, ...], out_path: str | None, smooth: int) -> None:
    """Reward per function, held-out accuracy, length, KL, entropy, clip fraction, step time and loss
    of one or more runs (their metrics.jsonl) against step, as one PNG; several runs overlay."""
    from rlreason.plot import PlotError, plot_runs

    dirs = [Path(d) for d in run_dirs]
    try:
        written = plot_runs(dirs, Path(out_path) if out_path else dirs[0] / "plot.png", smooth)
    except PlotError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"plot: {written}")


@main.group()
def rewards() -> None:
    """Inspect and try reward functions."""


@rewards.command(name="list")
def list_rewards() -> None:
    """Every reward function by name, with its one-line doc and source."""
    from rewards import available
    from rewards.registry import describe

    for name, fn in sorted(available().items()):
        doc = (fn.__doc__ or "").strip().splitlines()
        click.echo(f"{name:24} {doc[0] if doc else '':70} {describe(fn)}")


@rewards.command(name="score")
@click.argument("name")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSONL rows, each with a 'completion' field and the reward's columns.")
@click.option("--output", "output_path", default=None, type=click.Path(dir_okay=False),
              help="Write each row with its 'reward' here (JSONL).")
def score(name: str, input_path: str, output_path: str | None) -> None:
    """Score each row's completion with reward NAME; print a summary."""
    from rewards import resolve

    rows = jsonl_rows(input_path)
    missing = [i for i, row in enumerate(rows) if "completion" not in row]
    if missing:
        raise click.ClickException(f"{input_path}: row {missing[0]} has no 'completion' field")
    fn = run_guarded(resolve, name)
    names = sorted({key for row in rows for key in row if key != "completion"})
    started = time.perf_counter()
    values, errors = score_rows(fn, rows, names)
    elapsed = time.perf_counter() - started
    if output_path:
        with open(output_path, "w") as f:
            for row, value, error in zip(rows, values, errors):
                f.write(json.dumps({**row, "reward": value, **({"error": error} if error else {})}) + "\n")
    present = [v for v in values if v is not None]
    mean = sum(present) / len(present) if present else float("nan")
    failed = sum(e is not None for e in errors)
    click.echo(f"{name}: {len(rows)} rows, mean {mean:.4f}, {len(rows) - len(present) - failed} not applicable, "
               f"{failed} errors, {elapsed:.2f}s ({len(rows) / max(elapsed, 1e-9):.0f} rows/s)")
    if failed:
        first = next(i for i, e in enumerate(errors) if e)
        click.echo(f"first error, row {first}: {errors[first]}", err=True)


def score_rows(fn, rows: list[dict], names: list[str]) -> tuple[list, list]:
    """Score all rows in one call; if that raises, row by row so each error names its row."""
    def call(batch):
        return fn([row["completion"] for row in batch], **{k: [row.get(k) for row in batch] for k in names})

    try:
        return list(call(rows)), [None] * len(rows)
    except Exception:
        values, errors = [], []
        for row in rows:
            try:
                values.append(call([row])[0])
                errors.append(None)
            except Exception as err:
                values.append(None)
                errors.append(f"{type(err).__name__}: {err}")
        return values, errors


def jsonl_rows(path: str) -> list[dict]:
    """The JSON objects of a JSONL file, one per non-empty line; a bad line is a one-line error
    naming the file and the line."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise click.ClickException(f"{path}:{number}: not valid JSON ({err.msg}: column {err.colno})") from None
        if not isinstance(row, dict):
            raise click.ClickException(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
