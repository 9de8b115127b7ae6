"""``math_accuracy``: is the final answer of a completion equal to the reference answer?

This first version extracts the answer (``\\boxed{}``, ``#### n``, ``<answer>`` tags,
``The answer is``, else the last number) and compares numbers exactly (as fractions)
or, failing that, normalised strings. Symbolic equivalence comes with the full verifier.
"""

from __future__ import annotations

import re
from fractions import Fraction

from rewards.registry import reward

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_MARKERS = [
    re.compile(r"####\s*(.+)"),
    re.compile(r"<answer>(.*?)</answer>", re.S),
    re.compile(r"(?:final answer|the answer is|answer:)\s*:?\s*(.+)", re.I),
]


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` or ``\fbox{...}``, nested braces included.

    >>> last_boxed(r"so \boxed{\frac{1}{2}} and \boxed{3}")
    '3'
    """
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer a completion commits to, or None.

    >>> extract_answer("47+85=132")
    '132'
    >>> extract_answer("so #### 1,000")
    '1,000'
    """
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for marker in _MARKERS:
        found = marker.findall(text)
        if found:
            return found[-1].strip().splitlines()[0].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def normalise(answer: str) -> str:
    r"""Drop what does not change the value: dollars, spaces, ``\left``, trailing dots.

    >>> normalise(r"$\dfrac{3}{4}$.")
    '3/4'
    """
    s = answer.strip().rstrip(".").replace("$", "").replace("\\!", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("dfrac", "frac").replace("tfrac", "frac")
    s = re.sub(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", r"\1/\2", s)
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    return re.sub(r"\s+", "", s)


def as_number(s: str) -> Fraction | None:
    if not re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?", s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str, gold: str) -> bool:
    """Equal as exact numbers, else as normalised strings.

    >>> answers_match("0.5", r"\\frac{1}{2}")
    True
    >>> answers_match("12", "21")
    False
    """
    p, g = normalise(predicted), normalise(gold)
    p_num, g_num = as_number(p), as_number(g)
    if p_num is not None and g_num is not None:
        return p_num == g_num
    return p == g


def gold_answer_of(gold) -> str | None:
    r"""The reference answer: extracted from a worked solution, else the gold as written.

    >>> gold_answer_of("She sells 3 a day. #### 72"), gold_answer_of(r"\frac{3}{4}")
    ('72', '\\frac{3}{4}')
    """
    if gold is None or not str(gold).strip():
        return None
    text = str(gold)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip()
    return text.strip()


@reward("math_accuracy")
def math_accuracy(completions: list[str], answer: list[str], **columns) -> list[float | None]:
    """1.0 when the completion's final answer equals ``answer``, else 0.0; None without a gold.

    The gold may itself be a worked solution (GSM8K ``#### n``, MATH ``\\boxed{}``).

    >>> math_accuracy(["7+5=12", "7+5=13", "the answer is 12."], answer=["12", "12", "#### 12"])
    [1.0, 0.0, 1.0]
    """
    scores: list[float | None] = []
    for completion, gold in zip(completions, answer):
        gold_answer = gold_answer_of(gold)
        if gold_answer is None:
            scores.append(None)
            continue
        predicted = extract_answer(completion)
        scores.append(float(predicted is not None and answers_match(predicted, gold_answer)))
    return scores
