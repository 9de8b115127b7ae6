"""Standard evaluation sets for `rlreason eval --dataset`: where each lives, its columns, its prompt.

A set is named (``gsm8k``, ``math500``, ``humaneval``: loaded from the hub) or given as a local
file, whose set is recognised by its columns (the shared GSM8K / MATH-500 / HumanEval files).
Either way the recipe's ``data`` section is pointed at it; the model, rewards and rollout
settings stay the recipe's.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from rlreason.data import FILE_FORMATS, load_rows
from rlreason.recipe import Recipe, RecipeError

# Qwen2.5-Math's chain-of-thought prompt, the one the MATH-500 / GSM8K numbers of R1-style
# papers (DeepSeek-R1, open-r1, SimpleRL-Zoo) are reported with; math_accuracy reads \boxed{}.
MATH_TEMPLATE = "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{{}}."


@dataclass(frozen=True)
class EvalSet:
    hub: str  # dataset id on the hub
    subset: str | None  # its configuration, where it has several
    split: str
    prompt_column: str
    answer_column: str  # the reference: GSM8K's worked solution ends in '#### n'; HumanEval's is code
    prompt_template: str
    columns: frozenset[str]  # the columns that tell a local file of this set


EVAL_SETS = {
    "gsm8k": EvalSet("openai/gsm8k", "main", "test", "question", "answer", MATH_TEMPLATE,
                     frozenset({"question", "answer"})),
    "math500": EvalSet("HuggingFaceH4/MATH-500", None, "test", "problem", "answer", MATH_TEMPLATE,
                       frozenset({"problem", "solution", "answer"})),
    # the completion continues the function whose signature and docstring the prompt ends with;
    # code_accuracy puts the prompt in front of it and runs the row's check(candidate)
    "humaneval": EvalSet("openai/openai_humaneval", None, "test", "prompt", "canonical_solution", "{prompt}",
                         frozenset({"prompt", "test", "entry_point"})),
}


def recognised(path: Path) -> str:
    """The set a local file holds, told by the columns of its rows."""
    if path.suffix not in FILE_FORMATS:
        raise RecipeError(f"--dataset {path}: not a {'/'.join(FILE_FORMATS)} file, nor one of "
                          f"{', '.join(EVAL_SETS)}")
    if not path.is_file():
        raise RecipeError(f"--dataset {path}: no such file")
    rows = load_rows(str(path), "train", "--dataset")
    if not rows:
        raise RecipeError(f"--dataset {path}: the file holds no rows")
    columns = set(rows[0])
    matches = [name for name, s in EVAL_SETS.items() if s.columns <= columns]
    if not matches:
        raise RecipeError(f"--dataset {path}: columns {', '.join(sorted(columns))} are none of "
                          + "; ".join(f"{name} ({', '.join(sorted(s.columns))})" for name, s in EVAL_SETS.items())
                          + ". For other data set data.eval_source and its columns in the recipe")
    return max(matches, key=lambda name: len(EVAL_SETS[name].columns))  # the most specific


def with_eval_set(recipe: Recipe, dataset: str, split: str | None = None, limit: int | None = None,
                  keep_template: bool = False) -> tuple[Recipe, str]:
    """The recipe evaluating on ``dataset`` (a set's name or a local file); returns it and the
    set's name. ``keep_template``: prompts use the recipe's ``data.prompt_template`` (e.g. the
    R1 template a model was trained with) instead of the set's own. A recipe for a chat model
    (``data.chat_template: true``, or a system prompt or template switches) has each problem
    rendered as a user turn of the model's chat template; a run trained on conversations records
    ``chat_template: true`` in its config.yaml, so evaluating the run does too."""
    if dataset in EVAL_SETS:
        name, source, subset = dataset, EVAL_SETS[dataset].hub, EVAL_SETS[dataset].subset
    else:
        path = Path(dataset).expanduser()
        name, source, subset = recognised(path), str(path), None
    chosen = EVAL_SETS[name]
    chat = recipe.data.chat_template
    if chat == "auto" and (recipe.data.system_prompt or recipe.data.chat_template_kwargs):
        chat = True  # the recipe talks to a chat model: the set's text problems become user turns
    data = dataclasses.replace(
        recipe.data, chat_template=chat, eval_source=source, eval_subset=subset, eval_split=split or chosen.split,
        prompt_column=chosen.prompt_column, answer_column=chosen.answer_column,
        prompt_template=recipe.data.prompt_template if keep_template else chosen.prompt_template,
        num_eval=limit or sys.maxsize)
    return dataclasses.replace(recipe, data=data), name
