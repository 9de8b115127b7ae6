r"""Are two answers the same mathematical object?

``answers_equal(predicted, gold)`` compares extracted answers (LaTeX strings):

1. equal after normalisation, or exactly equal as plain numbers (fast path, no sympy);
2. multiple-choice letters (``(B)`` = ``B`` = ``\text{(B)}``);
3. otherwise both are parsed (gold parses are cached) and compared structurally:
   numbers exactly, or with relative tolerance ``rel_tol`` when a decimal was written;
   expressions by exact difference then seeded numeric spot checks; tuples in order;
   sets, bare lists and ``\pm`` unordered; intervals and unions by endpoints; inequalities
   against intervals; equations up to a constant factor; matrices entry by entry; an
   equation ``x = 5`` against a value ``5``.
"""

from __future__ import annotations

import functools
import random
import re
from fractions import Fraction

import sympy

from rewards.latex_normalise import normalise
from rewards.latex_parse import Chain, ParseError, Seq, Text, as_set, parse_answer, relation

REL_TOL = 1e-6   # when a decimal number was written
EXACT_TOL = 1e-12  # between exact expressions, compared numerically

_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")
_CHOICE = re.compile(r"\(\s*([A-Ea-e])\s*\)|([A-E])")  # gold 'e' alone is Euler's number
_PRED_CHOICE = re.compile(r"\(?\s*([A-Ea-e])\s*\)?")


def answers_equal(predicted: str, gold: str, rel_tol: float = REL_TOL) -> bool:
    """Verdict for one (predicted, gold) pair of extracted answers.

    >>> answers_equal("0.5", r"\\frac{1}{2}"), answers_equal("(x+1)^2", "x^2+2x+1")
    (True, True)
    >>> answers_equal(r"(3, \\infty)", "x > 3"), answers_equal(r"[3, \\infty)", "x > 3")
    (True, False)
    """
    p, g = normalise(predicted), normalise_gold(gold)
    if p == g:
        return True
    fast = compare_plain_numbers(p, g, rel_tol)
    if fast is not None:
        return fast
    choice = _CHOICE.fullmatch(g)
    if choice:
        letter = _PRED_CHOICE.fullmatch(p)
        return bool(letter) and letter.group(1).upper() == (choice.group(1) or choice.group(2)).upper()
    try:
        gold_obj, gold_decimal = parse_gold(g)
        pred_obj, pred_decimal = parse_answer(p)
    except (ParseError, RecursionError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return False
    tol = rel_tol if (gold_decimal or pred_decimal) else EXACT_TOL
    try:
        verdict = objects_equal(pred_obj, gold_obj, tol)
        # sympy may answer with its own true/false atoms; anything undecided is not equal
        return bool(verdict) if isinstance(verdict, (bool, sympy.logic.boolalg.BooleanAtom)) else False
    except (TypeError, ValueError, AttributeError, RecursionError, ZeroDivisionError, NotImplementedError):
        return False


def quick_verdict(predicted: str, gold: str, rel_tol: float = REL_TOL) -> bool | None:
    """A verdict from cheap, linear-time string work alone, or None when parsing is needed.

    >>> quick_verdict("1,000.", "1000"), quick_verdict("41", "42"), quick_verdict("x+1", "1+x")
    (True, False, None)
    """
    p, g = light_clean(predicted), light_clean(gold)
    if p == g:
        return True
    return compare_plain_numbers(p, g, rel_tol)


def light_clean(answer: str) -> str:
    s = answer.replace("$", "").replace(" ", "").replace("\\!", "").rstrip(".")
    return s.replace(",", "") if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s) else s


@functools.lru_cache(maxsize=65536)
def normalise_gold(gold: str) -> str:
    return normalise(gold)


@functools.lru_cache(maxsize=65536)
def parse_gold(gold: str):
    return parse_answer(gold)


def compare_plain_numbers(p: str, g: str, rel_tol: float) -> bool | None:
    """Exact comparison when both sides are plain numbers; None when either is not."""
    if not (_PLAIN_NUMBER.fullmatch(p) and _PLAIN_NUMBER.fullmatch(g)):
        return None
    try:
        a, b = Fraction(p), Fraction(g)
    except (ZeroDivisionError, ValueError):  # "3/0", "1.5/2": the full comparison decides
        return None
    if a == b:
        return True
    if "." in p or "." in g:
        return abs(a - b) <= rel_tol * max(abs(b), 1)
    return False


# ---------------------------------------------------------------- structural comparison


def objects_equal(a, b, tol: float) -> bool:
    """Predicted object ``a`` against gold object ``b``."""
    if isinstance(a, Text) or isinstance(b, Text):
        return isinstance(a, Text) and isinstance(b, Text) and a.value == b.value
    if isinstance(b, sympy.Eq) and is_name(b.lhs) and not isinstance(a, sympy.Eq):
        return objects_equal(a, b.rhs, tol)  # gold 'x = 5' against '5'
    if isinstance(a, sympy.Eq) and is_name(a.lhs) and not isinstance(b, sympy.Eq):
        return objects_equal(a.rhs, b, tol)  # answer 'x = 5' or 'f(x) = ...' against a value
    if (is_set_like(a) and is_pair(b)) or (is_set_like(b) and is_pair(a)):
        return sets_equal(a, b, tol)  # '2 <= x <= 5' against '[2, 5]'
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


def is_name(x) -> bool:
    """A variable or a function application ``f(x)`` (parsed as the product f*x)."""
    return isinstance(x, sympy.Symbol) or (
        isinstance(x, sympy.Mul) and len(x.args) == 2 and all(isinstance(a, sympy.Symbol) for a in x.args))


def is_pair(x) -> bool:
    return isinstance(x, Seq) and len(x.items) == 2 and x.open in "([" and x.close in ")]"


def is_set_like(x) -> bool:
    return isinstance(x, (sympy.Set, Chain)) or (isinstance(x, sympy.Rel) and not isinstance(x, sympy.Eq))


def sequences_equal(a, b, tol: float) -> bool:
    a_items = a.items if isinstance(a, Seq) else (a,)
    b_items = b.items if isinstance(b, Seq) else (b,)
    if is_interval(a) or is_interval(b):
        return sets_equal(a, b, tol)
    if len(a_items) != len(b_items):
        return False
    unordered = any(isinstance(s, Seq) and s.open in ("{", "", "pm") for s in (a, b))
    if unordered:
        return matched_unordered(list(a_items), list(b_items), tol)
    if isinstance(a, Seq) and isinstance(b, Seq) and (a.open, a.close) != (b.open, b.close):
        return False
    return all(objects_equal(x, y, tol) for x, y in zip(a_items, b_items))


def is_interval(x) -> bool:
    """A bracketed pair that can only be an interval: mixed brackets or an infinite end."""
    return (isinstance(x, Seq) and len(x.items) == 2 and x.open in "([" and x.close in ")]"
            and ((x.open, x.close) in (("(", "]"), ("[", ")")) or any(
                isinstance(v, sympy.Basic) and v.has(sympy.oo, -sympy.oo) for v in x.items)))


def matched_unordered(a_items: list, b_items: list, tol: float) -> bool:
    for x in a_items:
        match = next((i for i, y in enumerate(b_items) if objects_equal(x, y, tol)), None)
        if match is None:
            return False
        b_items.pop(match)
    return not b_items


def sets_equal(a, b, tol: float) -> bool:
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
        return as_set(x)
    except (ParseError, TypeError, ValueError, NotImplementedError, AttributeError):
        return None


def chain_as_set(chain: Chain):
    result = sympy.S.Reals
    for left, op, right in zip(chain.operands, chain.ops, chain.operands[1:]):
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
    return rel.as_set()


def set_parts_equal(sa, sb, tol: float) -> bool:
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


def set_part_equal(x, y, tol: float) -> bool:
    if isinstance(x, sympy.Interval) and isinstance(y, sympy.Interval):
        return (x.left_open == y.left_open and x.right_open == y.right_open
                and expressions_equal(x.start, y.start, tol) and expressions_equal(x.end, y.end, tol))
    if isinstance(x, sympy.FiniteSet) and isinstance(y, sympy.FiniteSet):
        return matched_unordered(list(x.args), list(y.args), tol)
    return x == y


def equations_equal(a: sympy.Eq, b: sympy.Eq, tol: float) -> bool:
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


def expressions_equal(a, b, tol: float) -> bool:
    if not isinstance(a, sympy.Basic) or not isinstance(b, sympy.Basic):
        return False
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return a == b if tol <= EXACT_TOL else abs(a - b) <= tol * max(abs(b), 1)
    if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
        return sympy.simplify(a - b) == 0
    symbols = a.free_symbols | b.free_symbols
    if not symbols:
        return numbers_close(a, b, tol)
    # identities hold everywhere: three seeded points in (0.5, 2.5) tell polynomial, rational
    # and elementary expressions apart with probability ~1
    return all(numbers_close(a.subs(p), b.subs(p), max(tol, 1e-9)) for p in sample_points(symbols))


def sample_points(symbols) -> list[dict]:
    rng = random.Random(0)
    ordered = sorted(symbols, key=str)
    return [{s: sympy.Float(rng.uniform(0.5, 2.5), 20) for s in ordered} for _ in range(3)]


def numbers_close(a, b, tol: float) -> bool:
    va, vb = complex(sympy.N(a, 30)), complex(sympy.N(b, 30))
    return abs(va - vb) <= tol * max(abs(vb), 1.0)
