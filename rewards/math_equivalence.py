r"""Are two answers the same mathematical object?

``answers_equal(predicted, gold)`` compares extracted answers (LaTeX strings):

0. a percent on one side only: ``28%`` is ``0.28``, and ``28`` where the gold is the bare number;
1. equal after normalisation, or equal as plain numbers (the quick path, no sympy; it is the
   first step of the full comparison, so the two never disagree);
2. multiple-choice letters (``(B)`` = ``B`` = ``\text{(B)}``);
3. otherwise both are parsed (gold parses are cached) and compared structurally:
   numbers exactly (see ``tolerance`` for decimals); expressions by exact difference then seeded
   numeric spot checks; tuples in order and never equal to a set; sets, solution lists and
   ``\pm`` as sets; intervals and unions by endpoints; inequalities and chains against intervals;
   equations up to a constant factor; matrices entry by entry; ``name = value`` (``x = 5``,
   ``(p,q) = (3,2)``, ``|AB| = 1``) against the value; lists of assignments name by name.
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction

import sympy

from rewards.latex_normalise import normalise
from rewards.latex_objects import MAX_SUM_TERMS, Chain, Decimals, ParseError, Seq, Text, as_set, relation
from rewards.latex_parse import parse_answer, pm_values, top_level_equals
from rewards.latex_spans import nesting_depth

REL_TOL = 1e-9   # numeric checks where a decimal is written inside an expression (decimals are exact)
EXACT_TOL = 1e-12  # between exact expressions, compared numerically

APPROX_DIGITS = 4  # see tolerance()
MAX_QUICK_ITEMS = 64  # longer lists of numbers are compared in the worker pool
MAX_EXACT_DEGREE = 200  # rational functions up to this degree are spot-checked exactly

# a percent sign at the end (searched, not matched from the start: no backtracking over the body)
_PERCENT = re.compile(r"(?:\\%|%|\\text\{\s*\\?%\s*\}|(?<![A-Za-z])(?:percent(?:age)?|pct))\s*\$?\.?\s*$", re.I)
_BASE_NUMERAL = re.compile(r"^([0-9A-Fa-f]+)_\{?\d+\}?$")
_PLAIN_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")
_CHOICE = re.compile(r"\(\s*([A-Ea-e])\s*\)|([A-E])")  # gold 'e' alone is Euler's number
_PRED_CHOICE = re.compile(r"\(?\s*([A-Ea-e])\s*\)?")


def answers_equal(predicted: str, gold: str, rel_tol: float = REL_TOL) -> bool:
    """Verdict for one (predicted, gold) pair of extracted answers.

    >>> answers_equal("0.5", r"\\frac{1}{2}"), answers_equal("(x+1)^2", "x^2+2x+1")
    (True, True)
    >>> answers_equal(r"(3, \\infty)", "x > 3"), answers_equal(r"[3, \\infty)", "x > 3")
    (True, False)
    >>> answers_equal(r"28\\%", "28"), answers_equal("28%", "0.28"), answers_equal("4 4/9%", "40/9")
    (True, True, False)
    """
    if not (comparable(predicted) and comparable(gold)):
        return False
    return any(same_answer(p, g, rel_tol) for p, g in readings(predicted, gold))


MAX_ANSWER_CHARS = 5_000  # no real final answer is longer (80 square roots take 1,000)
MAX_NESTING = 500  # brackets and braces deeper than this are no answer to compare


def comparable(answer: str) -> bool:
    """An answer within the bounds every comparison assumes: longer or deeper ones equal nothing."""
    return len(answer) <= MAX_ANSWER_CHARS and nesting_depth(answer) <= MAX_NESTING


def quick_verdict(predicted: str, gold: str, rel_tol: float = REL_TOL) -> bool | None:
    """The verdict of the first, linear-time step of ``answers_equal`` (normalised strings, plain
    numbers) when that step decides every reading of the pair, else None (parsing is needed).

    >>> quick_verdict("1,000.", "1000"), quick_verdict("41", "42"), quick_verdict("x+1", "1+x")
    (True, False, None)
    >>> quick_verdict("32, 349", "32349"), quick_verdict("28%", "0.28")  # a list, not 32349
    (False, True)
    """
    if not (comparable(predicted) and comparable(gold)):
        return False
    verdicts = [plain_verdict(normalise(p), normalise_gold(g), rel_tol) for p, g in readings(predicted, gold)]
    if True in verdicts:
        return True
    return False if all(v is False for v in verdicts) else None


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


def same_answer(predicted: str, gold: str, rel_tol: float) -> bool:
    p, g = normalise(predicted), normalise_gold(gold)
    plain = plain_verdict(p, g, rel_tol)
    if plain is not None:
        return plain
    choice = _CHOICE.fullmatch(g)
    if choice:
        letter = _PRED_CHOICE.fullmatch(p)
        return bool(letter) and letter.group(1).upper() == (choice.group(1) or choice.group(2)).upper()
    try:
        gold_obj, gold_decimals = parse_gold(g)
        pred_obj, pred_decimals = parse_answer(p)
        if false_equation(p, rel_tol):
            return False
    except (ParseError, RecursionError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return False
    try:
        verdict = objects_equal(pred_obj, gold_obj, tolerance(pred_decimals, gold_decimals, rel_tol))
        # sympy may answer with its own true/false atoms; anything undecided is not equal
        return bool(verdict) if isinstance(verdict, (bool, sympy.logic.boolalg.BooleanAtom)) else False
    except (TypeError, ValueError, AttributeError, RecursionError, ZeroDivisionError, NotImplementedError):
        return False


def false_equation(answer: str, rel_tol: float) -> bool:
    r"""A chain of equalities whose last numeric side no earlier one agrees with (``13 = 14``,
    ``2+2=5``, ``x = 3 = 4``) states nothing: its last side is not its answer. (A slip inside a
    chain that the last side agrees with, ``x = 5+5+1 = 7 = 11``, still states 11.)

    >>> false_equation("2+2=5", REL_TOL), false_equation("x = 5+5+1 = 7 = 11", REL_TOL), false_equation("x = 3", REL_TOL)
    (True, False, False)
    """
    if "=" not in answer or "," in answer or ";" in answer or "\\begin" in answer:
        return False
    cuts = [-1, *top_level_equals(answer), len(answer)]
    numbers = []
    for start, end in zip(cuts, cuts[1:]):
        try:
            value, decimals = parse_answer(answer[start + 1:end])
        except ParseError:
            continue
        if isinstance(value, sympy.Expr) and value.is_number:
            numbers.append((value, decimals))
    if len(numbers) < 2:
        return False
    (last, last_decimals), earlier = numbers[-1], numbers[:-1]
    return not any(expressions_equal(value, last, tolerance(decimals, last_decimals, rel_tol)) for value, decimals in earlier)


@dataclass(frozen=True)
class Tolerance:
    """How closely values must agree: ``rel`` in numeric spot checks; when one side writes a decimal
    of ``APPROX_DIGITS`` or more significant digits for the other's exact value, that decimal may be
    its rounding or truncation: off by less than one unit of its last place (``10**-places``)."""

    rel: float
    places: int | None = None

    def numbers(self, a, b) -> bool:
        if self.places is not None:  # exact: 100.00001 is one unit away from 100, not less
            return bool(abs(a - b) < sympy.Rational(1, 10 ** self.places))
        return abs(a - b) <= self.rel * max(abs(b), 1)

    def rationals(self, a, b) -> bool:
        """Two exact numbers: equal, or one a written decimal that rounds the other."""
        return a == b or (self.places is not None and self.numbers(a, b))


def tolerance(pred: Decimals, gold: Decimals, rel_tol: float) -> Tolerance:
    """Exact between exact answers, and between numbers both written as decimals (1234567.88 is not
    1234567.89); a decimal against an exact value passes when it rounds or truncates that value to
    4+ significant digits (0.3333 and 125.663 for 1/3 and 40\\pi; not 3.14 for \\pi, nor 72.00005 for 72);
    a decimal inside an expression is a number like any other; expressions with decimals in them
    are spot-checked to ``rel_tol``."""
    for approx, exact in ((pred, gold), (gold, pred)):
        if exact.digits == 0 and approx.digits >= APPROX_DIGITS:
            return Tolerance(rel_tol, approx.places)
    return Tolerance(rel_tol if (pred.digits or gold.digits) else EXACT_TOL)


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


@functools.lru_cache(maxsize=65536)
def parse_gold(gold: str):
    return parse_answer(gold)


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


# ---------------------------------------------------------------- structural comparison


def objects_equal(a, b, tol: Tolerance) -> bool:
    """Predicted object ``a`` against gold object ``b``."""
    if isinstance(a, Text) or isinstance(b, Text):
        return isinstance(a, Text) and isinstance(b, Text) and a.value == b.value
    a, b = (as_matrix(a) if isinstance(b, sympy.MatrixBase) else a), (as_matrix(b) if isinstance(a, sympy.MatrixBase) else b)
    if is_assignment_list(a) and is_assignment_list(b):
        return assignments_equal(a, b, tol)  # 'a=2, b=3': each name its value
    a, b = assigned_values(a, b), assigned_values(b, a)
    if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq) and is_name(a.lhs) and is_name(b.lhs):
        return objects_equal(renamed_argument(a, b), b.rhs, tol)  # 'f(x) = 2x+3' against 'y = 2x+3'
    if isinstance(b, sympy.Eq) and states_value(b) and not isinstance(a, sympy.Eq):
        return objects_equal(a, b.rhs, tol)  # gold 'x = 5', '(p,q) = (3,2)', '|AB| = 1' against the value
    if isinstance(a, sympy.Eq) and states_value(a) and not isinstance(b, sympy.Eq):
        return objects_equal(a.rhs, b, tol)  # answer 'x = 5' or 'f(x) = ...' against a value
    if (is_set_like(a) and (is_pair(b) or is_relation_list(b))) or (is_set_like(b) and (is_pair(a) or is_relation_list(a))):
        return sets_equal(a, b, tol)  # '2 <= x <= 5' against '[2, 5]'
    if isinstance(a, Seq) and is_vector(b) or isinstance(b, Seq) and is_vector(a):
        return sequences_equal(as_seq(a), as_seq(b), tol)  # [0.5, 1] against a column vector
    if isinstance(a, Seq) or isinstance(b, Seq):
        return sequences_equal(a, b, tol)
    if is_set_like(a) or is_set_like(b):
        return sets_equal(a, b, tol)
    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        return (isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase)
                and a.shape == b.shape and all(expressions_equal(x, y, tol) for x, y in zip(a, b)))
    if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq):
        return equations_equal(a, b, tol)
    if isinstance(a, sympy.Rel) or isinstance(b, sympy.Rel):
        return (type(a) is type(b) and expressions_equal(a.lhs, b.lhs, tol)
                and expressions_equal(a.rhs, b.rhs, tol)) or sets_equal(a, b, tol)
    return expressions_equal(a, b, tol)


def renamed_argument(a: sympy.Eq, b: sympy.Eq):
    """``a``'s right side, its function's argument named as in ``b``: ``f(x) = x + 1`` against
    ``f(n) = n + 1`` defines the same function (``f(x)`` parses as the product f*x)."""
    names_a, names_b = a.lhs.free_symbols, b.lhs.free_symbols
    if not (isinstance(a.lhs, sympy.Mul) and isinstance(b.lhs, sympy.Mul) and len(names_a) == len(names_b) == 2
            and len(names_a & names_b) == 1):
        return a.rhs
    (mine,), (theirs,) = names_a - names_b, names_b - names_a
    return a.rhs if theirs in a.rhs.free_symbols else a.rhs.subs(mine, theirs)


def as_matrix(x):
    """Rows written as a list of bracketed lists (``[[7, 10], [15, 22]]``) as the matrix they
    write; anything else as it is."""
    if not (isinstance(x, Seq) and x.open == "[" and x.items and all(
            isinstance(row, Seq) and row.open in "([" and len(row.items) == len(x.items[0].items) for row in x.items)):
        return x
    if not all(isinstance(v, sympy.Expr) for row in x.items for v in row.items):
        return x
    return sympy.ImmutableMatrix([list(row.items) for row in x.items])


def is_name(x) -> bool:
    """What an answer names rather than computes: a variable, ``f(x)`` (parsed as f*x), ``|AB|``,
    a ratio of names ``NO/BO``, or a tuple of names ``(p, q)``."""
    if isinstance(x, Seq):
        return x.open == "(" and all(isinstance(item, sympy.Symbol) for item in x.items)
    if isinstance(x, sympy.Abs):
        return is_name(x.args[0])
    if isinstance(x, sympy.Pow):
        return x.exp in (1, -1) and is_name(x.base)
    if isinstance(x, sympy.Mul):
        return all(is_name(factor) for factor in x.args)
    return isinstance(x, sympy.Symbol)


def states_value(eq) -> bool:
    """``name = value``, ``computation = number`` or ``quantity = number`` (``x + y = 9``, not
    ``2x + 3 = 9``): the right side is the answer."""
    return is_name(eq.lhs) or (eq.rhs.is_number and (eq.lhs.is_number or is_quantity(eq.lhs)))


def is_quantity(x) -> bool:
    """A sum of names or products of names, unit coefficients, no constant: ``x + y``, ``mn``
    (not ``a^2 + b``, an equation to solve)."""
    if not isinstance(x, sympy.Expr) or not x.free_symbols:
        return False
    terms = x.as_coefficients_dict()
    return sympy.S.One not in terms and all(
        abs(c) == 1 and all(isinstance(f, sympy.Symbol) for f in sympy.Mul.make_args(t)) for t, c in terms.items())


def assigned_values(x, other):
    """A list of assignments ``p=5, q=2; p=7, q=2`` read as values, unless ``other`` is one too:
    names that repeat group the values into tuples, ``(5, 2), (7, 2)``."""
    if not is_assignment_list(x) or is_assignment_list(other):
        return x
    names = [str(item.lhs) for item in x.items]
    width = names.index(names[0], 1) if names.count(names[0]) > 1 else len(names)
    if width == len(names):  # distinct names: their values in the names' order, x before y
        return Seq(tuple(item.rhs for item in sorted(x.items, key=lambda item: str(item.lhs))), "", "")
    if width == 1 or names != names[:width] * (len(names) // width):
        return Seq(tuple(item.rhs for item in x.items), "", "")
    values = [item.rhs for item in x.items]
    return Seq(tuple(Seq(tuple(values[i:i + width]), "(", ")") for i in range(0, len(values), width)), "", "")


def assignments_equal(a: Seq, b: Seq, tol: Tolerance) -> bool:
    """The same names, each with the same values (a name may hold several: x = 1, x = -2)."""
    def by_name(x: Seq) -> dict:
        values: dict = {}
        for item in x.items:
            values.setdefault(str(item.lhs), []).append(item.rhs)
        return values
    va, vb = by_name(a), by_name(b)
    return va.keys() == vb.keys() and all(same_set(va[n], vb[n], equal_objects(tol)) for n in va)


def is_assignment_list(x) -> bool:
    return (isinstance(x, Seq) and not x.open and len(x.items) > 1
            and all(isinstance(item, sympy.Eq) and is_name(item.lhs) for item in x.items))


def is_relation_list(x) -> bool:
    """'x < -1 or x > 2' (read as a list): a union of the relations' solution sets."""
    return isinstance(x, Seq) and not x.open and all(is_set_like(item) for item in x.items)


def is_vector(x) -> bool:
    return isinstance(x, sympy.MatrixBase) and 1 in x.shape


def as_seq(x):
    return Seq(tuple(x), "[", "]") if isinstance(x, sympy.MatrixBase) else Seq(x.items, "[", "]")


def is_pair(x) -> bool:
    return isinstance(x, Seq) and len(x.items) == 2 and x.open in "([" and x.close in ")]"


def is_set_like(x) -> bool:
    return isinstance(x, (sympy.Set, Chain)) or (isinstance(x, sympy.Rel) and not isinstance(x, sympy.Eq))


def sequences_equal(a, b, tol: Tolerance) -> bool:
    """Tuples in order; sets, bare lists and plus-minus pairs as sets (a tuple is no set)."""
    a_items = pm_values(a) if isinstance(a, Seq) and a.open == "pm" else a.items if isinstance(a, Seq) else (a,)
    b_items = pm_values(b) if isinstance(b, Seq) and b.open == "pm" else b.items if isinstance(b, Seq) else (b,)
    if is_interval(a) or is_interval(b):
        return sets_equal(a, b, tol)
    kinds = {s.open if isinstance(s, Seq) else "" for s in (a, b)}
    if "{" in kinds and kinds & {"(", "["}:
        return False  # '(3, 1)' is an ordered pair, '\\{1, 3\\}' a set
    if kinds <= {"{", "", "pm"}:
        return same_set(a_items, b_items, equal_objects(tol), tol)
    if len(a_items) != len(b_items):
        return False
    if isinstance(a, Seq) and isinstance(b, Seq) and a.open and b.open and (a.open, a.close) != (b.open, b.close):
        return False
    return all(objects_equal(x, y, tol) for x, y in zip(a_items, b_items))


def same_set(a_items, b_items, equal, tol: Tolerance | None = None) -> bool:
    """Every item of each side equals some item of the other (sets: repeats count once).

    With ``tol``, each item's values at a few points (``fingerprint``) are computed once, and
    only pairs whose values are close are compared in full: 80 square roots against 80 take 80
    evaluations and a few full comparisons, not 6,400.
    """
    a_items, b_items = list(a_items), list(b_items)
    a_prints = [fingerprint(x) for x in a_items] if tol is not None else [None] * len(a_items)
    b_prints = [fingerprint(y) for y in b_items] if tol is not None else [None] * len(b_items)
    known: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in known:
            known[i, j] = prints_close(a_prints[i], b_prints[j], tol) and bool(equal(a_items[i], b_items[j]))
        return known[i, j]

    return (all(any(match(i, j) for j in range(len(b_items))) for i in range(len(a_items)))
            and all(any(match(i, j) for i in range(len(a_items))) for j in range(len(b_items))))


FINGERPRINT_POINTS = 3


def fingerprint(x) -> tuple[complex, ...] | None:
    """An expression's values at ``FINGERPRINT_POINTS`` points, each variable taking a value of
    its own name's (so the same variable has the same value in every item); None for what is no
    plain expression (lists, relations, sums) or does not evaluate to finite numbers."""
    if not isinstance(x, sympy.Expr) or x.has(sympy.Sum, sympy.Product, sympy.oo, -sympy.oo, sympy.zoo):
        return None
    values = []
    for k in range(FINGERPRINT_POINTS if x.free_symbols else 1):
        point = {s: sympy.Float(random.Random(f"{s.name}:{k}").uniform(0.5, 2.5), 20) for s in x.free_symbols}
        value = sympy.N(x.subs(point), 15)
        if not finite_number(value):
            return None
        number = complex(value)
        if not (math.isfinite(number.real) and math.isfinite(number.imag)):
            return None
        values.append(number)
    return tuple(values)


def prints_close(a: tuple | None, b: tuple | None, tol: Tolerance | None) -> bool:
    """False only when two fingerprints show the items cannot be equal under ``tol`` (far wider
    than the tolerance, so a rounding in the fingerprint never hides a match)."""
    if a is None or b is None or tol is None or len(a) != len(b):
        return True
    slack = max(1e-6, 10 * tol.rel)
    absolute = 2 * 10.0 ** -tol.places if tol.places is not None else 0.0
    return all(abs(x - y) <= slack * max(abs(x), abs(y), 1.0) + absolute for x, y in zip(a, b))


def equal_objects(tol: Tolerance):
    return lambda x, y: objects_equal(x, y, tol)


def is_interval(x) -> bool:
    """A bracketed pair that can only be an interval: mixed brackets or an infinite end."""
    return (isinstance(x, Seq) and len(x.items) == 2 and x.open in "([" and x.close in ")]"
            and ((x.open, x.close) in (("(", "]"), ("[", ")")) or any(
                isinstance(v, sympy.Basic) and v.has(sympy.oo, -sympy.oo) for v in x.items)))


def sets_equal(a, b, tol: Tolerance) -> bool:
    sa, sb = to_set(a), to_set(b)
    if sa is None or sb is None:
        return False
    if sa == sb:
        return True
    return set_parts_equal(sa, sb, tol)


def to_set(x):
    try:
        if isinstance(x, Chain):
            return chain_as_set(x)
        if isinstance(x, sympy.Rel):
            return relation_as_set(x)
        if isinstance(x, Seq) and x.open == "{":
            return sympy.FiniteSet(*x.items)
        if is_relation_list(x):
            return sympy.Union(*(to_set(item) for item in x.items))
        return as_set(x)
    except (ParseError, TypeError, ValueError, NotImplementedError, AttributeError):
        return None


def chain_as_set(chain: Chain):
    # '0 < f(x) < 1' bounds the value f(x): a name in the middle is the variable
    operands = [sympy.Dummy("v") if is_name(o) and len(o.free_symbols) > 1 else o for o in chain.operands]
    result = sympy.S.Reals
    for left, op, right in zip(operands, chain.ops, operands[1:]):
        part = relation_as_set(relation(op, left, right))
        if part is None:
            return None
        result = result.intersect(part)
    return result


_HALF_LINES = {  # relation 'x op c' -> the interval of x
    sympy.StrictGreaterThan: lambda c: sympy.Interval.open(c, sympy.oo),
    sympy.GreaterThan: lambda c: sympy.Interval(c, sympy.oo),
    sympy.StrictLessThan: lambda c: sympy.Interval.open(-sympy.oo, c),
    sympy.LessThan: lambda c: sympy.Interval(-sympy.oo, c),
}
_FLIPPED = {sympy.StrictGreaterThan: sympy.StrictLessThan, sympy.StrictLessThan: sympy.StrictGreaterThan,
            sympy.GreaterThan: sympy.LessThan, sympy.LessThan: sympy.GreaterThan}


def relation_as_set(rel):
    """The solution set of a one-variable relation; 'x > 3' directly, others by sympy."""
    if len(rel.free_symbols) != 1:
        return None
    kind = type(rel)
    if kind in _HALF_LINES:
        if isinstance(rel.lhs, sympy.Symbol) and rel.rhs.is_number:
            return _HALF_LINES[kind](rel.rhs)
        if isinstance(rel.rhs, sympy.Symbol) and rel.lhs.is_number:
            return _HALF_LINES[_FLIPPED[kind]](rel.lhs)
    if not solvable_cheaply(rel.lhs - rel.rhs):
        return None
    return rel.as_set()


MAX_SOLVED_DEGREE = 4  # sympy solves these relations exactly in milliseconds; x^50 - 3x + 1 > 0 took minutes
MAX_SOLVED_OPS = 40


def solvable_cheaply(difference) -> bool:
    """A relation sympy's solver settles in bounded work: a rational function of one variable,
    maybe inside absolute values, of degree up to ``MAX_SOLVED_DEGREE`` and a few dozen operations
    (decided before solving; anything else has no solution set to compare)."""
    return (solving_degree(difference) <= MAX_SOLVED_DEGREE
            and sympy.count_ops(difference) <= MAX_SOLVED_OPS)


def solving_degree(x) -> float:
    if isinstance(x, sympy.Abs):
        return solving_degree(x.args[0])
    if isinstance(x, sympy.Pow) and x.exp.is_Integer:
        return solving_degree(x.base) * abs(x.exp)
    if isinstance(x, (sympy.Add, sympy.Mul)):
        parts = [solving_degree(arg) for arg in x.args]
        return (max if isinstance(x, sympy.Add) else sum)(parts)
    return degree_bound(x)


def set_parts_equal(sa, sb, tol: Tolerance) -> bool:
    parts_a = list(sa.args) if isinstance(sa, sympy.Union) else [sa]
    parts_b = list(sb.args) if isinstance(sb, sympy.Union) else [sb]
    if len(parts_a) != len(parts_b):
        return False
    for x in parts_a:
        match = next((i for i, y in enumerate(parts_b) if set_part_equal(x, y, tol)), None)
        if match is None:
            return False
        parts_b.pop(match)
    return True


def set_part_equal(x, y, tol: Tolerance) -> bool:
    if isinstance(x, sympy.Interval) and isinstance(y, sympy.Interval):
        return (x.left_open == y.left_open and x.right_open == y.right_open
                and expressions_equal(x.start, y.start, tol) and expressions_equal(x.end, y.end, tol))
    if isinstance(x, sympy.FiniteSet) and isinstance(y, sympy.FiniteSet):
        return same_set(x.args, y.args, equal_objects(tol))
    return x == y


def equations_equal(a: sympy.Eq, b: sympy.Eq, tol: Tolerance) -> bool:
    """Same equation, possibly rearranged or scaled: (la - ra) = c * (lb - rb), c != 0."""
    if expressions_equal(a.lhs, b.lhs, tol) and expressions_equal(a.rhs, b.rhs, tol):
        return True
    da, db = a.lhs - a.rhs, b.lhs - b.rhs
    if db == 0 or da.free_symbols != db.free_symbols:
        return False
    ratios = [complex(sympy.N(da.subs(p), 20)) / complex(sympy.N(db.subs(p), 20))
              for p in sample_points(da.free_symbols)]
    first = ratios[0]
    return abs(first) > 1e-12 and all(abs(r - first) <= 1e-9 * abs(first) for r in ratios)


def expressions_equal(a, b, tol: Tolerance) -> bool:
    if not isinstance(a, sympy.Basic) or not isinstance(b, sympy.Basic):
        return False
    if a == b:
        return True
    standalone = a.is_Rational or b.is_Rational  # a decimal written as the value itself
    if a.is_Rational and b.is_Rational:
        return tol.rationals(a, b)
    if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
        return same_infinity(a, b)
    if a.has(sympy.Sum, sympy.Product) or b.has(sympy.Sum, sympy.Product):
        return sums_equal(a, b, tol)
    symbols = a.free_symbols | b.free_symbols
    if not symbols:
        if standalone and (tol.places is not None or tol.rel > EXACT_TOL):
            return numbers_close(a, b, tol)  # a decimal written as the whole value: see tolerance()
        return constants_equal(a, b, tol.rel)
    # identities hold everywhere: three seeded points in (0.5, 2.5) tell polynomial, rational and
    # elementary expressions apart; rational functions of modest degree take rational points and
    # are compared exactly ((x+1)^40 + 1 is not (x+1)^40 to any float precision), the rest numerically
    spot = Tolerance(max(tol.rel, EXACT_TOL))
    exact = is_modest_rational_function(a) and is_modest_rational_function(b)
    for point in sample_points(symbols, exact):
        va, vb = a.subs(point), b.subs(point)
        if va.is_Rational and vb.is_Rational:
            if va != vb:
                return False
        elif not numbers_close(va, vb, spot):
            return False
    return True


def same_infinity(a, b) -> bool:
    """Two expressions with an infinity in them: equal when both are the same infinity (sympy has
    already folded ``2\\infty`` and ``\\infty + 1`` into ``\\infty``); no simplification runs."""
    return (a.is_infinite is True and b.is_infinite is True and a.is_extended_positive == b.is_extended_positive
            and a.is_extended_negative == b.is_extended_negative)


def sums_equal(a, b, tol: Tolerance) -> bool:
    """Expressions with a sum or product whose bound is a variable (``\\sum_{k=1}^{n} k``): equal
    at three whole values of every variable, each sum then evaluated term by term (at most
    ``MAX_SUM_TERMS``; a longer one is not compared)."""
    rng = random.Random(0)
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    for _ in range(3):
        point = {s: sympy.Integer(rng.randint(3, 12)) for s in symbols}
        try:
            va, vb = sums_done(a.subs(point)), sums_done(b.subs(point))
        except ParseError:
            return False
        if not numbers_close(va, vb, Tolerance(max(tol.rel, EXACT_TOL))):
            return False
    return True


def sums_done(x):
    def done(s):
        if len(s.limits) != 1:
            raise ParseError("a sum over several indices")
        _, lower, upper = s.limits[0]
        if not (lower.is_Integer and upper.is_Integer) or upper - lower + 1 > MAX_SUM_TERMS:
            raise ParseError("a sum with too many terms to evaluate")
        return s.doit()
    return x.replace(lambda e: isinstance(e, (sympy.Sum, sympy.Product)), done)


def sample_points(symbols, exact: bool = False) -> list[dict]:
    rng = random.Random(0)
    ordered = sorted(symbols, key=str)
    if exact:
        return [{s: sympy.Rational(rng.randint(500, 2500), 1000) + sympy.Rational(1, 7919) for s in ordered}
                for _ in range(3)]
    return [{s: sympy.Float(rng.uniform(0.5, 2.5), 30) for s in ordered} for _ in range(3)]


def is_modest_rational_function(x) -> bool:
    """A rational function of total degree up to 200: its exact rational values stay cheap
    (((x^100)^100)^100 would not)."""
    return degree_bound(x) <= MAX_EXACT_DEGREE


def degree_bound(x) -> float:
    """An upper bound of the total degree of a rational function; infinite for anything else."""
    if isinstance(x, sympy.Symbol) or x.is_Rational:
        return 1 if isinstance(x, sympy.Symbol) else 0
    if isinstance(x, sympy.Pow):
        return degree_bound(x.base) * abs(x.exp) if x.exp.is_Integer else float("inf")
    if isinstance(x, (sympy.Add, sympy.Mul)):
        parts = [degree_bound(arg) for arg in x.args]
        return (max if isinstance(x, sympy.Add) else sum)(parts)
    return float("inf")


def numbers_close(a, b, tol: Tolerance) -> bool:
    """Two constant expressions compared at 30 significant digits, in sympy's floats, whose
    exponent has no limit: ``e^{1000}`` is a number like any other, not a float's infinity that
    every other number would be 'close' to. Anything that evaluates to no finite number (an
    infinity, NaN, an unevaluated remainder) is close to nothing."""
    va, vb = sympy.N(a, 30), sympy.N(b, 30)
    if not (finite_number(va) and finite_number(vb)):
        return False
    return tol.numbers(va, vb)


def constants_equal(a, b, rel: float) -> bool:
    """Two constants (decimals inside them read as the exact numbers they write) are equal when
    their difference is zero, or within ``rel`` both of 1 and of the larger value. Sympy raises
    its working precision until a nonzero difference shows (one it cannot tell from zero comes
    back with no significant bits), and its floats have no exponent limit: ``e^{1000} + 1`` is
    not ``e^{1000}`` (they differ by 1), nor is ``0`` the tiny ``e^{-1000}`` (they differ by all of it)."""
    va, vb = sympy.N(a, 30), sympy.N(b, 30)
    if not (finite_number(va) and finite_number(vb)):
        return False
    difference = sympy.N(a - b, 30, maxn=ZERO_SEARCH_BITS)
    if not isinstance(difference, sympy.Expr) or not difference.is_number:
        return False
    if all(part == 0 or (isinstance(part, sympy.Float) and part._prec < ZERO_BITS) for part in difference.as_real_imag()):
        return True
    gap = abs(difference)
    return bool(gap <= rel and gap <= rel * max(abs(va), abs(vb)))


ZERO_BITS = 10  # a difference sympy resolves to fewer significant bits is zero within its precision
ZERO_SEARCH_BITS = 2000  # how far sympy may raise its precision to resolve a difference (1e-600 of the values)


def finite_number(x) -> bool:
    return isinstance(x, sympy.Expr) and x.is_number and all(
        isinstance(part, sympy.Float) or part.is_Rational for part in x.as_real_imag())


WARM_UP_PAIRS = [  # one of each kind of comparison, so every lazily loaded part of sympy is loaded
    ("|x| < 3", "-3<x<3"), (r"x \ne 2", r"(-\infty,2)\cup(2,\infty)"), ("x^2 > 4", "x<-2, x>2"),
    (r"\frac{x^2-1}{x-1}", "x+1"), (r"\sin^2 x + \cos^2 x", "1"), (r"\sqrt{8}", r"2\sqrt2"),
    (r"e^{i\pi}", "-1"), (r"\begin{pmatrix}1\\2\end{pmatrix}", "(1, 2)"), (r"\{1, 2\}", r"\{2, 1\}"),
    ("2x + 4 = 0", "x = -2"), (r"\binom{5}{2}", "10"), (r"\log_2 8", "3"), (r"5!", "120"),
    (r"\sum_{k=1}^{n} k", r"\frac{n(n+1)}{2}"), ("[1, 2)", "1 <= x < 2"), (r"\pi \approx 3.1416", r"\pi"),
]


def warm_up() -> None:
    """Run one comparison of each kind: a process (and every worker forked from it) then meets no
    first-call cost, which on a loaded machine was ten times a warm call."""
    for predicted, gold in WARM_UP_PAIRS:
        answers_equal(predicted, gold)
