r"""The first, linear-time step of comparing two answers: the ways a pair may be read (a percent
sign on one side, a decimal comma), and the verdicts plain strings settle without parsing (equal
after normalisation, plain numbers and lists of them, words).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from rewards.latex_normalise import normalise
from rewards.latex_objects import Decimals
from rewards.math_numbers import REL_TOL, same_set, tolerance  # noqa: F401  (REL_TOL: the doctests)


MAX_QUICK_ITEMS = 64  # longer lists of numbers are compared in the worker pool


# a percent sign at the end (searched, not matched from the start: no backtracking over the body)
_PERCENT = re.compile(r"(?:\\%|%|\\text\{\s*\\?%\s*\}|(?<![A-Za-z])(?:percent(?:age)?|pct))\s*+\$?\.?\s*+$", re.I)


_BASE_NUMERAL = re.compile(r"^([0-9A-Fa-f]+)_\{?\d+\}?$")


_PLAIN_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")


def readings(predicted: str, gold: str) -> list[tuple[str, str]]:
    """The (predicted, gold) pairs to compare: one, or two when one side has a percent sign
    (28% is 0.28, and also 28 where the gold writes the bare number), and each also with a
    decimal comma read as a point where it cannot group thousands (``1000,99``, ``0,111``)."""
    pairs = percent_readings(predicted, gold)
    return pairs + [(decimal_point(p), decimal_point(g)) for p, g in pairs
                    if (decimal_point(p), decimal_point(g)) != (p, g)]


_DECIMAL_COMMA = re.compile(r"\s*(-?(?:0|[1-9]\d*)),(\d+)\s*")


def decimal_point(answer: str) -> str:
    """``1000,99`` -> ``1000.99`` and ``0,111`` -> ``0.111``: a comma that cannot separate thousands
    (not three digits after it, or a zero before it); anything else unchanged."""
    found = _DECIMAL_COMMA.fullmatch(answer)
    if found and (len(found.group(2)) != 3 or found.group(1) in ("0", "-0")):
        return f"{found.group(1)}.{found.group(2)}"
    return answer


def percent_readings(predicted: str, gold: str) -> list[tuple[str, str]]:
    p_body, p_percent = split_percent(predicted)
    g_body, g_percent = split_percent(gold)
    if p_percent == g_percent:
        return [(p_body, g_body)]
    if p_percent:
        bare_gold = bool(_PLAIN_DECIMAL.fullmatch(normalise_gold(gold)))
        return [(hundredth(p_body), gold)] + ([(p_body, gold)] if bare_gold else [])
    return [(predicted, g_body), (predicted, hundredth(g_body))]


def hundredth(answer: str) -> str:
    """``answer / 100``, as a plain fraction when the answer is a plain number."""
    plain = normalise(answer)
    if _PLAIN_NUMBER.fullmatch(plain):
        try:
            value = Fraction(plain) / 100
            return f"{value.numerator}/{value.denominator}"
        except (ValueError, ZeroDivisionError):
            pass
    return f"\\frac{{{answer}}}{{100}}"


def plain_verdict(p: str, g: str, rel_tol: float) -> bool | None:
    if p == g or _BASE_NUMERAL.sub(r"\1", p) == _BASE_NUMERAL.sub(r"\1", g):  # 1011 for 1011_2
        return True
    if is_word_answer(g):
        return words_equal(p, g)
    return compare_plain_numbers(p, g, rel_tol)


_WORD_ANSWER = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]+){0,3}")


_MATH_WORDS = {"pi", "inf", "infty", "infinity", "sin", "cos", "tan", "log", "ln", "exp", "sqrt", "frac", "and", "or"}


_FILLERS = {"a", "an", "the", "function", "number", "integer", "value", "answer", "option", "choice", "one"}


def is_word_answer(gold: str) -> bool:
    """A gold of a few words (``Tuesday``, ``No``, ``even``, ``neither``), not math spelt in letters."""
    return _WORD_ANSWER.fullmatch(gold) is not None and not set(gold.lower().split()) & _MATH_WORDS


def words_equal(predicted: str, gold: str) -> bool:
    """The same words, whatever the case, markdown, articles or a generic noun (``an even function``
    is ``even``); ``neither ... nor ...`` is ``neither``; a negation is a word like any other.

    >>> words_equal("**Tuesday**", "Tuesday"), words_equal("an even function", "even"), words_equal("not even", "even")
    (True, True, False)
    """
    def content(text: str) -> list[str]:
        words = [w for w in re.findall(r"[a-z]+", text.lower()) if w not in _FILLERS and w not in ("text", "textbf", "mathrm")]
        return words[:1] if words[:1] == ["neither"] else words
    return bool(content(gold)) and content(predicted) == content(gold)


def split_percent(answer: str) -> tuple[str, bool]:
    """('28', True) for '28%', '28\\%', '28 percent'; (answer, False) without a percent sign."""
    if "%" not in answer and "p" not in answer.lower():
        return answer, False
    found = _PERCENT.search(answer)
    body = answer[:found.start()].strip().strip("$").strip() if found else ""
    return (body, True) if body else (answer, False)


@functools.lru_cache(maxsize=65536)
def normalise_gold(gold: str) -> str:
    return normalise(gold)


def compare_plain_numbers(p: str, g: str, rel_tol: float) -> bool | None:
    """The comparison of plain numbers, or of comma lists of them (as sets, like the full
    comparison's solution lists); None when either side is anything else.

    >>> compare_plain_numbers("10, 4, -2", "4, 10, -2", REL_TOL), compare_plain_numbers("2", "4, 2", REL_TOL)
    (True, False)
    """
    p_items, g_items = p.split(","), g.split(",")
    if len(p_items) + len(g_items) > MAX_QUICK_ITEMS or not all(
            _PLAIN_NUMBER.fullmatch(item.strip()) for item in p_items + g_items):
        return None
    try:
        a, b = [Fraction(x.strip()) for x in p_items], [Fraction(y.strip()) for y in g_items]
    except (ZeroDivisionError, ValueError):  # "3/0", "1.5/2": the full comparison decides
        return None
    return same_set(a, b, tolerance(written(p_items), written(g_items), rel_tol).rationals)


def written(numbers: list[str]) -> Decimals:
    """The decimals a list of plain numbers writes, as the parser counts them."""
    found = Decimals()
    for number in numbers:
        decimal = re.search(r"\d*\.\d*", number)
        found = found.merge(Decimals.of(decimal.group())) if decimal else found
    return found
