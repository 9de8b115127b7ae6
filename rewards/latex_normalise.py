r"""Rewrite a LaTeX answer into the plain form the parser reads.

Drops what never changes the value (``\left``, spacing, dollars, degrees, percent signs, units
in ``\text{}`` or as trailing words, thousands separators, trailing punctuation) and unifies
spellings (``\dfrac`` -> ``\frac``, ``\leq`` -> ``\le``, unicode symbols -> commands).
Every step is linear in the length of the answer.
"""

from __future__ import annotations

import re

from sympy import Rational

_REMOVE = ["\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "\\quad", "\\qquad",
           "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big", "\\$", "$", "~"]
_REPLACE = {"\\dfrac": "\\frac", "\\tfrac": "\\frac", "\\cfrac": "\\frac", "€": "", "£": "",
            "¥": "", "²": "", "³": "", "\\text{ or }": ",", "\\text{ and }": ",", " or ": ",",
            " and ": ",", "\\text{or}": ",", "\\text{and}": ",", "\\lbrace": "\\{", "\\rbrace": "\\}",
            "\\leq": "\\le", "\\geq": "\\ge", "\\neq": "\\ne", "\\leqslant": "\\le",
            "\\geqslant": "\\ge", "≤": "\\le", "≥": "\\ge", "≠": "\\ne", "π": "\\pi",
            "∞": "\\infty", "×": "\\times", "÷": "\\div", "√": "\\sqrt", "−": "-", "\\ ": " ",
            "\\to": "\\rightarrow", "\\varnothing": "\\emptyset", "\\lvert": "|", "\\rvert": "|",
            "\\vert": "|", "\\mid": "|", "\\cdotp": "\\cdot", "\\land": ",", "\\emptyset": "\\{\\}"}
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_TEXT_BLOCK = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname|textnormal)\s*\{([^{}]*)\}")
_REPEATING = re.compile(r"(\d*)\.(\d*)\\overline\{(\d+)\}")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def normalise(answer: str) -> str:
    r"""Rewrite an answer into the form the parser reads; drops units, dollars, degrees.

    >>> normalise(r"\$1{,}000.")
    '1000'
    >>> normalise(r"\left( 3, \infty \right)")
    '( 3, \\infty )'
    >>> normalise(r"5\text{ cm}^2"), normalise(r"\text{Evelyn}"), normalise("12 apples")
    ('5', 'Evelyn', '12')
    """
    s = answer.strip().replace("\\\\", " \\cr ")  # row breaks, before '\ ' is read as a space
    for old, new in _REPLACE.items():
        s = s.replace(old, new)
    for token in _REMOVE:
        s = s.replace(token, "")
    s = _DEGREES.sub("", s).replace("\\%", "").replace("%", "").replace("{,}", "")
    s = re.sub(r"^(?:\\approx|≈|\\sim)\s*", "", s.strip())
    s = _REPEATING.sub(repeating_decimal, s)
    s = strip_text_blocks(s).strip()
    s = re.sub(r"\s+", " ", s).strip().rstrip(".;,:").strip()
    if _THOUSANDS.fullmatch(s) or re.fullmatch(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "").replace(" ", "")
    return drop_trailing_words(s)


def drop_trailing_words(s: str) -> str:
    """'12 apples' -> '12', '5 square feet' -> '5': words after a number are units."""
    parts = s.split(" ")
    end = len(parts)
    while end > 1 and re.fullmatch(r"[a-zA-Z]{2,}\.?(?:\^\d)?", parts[end - 1]):
        end -= 1
    if end < len(parts) and re.search(r"[\d}]$", parts[end - 1]):
        return " ".join(parts[:end])
    return s


def repeating_decimal(match: re.Match) -> str:
    r"""``0.1\overline{6}`` -> ``\frac{1}{6}`` (exact)."""
    whole, fixed, cycle = match.group(1) or "0", match.group(2), match.group(3)
    value = Rational(f"{whole}.{fixed}" if fixed else whole)
    value += Rational(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.p}}}{{{value.q}}}"


def strip_text_blocks(s: str) -> str:
    r"""Unwrap ``\text{...}`` when it is the whole answer; drop it when it is a unit."""
    blocks = _TEXT_BLOCK.findall(s)
    if not blocks:
        return s
    rest = _TEXT_BLOCK.sub("", s)
    if re.search(r"[0-9a-zA-Z\\]", rest.replace("^2", "").replace("^3", "")):
        kept = _TEXT_BLOCK.sub(lambda m: m.group(1) if re.fullmatch(r"\s*\(?[A-Ea-e]\)?\s*", m.group(1))
                               else " ", s)
        return re.sub(r"\^\s*\{?[23]\}?\s*$", "", kept.strip())
    return _TEXT_BLOCK.sub(lambda m: m.group(1), s)
