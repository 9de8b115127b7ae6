r"""Are two numbers or expressions equal, and how closely must they agree?

- ``Tolerance``/``tolerance``: exact between exact answers and between decimals both written; a
  decimal of 4+ significant digits may round or truncate the other side's exact value;
- ``expressions_equal``: equal trees, else constants by their difference (``constants_equal``:
  sympy raises its precision until a nonzero difference shows, in floats with no exponent
  limit), expressions with variables at seeded points (exactly for modest rational functions),
  sums and products with a variable bound at whole values, infinities as infinities;
- ``same_set``: two lists as sets, items matched through their values at a few points
  (``fingerprint``) before any full comparison.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import sympy

from rewards.latex_objects import MAX_SUM_TERMS, Decimals, ParseError


REL_TOL = 1e-9   # numeric checks where a decimal is written inside an expression (decimals are exact)


EXACT_TOL = 1e-12  # between exact expressions, compared numerically


APPROX_DIGITS = 4  # see tolerance()


MAX_EXACT_DEGREE = 200  # rational functions up to this degree are spot-checked exactly


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
