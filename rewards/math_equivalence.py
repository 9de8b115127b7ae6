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
import re

import sympy

from rewards.latex_normalise import normalise
from rewards.latex_objects import ParseError, Seq, Text
from rewards.latex_parse import parse_answer, pm_values, stated_part, top_level_equals
from rewards.latex_spans import nesting_depth
from rewards.math_numbers import REL_TOL, Tolerance, expressions_equal, sample_points, same_set, tolerance
from rewards.math_readings import is_word_answer, normalise_gold, plain_verdict, readings
from rewards.math_sets import is_interval, is_name, is_pair, is_relation_list, is_set_like, sets_equal

__all__ = ["REL_TOL", "answers_equal", "comparable", "is_word_answer", "normalise_gold", "quick_verdict", "warm_up"]


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
        constant = (isinstance(pred_obj, sympy.Expr) and pred_obj.is_number) or (
            isinstance(pred_obj, sympy.MatrixBase) and not pred_obj.free_symbols)
        if false_equation(p, rel_tol) or (constant and restates(p, g)):
            return False
    except (ParseError, RecursionError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return False
    try:
        verdict = objects_equal(pred_obj, gold_obj, tolerance(pred_decimals, gold_decimals, rel_tol))
        # sympy may answer with its own true/false atoms; anything undecided is not equal
        return bool(verdict) if isinstance(verdict, (bool, sympy.logic.boolalg.BooleanAtom)) else False
    except (TypeError, ValueError, AttributeError, RecursionError, ZeroDivisionError, NotImplementedError):
        return False


# operations a final answer has carried out: left in it, where the gold has none of them, the
# answer restates the question ('\\sum_{n=1}^{99} \\frac{1}{n(n+1)}', '\\log_2 32 + \\log_3 81', '\\sin 75^\\circ')
_UNEVALUATED = re.compile(r"(?<![A-Za-z])\\?(?:sum|prod|sin|cos|tan|cot|sec|csc|log|ln|lg|gcd|lcm)(?![A-Za-z])"
                          r"|\\end\s*\{[pbvBV]?matrix\}\s*\^")  # a matrix power
# whole numbers combined by arithmetic ('999 \\times 1001', '16 - 3 - 4') where the gold is one number
_ARITHMETIC = re.compile(r"\s*-?\d+(?:\s*(?:[-+*×÷/]|\\times|\\cdot|\\div)\s*\(?-?\d+\)?)*\s*(?:[-+*×÷]|\\times|\\cdot|\\div)"
                         r"\s*\(?-?\d+\)?\s*")
_ONE_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_MODULUS_OF_NUMBER = re.compile(r"^\s*\|[^|a-hj-zA-Z]*\|\s*$")  # |3+4i|
# complex arithmetic left undone: an i in a denominator, a product of bracketed complex numbers
_COMPLEX_UNDONE = re.compile(r"\\frac\s*\{[^{}]*\}\s*\{[^{}]*(?<![A-Za-z\\])i(?![A-Za-z])[^{}]*\}|"
                             r"\([^()]*(?<![A-Za-z\\])i(?![A-Za-z])[^()]*\)\s*(?:\\cdot\s*)?\(")


def restates(predicted: str, gold: str) -> bool:
    r"""The stated part of ``predicted`` (a number, see same_answer) leaves an operation undone that
    the gold has carried out (``\\frac{1}{1+i}``, ``(2+3i)(1-i)`` against ``a + bi``):
    a sum, product, trigonometric function, logarithm, binomial, factorial, gcd or the modulus of
    a number, where the gold has none. (``2^{10}`` for 1024 and ``\sqrt{8}`` for ``2\sqrt2``
    are forms of the number, not restatements.)

    >>> restates(r"\log_2 32 + \log_3 81", "9"), restates(r"\gcd(252, 198) = 18", "18"), restates(r"\sin(90^\circ-x)", r"\cos x")
    (True, False, False)
    """
    equals = top_level_equals(predicted)
    stated = stated_part(predicted[equals[-1] + 1:] if equals else predicted)  # what it says the value is
    undone = (_UNEVALUATED.search(stated) or _MODULUS_OF_NUMBER.match(stated) or _COMPLEX_UNDONE.search(stated)
              or (_ARITHMETIC.fullmatch(stated) and _ONE_NUMBER.fullmatch(gold)))
    return bool(undone) and not (_UNEVALUATED.search(gold) or _COMPLEX_UNDONE.search(gold)) and "|" not in gold


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


@functools.lru_cache(maxsize=65536)
def parse_gold(gold: str):
    return parse_answer(gold)


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
    if width == 1:  # 'x = 3 or x = 2': the solutions of one unknown, a set (no ordered pair)
        return Seq(tuple(item.rhs for item in x.items), "{", "}")
    if names != names[:width] * (len(names) // width):
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


def is_vector(x) -> bool:
    return isinstance(x, sympy.MatrixBase) and 1 in x.shape


def as_seq(x):
    return Seq(tuple(x), "[", "]") if isinstance(x, sympy.MatrixBase) else Seq(x.items, "[", "]")


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


def equal_objects(tol: Tolerance):
    return lambda x, y: objects_equal(x, y, tol)


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
