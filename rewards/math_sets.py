r"""Sets, intervals and relations compared as the sets of values they describe.

``x > 3`` is ``(3, \infty)``, ``0 < f(x) < 1`` is ``(0, 1)`` and ``x < -1 or x > 2`` a union.
Relations reach sympy's solver only within budgets decided before it runs (``solvable_cheaply``);
a union matches part by part, intervals by their endpoints and openness.
"""

from __future__ import annotations

import sympy

from rewards.latex_objects import Chain, ParseError, Seq, as_set, relation
from rewards.math_numbers import Tolerance, degree_bound, expressions_equal, same_set


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


def is_relation_list(x) -> bool:
    """'x < -1 or x > 2' (read as a list): a union of the relations' solution sets."""
    return isinstance(x, Seq) and not x.open and all(is_set_like(item) for item in x.items)


def is_pair(x) -> bool:
    return isinstance(x, Seq) and len(x.items) == 2 and x.open in "([" and x.close in ")]"


def is_set_like(x) -> bool:
    return isinstance(x, (sympy.Set, Chain)) or (isinstance(x, sympy.Rel) and not isinstance(x, sympy.Eq))


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
            return list_as_set([to_set(item) for item in x.items])
        return as_set(x)
    except (ParseError, TypeError, ValueError, NotImplementedError, AttributeError):
        return None


def list_as_set(parts: list):
    """Relations listed with commas, read as 'or' (``x < -1, x > 2``) unless that covers every
    number while 'and' leaves a set (``x \\ge 2, x \\ne 5``: both hold)."""
    union = sympy.Union(*parts)
    if union == sympy.S.Reals:
        intersection = sympy.Intersection(*parts)
        if intersection != sympy.S.EmptySet:
            return intersection
    return union


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
        return same_set(x.args, y.args, lambda u, v: expressions_equal(u, v, tol), tol)
    return x == y
