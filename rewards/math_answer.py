r"""``math_accuracy``: is the final answer of a completion equal to the reference answer?

Extraction (``rewards.math_extract``), normalisation and parsing (``rewards.latex_parse``)
and equivalence (``rewards.math_equivalence``) are separate building blocks; this module
wires them into the reward.
"""

from __future__ import annotations

from rewards.bounded import shared_pool
from rewards.conversation import text_completions
from rewards.math_equivalence import REL_TOL, answers_equal, quick_verdict
from rewards.math_extract import DEFAULT_ORDER, extract_answer, extract_choice, gold_answer, is_choice
from rewards.registry import reward

MAX_ANSWER_CHARS = 1000  # no real final answer is longer; longer ones are judged wrong unread


@reward("math_accuracy")
@text_completions
def math_accuracy(completions: list[str], answer: list, extractors: list[str] | None = None,
                  rel_tol: float = REL_TOL, timeout: float = 1.0, workers: int | None = None,
                  **columns) -> list[float | None]:
    r"""1.0 when the completion's final answer equals the reference ``answer``, else 0.0.

    ``None`` where a row has no gold. The gold may be a worked solution (GSM8K ``#### n``,
    MATH ``\boxed{}``). ``extractors`` orders how the answer is found (see math_extract).
    Plain numbers are compared here; everything else is parsed in ``workers`` processes,
    each verdict bounded by ``timeout`` seconds (past it the answer is judged wrong).

    >>> math_accuracy(["7+5=12", "so \\boxed{\\frac{1}{2}}", "the answer is 13."], answer=["12", "0.5", "#### 12"])
    [1.0, 1.0, 0.0]
    """
    order = tuple(extractors) if extractors else DEFAULT_ORDER
    scores: list[float | None] = []
    pending: list[tuple[int, tuple]] = []
    for i, (completion, gold) in enumerate(zip(completions, answer)):
        reference = gold_answer(gold)
        if reference is None:
            scores.append(None)
            continue
        extract = extract_choice if is_choice(reference) else extract_answer  # a letter gold reads a letter
        predicted = extract(completion, order)
        if predicted is None or len(predicted) > MAX_ANSWER_CHARS:
            scores.append(0.0)
            continue
        verdict = quick_verdict(predicted, reference, rel_tol)
        scores.append(None if verdict is None else float(verdict))
        if verdict is None:
            pending.append((i, (predicted, reference, rel_tol)))
    if pending:
        pool = shared_pool(workers)
        verdicts = pool.map(answers_equal, [args for _, args in pending], timeout, default=False)
        for (i, _), verdict in zip(pending, verdicts):
            scores[i] = float(verdict)
    return scores
