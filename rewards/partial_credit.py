"""Partial credit for integer answers: the share of digits in the right place.

An exact-answer reward gives a group no signal when every sample is wrong, and a small model that
never samples the right carry on a problem then never learns it. Per-digit credit still ranks
``141`` above ``131`` for 140, so the group's advantages point at the digit to fix. Use it beside
``math_accuracy`` with a smaller weight, so that only the exact answer earns full reward.
"""

from __future__ import annotations

import re

from rewards.conversation import text_completions
from rewards.math_extract import extract_answer
from rewards.registry import RewardError, reward

_INTEGER = re.compile(r"-?\d+")


@reward("digit_match")
@text_completions
def digit_match(completions: list[str], answer: list | None = None, **columns) -> list[float | None]:
    """Digits of the completion's final answer in the right place (aligned from the units, leading
    zeros dropped), over the longer of the two numbers; a wrong sign or a non-integer answer scores 0.0, a row whose
    gold is no integer ``None``.

    >>> digit_match(["140", "141", "so 131", "40", "1400", "-140", "x"], answer=["140"] * 7)
    [1.0, 0.6666666666666666, 0.3333333333333333, 0.6666666666666666, 0.25, 0.0, 0.0]
    """
    if answer is None:
        raise RewardError("digit_match needs the column answer (the integer it compares digits with)")
    scores: list[float | None] = []
    for completion, gold in zip(completions, answer):
        gold_text = str(gold).strip().replace(",", "")
        if not _INTEGER.fullmatch(gold_text):
            scores.append(None)
            continue
        found = extract_answer(completion)
        predicted = found.strip().replace(",", "") if found else ""
        scores.append(digits_in_place(predicted, gold_text) if _INTEGER.fullmatch(predicted) else 0.0)
    return scores


def digits_in_place(predicted: str, gold: str) -> float:
    if predicted.startswith("-") != gold.startswith("-"):
        return 0.0
    p, g = (text.lstrip("-").lstrip("0") or "0" for text in (predicted, gold))  # "092" is 92
    same = sum(a == b for a, b in zip(reversed(p), reversed(g)))
    return same / max(len(p), len(g))
