"""Prompts and answers: a hub dataset, a local file, or the built-in arithmetic task.

Rows become ``Example``s (the prompt, text or a conversation, + the row's columns; ``chat.py``
renders conversations with the tokenizer's chat template). Held-out examples are
never trained on: either a separate ``eval_source`` or rows held out of ``source``.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rlreason.chat import prompt_of, reward_completions, reward_prompt
from rlreason.recipe import DataConfig, RecipeError, SyntheticConfig

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """A problem: its prompt (text, or a conversation: a list of {role, content} messages), its
    row's columns (``answer`` = the answer column), and whether the row held a conversation
    (then rewards get TRL's conversational forms)."""

    prompt: str | list[dict]
    columns: dict = field(default_factory=dict)
    conversational: bool = False


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    eval: list[Example]


def load_splits(cfg: DataConfig) -> Splits:
    """Training and held-out examples as the recipe's ``data`` section describes."""
    if cfg.source == "synthetic":
        train_rows, eval_rows = arithmetic_problems(cfg.synthetic, cfg.num_eval)
    elif cfg.eval_source is None:
        rows = with_signal(load_rows(cfg.source, cfg.split, "data.source", cfg.subset), cfg, "data.source")
        random.Random(cfg.shuffle_seed).shuffle(rows)
        if len(rows) <= cfg.num_eval:
            raise RecipeError(f"data.num_eval: {cfg.num_eval} held-out rows leave none of the "
                              f"{len(rows)} rows of {cfg.source} to train on")
        train_rows, eval_rows = rows[cfg.num_eval:], rows[:cfg.num_eval]
    else:
        train_rows = with_signal(load_rows(cfg.source, cfg.split, "data.source", cfg.subset), cfg, "data.source")
        eval_rows = load_eval_rows(cfg)
    return Splits(train=examples_of(train_rows, cfg), eval=examples_of(eval_rows, cfg))


def examples_of(rows: list[dict], cfg: DataConfig) -> list[Example]:
    return [to_example(row, cfg, index) for index, row in enumerate(rows)]


def with_signal(rows: list[dict], cfg: DataConfig, key: str) -> list[dict]:
    """The rows, leaving out (counted, with a warning naming them) those that can never give a
    signal: an empty prompt, or no answer in the answer column."""
    kept, left_out = [], {}
    for index, row in enumerate(rows):
        why = why_no_signal(row, cfg)
        if why is None:
            kept.append(row)
        else:
            left_out.setdefault(why, []).append(index)
    if left_out:
        log.warning("%s: left out %d of %d rows that can never give a signal: %s", key,
                    sum(map(len, left_out.values())), len(rows),
                    "; ".join(f"{why} (rows {', '.join(map(str, found[:5]))}{', ...' if len(found) > 5 else ''})"
                              for why, found in left_out.items()))
    if rows and not kept:
        raise RecipeError(f"{key}: none of its {len(rows)} rows can give a signal ({', '.join(left_out)})")
    return kept


def why_no_signal(row: dict, cfg: DataConfig) -> str | None:
    if cfg.prompt_column not in row or cfg.answer_column not in row:
        return None  # a missing column is the recipe's error, which to_example names
    prompt, answer = row.get(cfg.prompt_column), row.get(cfg.answer_column)
    if prompt is None or (isinstance(prompt, (str, list)) and not (prompt.strip() if isinstance(prompt, str) else prompt)):
        return f"an empty {cfg.prompt_column!r}"
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return f"no answer in {cfg.answer_column!r}"
    return None


def load_eval_examples(cfg: DataConfig) -> list[Example]:
    """The held-out examples alone: with an ``eval_source`` the training data is not read."""
    if cfg.eval_source is None:
        return load_splits(cfg).eval
    return examples_of(load_eval_rows(cfg), cfg)


def load_eval_rows(cfg: DataConfig) -> list[dict]:
    rows = load_rows(cfg.eval_source, cfg.eval_split, "data.eval_source", cfg.eval_subset)
    return with_signal(rows[:cfg.num_eval], cfg, "data.eval_source")


def load_rows(source: str, split: str, key: str, subset: str | None = None) -> list[dict]:
    """Rows of a local file (by suffix) or a dataset directory or hub name (``subset``: its
    configuration), via ``datasets``."""
    import datasets

    path = Path(source).expanduser()
    if path.suffix in FILE_FORMATS:
        if not path.is_file():
            raise RecipeError(f"{key}: dataset file not found: {path}")
        where, positional, split = f"dataset file {path}", (FILE_FORMATS[path.suffix],), "train"
        keywords = {"data_files": str(path)}
    elif path.is_dir():
        where, positional, keywords = f"dataset directory {path}", (str(path),), {}
    elif source.startswith((".", "/", "~")):
        raise RecipeError(f"{key}: dataset path not found: {path}")
    else:
        where = f"hub dataset {source!r} (split {split!r}" + (f", subset {subset!r})" if subset else ")")
        positional, keywords = (source, subset), {}
    try:
        return list(datasets.load_dataset(*positional, split=split, **keywords))
    except Exception as err:  # offline hub, unknown name or split, malformed file: one line naming it
        raise RecipeError(f"{key}: cannot load the {where}: {first_lines(err)}") from None


def first_lines(err: BaseException) -> str:
    """``Type: first line`` of an error, and of the error that caused it (e.g. a JSON parse
    error behind datasets' DatasetGenerationError)."""
    said = []
    while err is not None and len(said) < 2:
        said.append(f"{type(err).__name__}: " + (str(err).strip().splitlines() or [""])[0])
        err = err.__cause__ or err.__context__
    return "; caused by ".join(said)


def to_example(row: dict, cfg: DataConfig, index: int) -> Example:
    for key, column in (("data.prompt_column", cfg.prompt_column), ("data.answer_column", cfg.answer_column)):
        if column not in row:
            raise RecipeError(f"{key}: row {index} has no column {column!r}; columns: {', '.join(row)}")
    return Example(prompt=prompt_of(row, cfg, index), columns=dict(row, answer=row[cfg.answer_column]),
                   conversational=isinstance(row[cfg.prompt_column], list))


def render_completion(example: Example, cfg: DataConfig) -> str:
    """The SFT target of an example (for a conversation that does not end with an assistant
    turn: that turn's content)."""
    try:
        return cfg.completion_template.format(**example.columns)
    except (KeyError, IndexError) as err:
        raise RecipeError(f"data.completion_template: unknown field {err}") from None


def columns_of(examples: list[Example], repeat: int, completion_ids: list[list[int]]) -> dict[str, list]:
    """Reward columns for ``repeat`` completions per example: each row field, plus prompts (as
    TRL gives them: ``chat.reward_prompt``) and the completions' token ids."""
    names = list(examples[0].columns)
    columns = {name: [e.columns.get(name) for e in examples for _ in range(repeat)] for name in names}
    columns["prompts"] = [reward_prompt(e.prompt, e.conversational) for e in examples for _ in range(repeat)]
    columns["completion_ids"] = completion_ids
    return columns


def score_completions(suite, examples: list[Example], texts: list[str], repeat: int,
                      completion_ids: list[list[int]]):
    """The reward suite's scores (a ``RewardBatch``) of ``repeat`` completions per example, each
    given as TRL gives it (``chat.reward_completions``: messages for a conversation's row), with
    the rows' columns (``columns_of``)."""
    columns = columns_of(examples, repeat, completion_ids)
    return suite.score(reward_completions(columns["prompts"], texts), columns)


def arithmetic_problems(cfg: SyntheticConfig, num_eval: int) -> tuple[list[dict], list[dict]]:
    """Deterministic 'a+b=' problems ('07+85=' -> '092' with ``zero_pad``); a fixed tenth of all
    problems (by hash) is held out.

    Each row also carries a ``demonstration``: the answer of a sloppy teacher who, with
    probability ``teacher_error_rate``, adds or subtracts column by column without carrying.
    Cold-start data from an imperfect teacher is what RL with an exact reward then repairs.
    """
    rng = random.Random(cfg.seed)
    train, held_out, seen_eval = [], [], set()
    ops = sorted(set(cfg.operations))
    width = len(str(cfg.max_operand)) if cfg.zero_pad else 0  # 0: no padding
    answer_width = {op: len(str(abs(eval_operation(cfg.max_operand, op, 0 if op == "-" else cfg.max_operand))))
                    if cfg.zero_pad else 0 for op in ops}
    attempts = 0
    while len(train) < cfg.num_train or len(held_out) < num_eval:
        attempts += 1
        if attempts > 50 * (cfg.num_train + num_eval):
            raise RecipeError("data.synthetic: too few distinct problems for num_train/num_eval; "
                              "raise max_operand or add operations")
        a, b, op = rng.randint(0, cfg.max_operand), rng.randint(0, cfg.max_operand), rng.choice(ops)
        question = f"{a:0{width}d}{op}{b:0{width}d}="
        sloppy = rng.random() < cfg.teacher_error_rate
        demonstration = without_carry(a, op, b) if sloppy else eval_operation(a, op, b)
        row = {"question": question, "answer": str(eval_operation(a, op, b)),
               "demonstration": f"{demonstration:0{answer_width[op] + (demonstration < 0)}d}"}
        if is_held_out(question):
            if len(held_out) < num_eval and question not in seen_eval:
                seen_eval.add(question)
                held_out.append(row)
        elif len(train) < cfg.num_train:
            train.append(row)
    return train, held_out


def without_carry(a: int, op: str, b: int) -> int:
    """The column-by-column answer that forgets every carry and borrow.

    >>> without_carry(47, "+", 85), without_carry(52, "-", 17), without_carry(17, "-", 52)
    (22, 45, -45)
    """
    if op == "*":
        return a * b  # the teacher's mistake is about carrying; products stay exact
    if op == "-" and a < b:
        return -without_carry(b, "-", a)
    width = max(len(str(a)), len(str(b)))
    x, y = str(a).zfill(width), str(b).zfill(width)
    column = (lambda p, q: (p + q) % 10) if op == "+" else (lambda p, q: abs(p - q))
    return int("".join(str(column(int(p), int(q))) for p, q in zip(x, y)))


def is_held_out(question: str) -> bool:
    return int(hashlib.sha256(question.encode()).hexdigest(), 16) % 10 == 0


def eval_operation(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


class PromptSampler:
    """Endless seeded batches of examples, reshuffled each epoch; position is resumable."""

    def __init__(self, examples: list[Example], batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1):
        """Each of ``world_size`` processes gets its contiguous share of every global batch of
        ``batch_size`` examples: the same data order, whatever the number of processes."""
        if not examples:
            raise RecipeError("data.source: no training examples")
        if batch_size % world_size:
            raise RecipeError(f"trainer.prompts_per_step: {batch_size} prompts cannot be shared "
                              f"evenly by {world_size} processes")
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self.share = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        self.epoch, self.position, self.draws = 0, 0, 0
        self.order = self.shuffled(0)

    def shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        random.Random(f"{self.seed}-{epoch}").shuffle(order)
        return order

    def next_batch(self) -> list[Example]:
        batch = []
        while len(batch) < self.batch_size:
            if self.position == len(self.order):
                self.epoch, self.position = self.epoch + 1, 0
                self.order = self.shuffled(self.epoch)
            batch.append(self.examples[self.order[self.position]])
            self.position += 1
        self.draws += 1
        return batch[self.share]

    def state(self) -> dict[str, int]:
        """Where the sampler is in the data: what ``restore`` takes."""
        return {"epoch": self.epoch, "position": self.position, "draws": self.draws}

    def restore(self, epoch: int, position: int, draws: int) -> None:
        """Continue from a saved place in the data (global: any number of processes)."""
        self.epoch, self.position, self.draws = epoch, position, draws
        self.order = self.shuffled(epoch)

    def last_seeds(self) -> list[int]:
        """A sampling seed for each prompt of the last batch, from the run's seed, the batch's
        number and the prompt's place in the global batch: a prompt's completions are drawn the
        same way whatever the number of processes (and a resumed run draws them as before)."""
        return [random.Random(f"{self.seed}-{self.draws}-{slot}").getrandbits(31)
                for slot in range(self.share.start, self.share.stop)]

    def __iter__(self) -> Iterator[list[Example]]:
        while True:
            yield self.next_batch()
