r"""``math_accuracy``: is the final answer of a completion equal to the reference answer?

Extraction (``rewards.math_extract``), normalisation and parsing (``rewards.latex_parse``)
and equivalence (``rewards.math_equivalence``) are separate building blocks; this module
wires them into the reward and bounds every input:

- a verdict is a function of (completion, gold) only. The work it may do is bounded before it
  starts (lengths and nesting here, sizes and degrees in the comparison), never by a clock;
- a completion is read in its last ``MAX_READ_CHARS``; an answer longer or nested deeper than
  any real one (``math_equivalence.comparable``) compares to nothing (0.0);
- a gold longer than ``MAX_GOLD_CHARS``, or whose answer is over those bounds, cannot be judged:
  its rows score None (counted as ``unreadable_golds``), never a verdict;
- the CPU-time limit of a verdict (``timeout``) is a last resort for what the budgets miss: a
  row past it scores None and is counted (``verdict_timeouts``), as is a row whose worker died
  (``verdict_crashes``): the reward could not judge it, which is no 0.0 verdict.
"""

from __future__ import annotations

import re

from rewards import tally
from rewards.answer_kinds import extract_choice, extract_words
from rewards.bounded import shared_pool
from rewards.conversation import text_completions
from rewards.math_equivalence import (REL_TOL, answers_equal, comparable, is_word_answer, normalise_gold, quick_verdict,
                                      warm_up)
from rewards.math_extract import DEFAULT_ORDER, extract_answer, gold_answer, is_choice
from rewards.registry import reward

MAX_GOLD_CHARS = 100_000  # the longest worked solution is a few thousand characters
MAX_READ_CHARS = 1_000_000  # a completion is read in its last million characters
VERDICT_CPU_S = 10.0  # the last-resort limit: 100x the slowest verdict of any set we hold


@reward("math_accuracy")
@text_completions
def math_accuracy(completions: list[str], answer: list, extractors: list[str] | None = None,
                  rel_tol: float = REL_TOL, timeout: float = VERDICT_CPU_S, workers: int | None = None,
                  **columns) -> list[float | None]:
    r"""1.0 when the completion's final answer equals the reference ``answer``, else 0.0.

    ``None`` where a row has no gold, or one that cannot be judged. The gold may be a worked
    solution (GSM8K ``#### n``, MATH ``\boxed{}``). ``extractors`` orders how the answer is
    found (see math_extract). Plain numbers are compared here; everything else is parsed in
    ``workers`` processes, each verdict limited to ``timeout`` CPU seconds (past it: None).

    >>> math_accuracy(["7+5=12", "so \\boxed{\\frac{1}{2}}", "the answer is 13."], answer=["12", "0.5", "#### 12"])
    [1.0, 1.0, 0.0]
    """
    if len(answer) != len(completions):
        raise ValueError(f"math_accuracy: {len(completions)} completions but {len(answer)} rows in column "
                         "'answer' (one gold per completion)")
    order = tuple(extractors) if extractors else DEFAULT_ORDER
    scores: list[float | None] = []
    pending: list[tuple[int, tuple]] = []
    for i, (completion, gold) in enumerate(zip(completions, answer)):
        reference = bounded_gold(gold)
        if reference is None:
            scores.append(None)
            continue
        predicted = bounded_prediction(completion, reference, order)
        if predicted is None:
            scores.append(0.0)
            continue
        predicted, reference = option_pair(predicted, reference)
        if predicted is None:
            scores.append(float(reference == "match"))
            continue
        verdict = quick_verdict(predicted, reference, rel_tol)
        scores.append(None if verdict is None else float(verdict))
        if verdict is None:
            pending.append((i, (predicted, reference, rel_tol)))
    if pending:
        mapped = shared_pool(workers, warm_up).map(answers_equal, [args for _, args in pending], timeout, default=False)
        for (i, _), verdict in zip(pending, mapped.results):
            scores[i] = float(verdict)
        for position, key in [(p, "verdict_timeouts") for p in mapped.timed_out] + [(p, "verdict_crashes") for p in mapped.crashed]:
            scores[pending[position][0]] = None
            tally.count(key)
    return scores


_OPTION = re.compile(r"\s*(?:\\(?:textbf|text|mathrm|mathbf)\s*\{\s*)?\(\s*([A-E])\s*\)\s*\}?(?:\s|~|\\[ ,;:!]|\\q?quad)*(.*)", re.S)
_LETTER = re.compile(r"\s*(?:\\(?:textbf|text|mathrm|mathbf)\s*\{)?\s*\(?\s*([A-E])\s*\)?\s*\}?\s*")


def option_pair(predicted: str, reference: str) -> tuple[str | None, str]:
    r"""A multiple-choice gold that gives the option and its value (``\textbf{(B) } 5``): a
    prediction of the letter alone is judged here, (None, "match" or "differs"); one of the
    letter and a value must have both right; a value alone is compared with the value. Any
    other gold: the pair as it is.

    >>> option_pair("B", r"\textbf{(B) } 5"), option_pair(r"\text{(C)}", r"\textbf{(B) } 5"), option_pair("5", "(B) 5")
    ((None, 'match'), (None, 'differs'), ('5', '5'))
    >>> option_pair(r"\textbf{(B)}\ 6", r"\textbf{(B) } 5"), option_pair("(A) 5", "(B) 5")
    (('6', '5'), (None, 'differs'))
    """
    gold = _OPTION.fullmatch(reference)
    if gold is None or not gold.group(2).strip():
        return predicted, reference
    letter, value = gold.group(1), gold.group(2).strip()
    alone = _LETTER.fullmatch(predicted)
    if alone:
        return None, "match" if alone.group(1) == letter else "differs"
    stated = _OPTION.fullmatch(predicted)
    if stated and stated.group(2).strip():
        if stated.group(1) != letter:
            return None, "differs"
        return stated.group(2).strip(), value
    return predicted, value


def bounded_gold(gold) -> str | None:
    """The reference answer of a gold, or None: no gold, or one too long or deep to judge (counted)."""
    if gold is None or not str(gold).strip():
        return None
    text = str(gold)
    reference = gold_answer(text) if len(text) <= MAX_GOLD_CHARS else None
    if reference is None or not comparable(reference):
        tally.count("unreadable_golds")
        return None
    return reference


def bounded_prediction(completion: str, reference: str, order: tuple[str, ...]) -> str | None:
    """The completion's final answer (a letter where the gold is one), or None when it states none
    or one too long or deep to compare."""
    text = completion[-MAX_READ_CHARS:]
    if is_choice(reference):
        predicted = extract_choice(text, order)  # a letter gold reads a letter
    elif is_word_answer(normalise_gold(reference)):
        predicted = extract_words(text, order, normalise_gold(reference))  # a word gold reads words
    else:
        predicted = extract_answer(text, order)
    if predicted is None or not comparable(predicted):
        return None
    return predicted
