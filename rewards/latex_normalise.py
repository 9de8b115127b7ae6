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
           "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big", "\\$", "$", "~", "\\(", "\\)", "\\[", "\\]"]
# longer spellings before their prefixes (\leqslant before \leq)
_REPLACE = {",\\! ": ",", ",\\!": ",", "\\leqslant": "\\le", "\\geqslant": "\\ge", ">=": "\\ge ", "<=": "\\le ", "!=": "\\ne ",
            "\\lt": "<", "\\gt": ">", "≈": "\\approx", "\\dfrac": "\\frac", "\\tfrac": "\\frac",
            "\\cfrac": "\\frac", "€": "", "£": "",
            "¥": "", "\\text{ or }": ",", "\\text{ and }": ",", " or ": ",",
            " and ": ",", "\\text{or}": ",", "\\text{and}": ",", "\\lbrace": "\\{", "\\rbrace": "\\}",
            "\\leq": "\\le", "\\geq": "\\ge", "\\neq": "\\ne", "≤": "\\le", "≥": "\\ge", "≠": "\\ne", "π": "\\pi",
            "∞": "\\infty", "×": "\\times", "÷": "\\div", "√": "\\sqrt", "−": "-", "\\ ": " ",
            "\\to": "\\rightarrow", "\\varnothing": "\\emptyset", "\\lvert": "|", "\\rvert": "|",
            "\\vert": "|", "\\mid": "|", "\\cdotp": "\\cdot", "\\land": ",", "\\emptyset": "\\{\\}",
            "\\langle": "(", "\\rangle": ")", "⟨": "(", "⟩": ")", "…": "\\ldots", "...": "\\ldots",
            "\\dots": "\\ldots", "\\cdots": "\\ldots", "∪": "\\cup ", "∩": "\\cap ", "∈": "\\in ", "∖": "\\setminus ",
            "ℝ": "\\mathbb{R}", "ℤ": "\\mathbb{Z}", "ℕ": "\\mathbb{N}", "ℚ": "\\mathbb{Q}", "∅": "\\{\\}", "·": "\\cdot ",
            "⋅": "\\cdot ", "∣": "|", "±": "\\pm ", "∓": "\\mp ", "∛": "\\sqrt[3]", "∜": "\\sqrt[4]",
            **{glyph: f"\\frac{{{n}}}{{{d}}}" for glyph, (n, d) in zip("½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞", [
                (1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (1, 5), (2, 5), (3, 5), (4, 5), (1, 6), (5, 6), (1, 8), (3, 8),
                (5, 8), (7, 8)])}}
_DEGREES = re.compile(r"\^\s*+\{?\s*+\\circ\s*+\}?|°|\\degree")
_TEXT_BLOCK = re.compile(r"\\(?:text|textrm|mathrm|mbox|operatorname|textnormal)\s*\{([^{}]*)\}")
# what only decorates a value: colours, underlines, bold; a phantom is not seen at all
_DECORATION = re.compile(r"\\(?:textcolor|colorbox)\s*\{[^{}]*\}|\\fcolorbox\s*\{[^{}]*\}\s*\{[^{}]*\}|\\color\s*\{[^{}]*\}"
                         r"|\\[hv]?phantom\s*\{[^{}]*\}")
_FORMATTING = re.compile(r"\\(?:underline|bm|boldsymbol|mathit|mathsf|emph|textbf|textit|mathbf|cancelto\s*\{[^{}]*\})\s*\{([^{}]*)\}")
# a statement of where a formula holds, after it: 'f(n) = n + 1 \text{ for all } n \in \mathbb{N}'
# (every alternative starts on a character that is no space: a long run of spaces costs one pass)
_QUALIFIER = re.compile(r"(?:(?:,\s*+)?\\(?:text|mbox|textrm)\s*+\{\s*+,?\s*+for\b[^{}]*+\}|\\forall\b|,\s*+[a-zA-Z]\s*+\\in\s*+\\mathbb"
                        r"|\(\s*[a-zA-Z]\s*\\in\s*\\mathbb).*$", re.S)  # after an equation only (see without_qualifier)
# unit vectors: 3\mathbf{i} - \mathbf{j} + 2\hat{k}
_UNIT_VECTOR = re.compile(r"\\(?:mathbf|hat|vec|boldsymbol|bm)\s*\{\s*(?:\\hat\s*\{?\s*)?\\?([ijk])(?:math)?\s*\}?\s*\}"
                          r"|\\(?:hat|vec)\s*\\?([ijk])(?:math)?(?![a-zA-Z])")
_MODULUS = re.compile(r"(?<!\s)\s*+(?:\\pmod\s*+\{[^{}]*+\}|\\pmod\s*+\w++|\(\s*+\\?b?mod\s*+\w++\s*+\)|\\b?mod\s*+\w++)\s*+$")  # 3 \pmod{5}
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([-+]?\d{1,4})(?![\w.])")  # 3e8, 3.6e-4, 1.5E3
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
_UNIT_SQUARED = re.compile(r"(?<=\d)\s*+[a-zA-Z]{1,3}[²³]|\s[a-zA-Z]{1,3}[²³]\s*+$")  # 5 m², 2cm³, 4π cm²: units
_PARENTHESISED_CYCLE = re.compile(r"(?<![\d.])(\d*)\.(\d*)\((\d+)\)")  # 0.(3), 0.1(6)
_ELLIPSIS_DECIMAL = re.compile(r"(?<![\d.])(\d*)\.(\d+)\s*\\ldots")
_PLAIN_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_REPEATING = re.compile(r"(?<!\d)(\d*)\.(\d*)\\overline\{(\d+)\}")  # starts where a digit run starts: linear
_ESCAPED_COMMAND = re.compile(
    r"(?<!\\)\\\\(?=(?:frac|dfrac|tfrac|cfrac|sqrt|left|right|le|ge|leq|geq|neq|ne|lt|gt|boxed|begin|end|pi|"
    r"cdot|times|text|mathrm|mathbf|infty|in|cup|cap|pm|mp|circ|sin|cos|tan|log|ln|quad|qquad|approx|"
    r"mathbb|div|dots|ldots|sum|prod|alpha|beta|gamma|theta|lambda|mu|sigma|omega|phi)(?![a-zA-Z]))")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:\\text\{\s*)?(?:([AaPp])\.?\s*[Mm]\.?)?\s*\}?")
_TRIG = re.compile(r"(?<![A-Za-z])\\?(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])")
_GLUED_OR = re.compile(r"(?<=[)\]])\s*or\s*(?=[(\[])")
_SIMPLE_SUBSCRIPT = re.compile(r"_\{(\w+)\}")
# a whole number (maybe grouped by spaces), a space, a fraction: 3 1/4, 1 000 4/9 (not 11.0 4/9)
_MIXED_NUMBER = re.compile(r"(?<![\w.,/}])(-?)(\d{1,3}(?: \d{3})++|\d++) ++(\d++)/(\d++)(?![\w./])")
_WHOLE_FRACTION = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}|(-?)\\frac(\d)(\d)")
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
    if _PLAIN_NUMBER.fullmatch(answer):
        return answer.strip()  # most answers: nothing to rewrite
    try:
        return rewritten(answer)
    except ValueError:  # a number too long for int() (over 4,300 digits): no answer to compare
        return "\\invalid"


def rewritten(answer: str) -> str:
    s = _ESCAPED_COMMAND.sub(r"\\", answer.strip())  # '\\frac' from a twice-escaped string
    s = _UNIT_SQUARED.sub("", s)  # 5 m², 2 cm³, 4π cm²: units
    s = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + m.group().translate(_SUPERSCRIPTS) + "}", s)  # 3² is 3^{2}
    s = _UNIT_VECTOR.sub(lambda m: f"\\unitvector{m.group(1) or m.group(2)} ", s)
    s = _DECORATION.sub("", s)
    while _FORMATTING.search(s):  # innermost first: \text{\textbf{37}}
        s = _FORMATTING.sub(r"\1", s)
    s = without_qualifier(_MODULUS.sub("", s))
    s = canonical_time(s).replace("\\\\", " \\cr ")  # row breaks, before '\ ' is read as a space
    for old, new in _REPLACE.items():
        s = s.replace(old, new)
    for token in _REMOVE:
        s = s.replace(token, "")
    s = _GLUED_OR.sub(",", s)
    s = re.sub(r"\{\s*,\s*\}", "", degrees(s).replace("\\%", "").replace("%", ""))
    s = re.sub(r"^(?:\\approx|\\sim)\s*", "", s.strip())
    s = _REPEATING.sub(repeating_decimal, s)
    s = _PARENTHESISED_CYCLE.sub(lambda m: repeating_decimal_text(m.group(1) or "0", m.group(2), m.group(3)), s)
    s = _ELLIPSIS_DECIMAL.sub(decimal_with_ellipsis, s)
    s = _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times10^{{{m.group(2)}}}", s)
    s = _SIMPLE_SUBSCRIPT.sub(r"_\1", s)
    s = _MIXED_NUMBER.sub(mixed_number, s)
    s = strip_text_blocks(s).strip()
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?:,\s*)+,", ",", s).strip().rstrip(".;,:").strip()
    if _THOUSANDS.fullmatch(s) or re.fullmatch(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "").replace(" ", "")
    fraction = _WHOLE_FRACTION.fullmatch(s)  # '\frac{1}{2}' -> '1/2': a plain number, no parse needed
    if fraction:
        sign, numerator, denominator = (g for g in fraction.groups() if g is not None)
        s = f"{sign}{numerator}/{denominator}"
    return drop_trailing_words(unbraced(s))


def unbraced(s: str) -> str:
    """An answer without braces around all of it: ``{37}`` is 37."""
    while s.startswith("{") and s.endswith("}") and balanced(s[1:-1]):
        s = s[1:-1].strip()
    return s


def balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def canonical_time(s: str) -> str:
    """'08:34 P.M.' and '20:34:00' -> '20:34'; anything else unchanged."""
    found = _TIME.fullmatch(s)
    if not found:
        return s
    hours, minutes, seconds, half = found.groups()
    if not (seconds or half):
        return s
    hours = int(hours) % 12 + (12 if half and half.lower() == "p" else 0) if half else int(hours)
    return f"{hours:02d}:{minutes}"


def degrees(s: str) -> str:
    r"""Degree marks: an angle inside a trig function becomes radians, elsewhere the mark goes."""
    if _TRIG.search(s):
        s = _DEGREE_NUMBER.sub(r"{(\1\\cdot\\frac{\\pi}{180})}", s)  # sin 75° takes all of 75°
        return _DEGREES.sub(r"\\cdot\\frac{\\pi}{180}", s)
    return _DEGREES.sub("", s)


_DEGREE_NUMBER = re.compile(r"(?<![\d.])(\d++(?:\.\d++)?)\s*+(?:\^\s*+\{?\s*+\\circ\s*+\}?|°|\\degree)")


def mixed_number(match: re.Match) -> str:
    r"""'3 1/4' -> '\frac{13}{4}'; a fraction part that is not proper makes no number."""
    sign, whole, numerator, denominator = match.groups()
    whole, numerator, denominator = int(whole.replace(" ", "").replace(",", "")), int(numerator), int(denominator)
    if not 0 <= numerator < denominator:
        return "\\invalid"
    return f"{sign}\\frac{{{whole * denominator + numerator}}}{{{denominator}}}"


_ONE_LETTER_UNITS = {"A", "V", "W", "J", "N", "K", "C", "F", "H", "T", "Ω", "m", "s", "g", "L"}


def drop_trailing_words(s: str) -> str:
    """'12 apples' -> '12', '5 square feet' -> '5', '10weeks' -> '10': words after a number are units."""
    glued = re.fullmatch(r"(-?\d[\d.,]*)([a-zA-Z]{3,})", s)
    if glued:
        return glued.group(1)
    parts = s.split(" ")
    end = len(parts)
    if end > 1 and parts[-1] in _ONE_LETTER_UNITS and re.fullmatch(r"-?[\d.,]+", parts[-2]):
        end -= 1  # '5 A', '3 V', '2 s': a unit after a number
    while end > 1 and re.fullmatch(r"[a-zA-Z]{2,}\.?(?:\^\d)?", parts[end - 1]):
        end -= 1
    if end < len(parts) and re.search(r"[\d}]$", parts[end - 1]):
        return " ".join(parts[:end])
    return s


def without_qualifier(s: str) -> str:
    r"""An equation without the statement of where it holds: ``f(n) = n + 1 \text{ for all } n``
    and ``f(x) = 2x, x \in \mathbb{R}`` state ``f(n) = n + 1`` and ``f(x) = 2x``."""
    found = _QUALIFIER.search(s)
    return s[:found.start()].rstrip() if found and "=" in s[:found.start()] else s


def decimal_with_ellipsis(match: re.Match) -> str:
    r"""``0.333\ldots`` -> ``\frac{1}{3}``, ``0.1666\ldots`` -> ``\frac{1}{6}``: digits whose last cycle
    shows at least twice (three times for one digit) repeat it; other digits before an ellipsis
    (``3.14159\ldots``) are a truncated decimal, written without it.

    >>> [decimal_with_ellipsis(_ELLIPSIS_DECIMAL.search(s)) for s in (r"0.333\ldots", r"0.142857142857\ldots", r"3.14159\ldots")]
    ['\\frac{1}{3}', '\\frac{1}{7}', '3.14159']
    """
    whole, digits = match.group(1) or "0", match.group(2)
    for length in range(1, len(digits) // 2 + 1):
        cycle = digits[-length:]
        repeats = 3 if length == 1 else 2
        if len(digits) >= repeats * length and digits.endswith(cycle * repeats):
            fixed = digits[:-repeats * length]
            while fixed and fixed[-1] == cycle[-1]:  # 0.1666: '1' fixed, '6' repeating
                fixed, cycle = fixed[:-1], cycle[-1] + cycle[:-1]
            return repeating_decimal_text(whole, fixed, cycle)
    return f"{whole}.{digits}"


def repeating_decimal_text(whole: str, fixed: str, cycle: str) -> str:
    value = Rational(f"{whole}.{fixed}" if fixed else whole)
    value += Rational(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.p}}}{{{value.q}}}"


def repeating_decimal(match: re.Match) -> str:
    r"""``0.1\overline{6}`` -> ``\frac{1}{6}`` (exact)."""
    whole, fixed, cycle = match.group(1) or "0", match.group(2), match.group(3)
    value = Rational(f"{whole}.{fixed}" if fixed else whole)
    value += Rational(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.p}}}{{{value.q}}}"


_NEGATION = re.compile(r"\b(?:not|never|no|none|neither|nor|isn't|cannot)\b", re.I)


def strip_text_blocks(s: str) -> str:
    r"""Unwrap ``\text{...}`` when it is the whole answer; drop it when it is a unit."""
    blocks = _TEXT_BLOCK.findall(s)
    if not blocks:
        return s
    rest = _TEXT_BLOCK.sub("", s)
    if re.search(r"[0-9a-zA-Z\\]", rest.replace("^2", "").replace("^3", "")):
        if any(_NEGATION.search(block) for block in blocks):
            return "\\negated"  # '\text{not } 84' answers nothing: no parse reads it
        # beside a value, a text block is a unit ('-4^\circ\text{C}', '5\text{ A}'), unless it is a
        # choice in parentheses ('\text{(B)} 5')
        kept = _TEXT_BLOCK.sub(lambda m: m.group(1) if re.fullmatch(r"\s*\(\s*[A-Ea-e]\s*\)\s*", m.group(1))
                               else " ", s)
        return re.sub(r"\^\s*\{?[23]\}?\s*$", "", kept.strip())
    return _TEXT_BLOCK.sub(lambda m: m.group(1), s)
