r"""What the answer parser builds, and how it builds it safely.

- ``Seq(items, open, close)`` for bracketed or bare comma lists (tuples, intervals, lists);
- ``Chain`` for ``a < x <= b``; ``Text`` for word answers; ``Decimals`` for how precisely an
  answer's decimal numbers were written;
- constructors that refuse what has no value to compare (``1/0``, ``9999999999^9999999999``,
  ``R^9999999999``) instead of building it, and that never evaluate anything huge.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import sympy

MAX_DIGITS = 20_000  # a power whose result has more digits is no answer to compare (2^{65536} has 19,729)
MAX_SET_POWER = 16  # R^n, a product of n sets
MAX_PM_ITEMS = 256  # a \pm chain of 8 signs; more is no answer anybody writes
MAX_SUM_TERMS = 1000  # a sum or product with a numeric range is evaluated term by term up to this


class ParseError(ValueError):
    pass


@dataclass(frozen=True)
class Seq:
    """Comma-separated items with their brackets: '(' ')', '[' ']', '{' '}' (a set), '' '' (bare)."""

    items: tuple
    open: str
    close: str


@dataclass(frozen=True)
class Chain:
    """A chain of relations, e.g. ``1 < x <= 5``: operands and the operators between them."""

    operands: tuple
    ops: tuple


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Decimals:
    """The most significant digits and decimal places of the decimal numbers an answer writes
    (0 and 0 when it writes none): how closely such an answer must match.

    >>> Decimals.of("0.3333"), Decimals.of("125.663").digits
    (Decimals(digits=4, places=4), 6)
    """

    digits: int = 0
    places: int = 0

    @classmethod
    def of(cls, number: str) -> "Decimals":
        whole, _, fraction = number.partition(".")
        return cls(len(re.sub(r"\D", "", whole + fraction).lstrip("0")) or 1, len(fraction))

    def merge(self, other: "Decimals") -> "Decimals":
        return Decimals(max(self.digits, other.digits), max(self.places, other.places))

RELATIONS = {"=": sympy.Eq, "<": sympy.Lt, ">": sympy.Gt, "\\le": sympy.Le, "\\ge": sympy.Ge,
             "\\ne": sympy.Ne}


def combine(a, b, op):
    """Apply ``op`` to expressions; lift over Seq items only for plus-minus sets."""
    if b is not None and (isinstance(a, Seq) or isinstance(b, Seq)) and pm_count(a) * pm_count(b) > MAX_PM_ITEMS:
        raise ParseError("a \\pm product with too many values to compare")
    if isinstance(a, Seq) and a.open == "pm":
        return Seq(tuple(combine(x, b, op) for x in a.items), "pm", "pm")
    if isinstance(b, Seq) and b.open == "pm":
        return Seq(tuple(combine(a, y, op) for y in b.items), "pm", "pm")
    if not isinstance(a, sympy.Basic) or (b is not None and not isinstance(b, sympy.Basic)):
        raise ParseError("arithmetic on a list")
    return op(a, b)


def divide(a, b):
    if b == 0:
        raise ParseError("division by zero")  # 1/0 and 12:00 are no numbers to compare
    return a / b


def plus_minus(a, b):
    if 2 * pm_count(a) * pm_count(b) > MAX_PM_ITEMS:  # counted before anything is built
        raise ParseError("a \\pm chain with too many values to compare")
    return Seq((combine(a, b, lambda x, y: x + y), combine(a, b, lambda x, y: x - y)), "pm", "pm")


def pm_count(x) -> int:
    """How many values a plus-minus expression stands for."""
    return sum(pm_count(item) for item in x.items) if isinstance(x, Seq) and x.open == "pm" else 1


def digits_estimate(base, exponent) -> float:
    """About how many digits ``base ** exponent`` has (2^{65536}: 19,728)."""
    size = abs(float(base))
    return abs(float(exponent)) * abs(math.log10(size)) if size > 0 else 0.0


def safe_pow(base, exponent):
    if not isinstance(base, sympy.Basic) or not isinstance(exponent, sympy.Basic):
        raise ParseError("power of a list")
    if isinstance(base, sympy.Set) and not (exponent.is_Integer and 0 < exponent <= MAX_SET_POWER):
        raise ParseError("a set to a power that is no small count")  # R^9999999999 would build that product
    if base.is_number and exponent.is_number:
        if exponent.has(sympy.Pow) and not exponent.is_Rational:
            return sympy.Pow(base, exponent, evaluate=False)
        # kept unevaluated, such a power is still expanded by the first product it enters
        # (9999999999^9999999999 in a term stalled the parse): no answer to compare
        try:
            too_big = exponent.is_Rational and base.is_Rational and digits_estimate(base, exponent) > MAX_DIGITS
        except (OverflowError, ValueError, TypeError):
            too_big = True
        if too_big:
            raise ParseError("a power too large to compare")
    return base ** exponent


def safe_factorial(n):
    if isinstance(n, sympy.Integer) and n > 1000:
        return sympy.factorial(n, evaluate=False)
    return sympy.factorial(n)


def safe_binomial(n, k):
    if isinstance(n, sympy.Integer) and n > 10_000:
        return sympy.binomial(n, k, evaluate=False)
    return sympy.binomial(n, k)


def relation(op: str, left, right):
    if op == "=" and isinstance(left, Seq) and left.open == "(" and all(isinstance(v, sympy.Symbol) for v in left.items):
        return right  # '(p, q) = (3, 2)' states the pair
    if op == "=" and isinstance(left, sympy.Expr) and left.free_symbols and isinstance(right, Seq) and right.open in "([":
        return right  # 'v = (3, -1, 2)' states the vector, 'A^2 = [[7, 10], [15, 22]]' the matrix
    if op == "=" and isinstance(left, sympy.Symbol) and isinstance(right, Seq) and right.open == "pm":
        # 'x = \pm 1' is x = 1 and x = -1 (a list spreads them: 'x = 0, x = \pm 1')
        return Seq(tuple(relation(op, left, value) for value in right.items), "pm", "pm")
    if not isinstance(left, sympy.Basic) or not isinstance(right, sympy.Basic):
        raise ParseError("relation between lists")
    return RELATIONS[op](left, right, evaluate=False)


def as_set(value):
    """An interval-like Seq or a set Seq as a sympy set (for unions)."""
    if isinstance(value, sympy.Set):
        return value
    if isinstance(value, Seq) and len(value.items) == 2 and value.open in "([" and value.close in ")]":
        lo, hi = value.items
        return sympy.Interval(lo, hi, left_open=value.open == "(", right_open=value.close == ")")
    if isinstance(value, Seq) and value.open == "{":
        return sympy.FiniteSet(*value.items)
    if isinstance(value, sympy.Basic) and value.is_number:
        return sympy.FiniteSet(value)
    raise ParseError("not a set")


def is_integer_literal(value) -> bool:
    return isinstance(value, sympy.Integer)


def is_fraction_of_integers(value) -> bool:
    return isinstance(value, sympy.Rational) and not isinstance(value, sympy.Integer) and value > 0


def evaluated_sum(kind, body, index, lower, upper):
    """``\\sum`` / ``\\prod`` of ``body`` for ``index`` from ``lower`` to ``upper``: evaluated term by
    term when the range is numeric and at most ``MAX_SUM_TERMS`` long, kept as it is when a bound
    is symbolic (compared at whole values of it later), refused when the range is longer."""
    if not (lower.is_number and upper.is_number):
        return kind(body, (index, lower, upper))
    if not (lower.is_integer and upper.is_integer):
        raise ParseError("a sum over a range that is no integer range")
    if upper - lower + 1 > MAX_SUM_TERMS and not (kind is sympy.Sum and is_small_polynomial(body, index)):
        raise ParseError("a sum with too many terms to evaluate")
    return kind(body, (index, lower, upper)).doit()  # a polynomial's sum has a closed form (Faulhaber)


def is_small_polynomial(body, index) -> bool:
    return (isinstance(body, sympy.Expr) and body.free_symbols <= {index} and body.is_polynomial(index)
            and sympy.degree(body, index) <= 10 if body.free_symbols else True)
