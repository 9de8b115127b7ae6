"""The plain-data codec that carries calls between the judge and a judged program: exact round
trips of every plain value, and a decoder that meets any bytes with NotPlainData alone."""

import collections
import decimal
import fractions
import json
import math
from collections import Counter, OrderedDict, defaultdict, deque

from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.sandbox import plain_data
from rewards.sandbox.plain_data import NotPlainData, decode, encode

scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=False), st.complex_numbers(allow_nan=False), st.text(), st.binary())
hashables = st.recursive(scalars, lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=4)),
                         max_leaves=10)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.sets(hashables, max_size=4),
    st.frozensets(hashables, max_size=4), st.dictionaries(hashables, inner, max_size=4)), max_leaves=20)


def same(a, b) -> bool:
    """Equal, of the same types all the way down (1 == 1.0 == True would not do)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, float) and a == 0:
        return math.copysign(1, a) == math.copysign(1, b)
    return a == b


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_plain_value_round_trips_with_its_exact_types(value):
    assert same(decode(encode(value)), value)


def test_nan_infinities_and_big_integers_survive():
    assert decode(encode(-(3 ** 20000))) == -(3 ** 20000)  # past int()'s decimal digit limit
    back = decode(encode([float("nan"), float("inf"), -float("inf"), -0.0]))
    assert math.isnan(back[0]) and back[1:3] == [math.inf, -math.inf] and math.copysign(1, back[3]) == -1


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200),
                 st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                              lambda inner: st.lists(inner, max_size=4), max_leaves=15).map(json.dumps)))
def test_any_message_decodes_to_plain_data_or_raises_not_plain_data(message):
    try:
        decode(message)
    except NotPlainData:
        pass


def test_what_is_not_plain_data_is_refused_on_both_sides():
    for value in (object(), [1, object()], type("Int", (int,), {})(1), iter([1]), {1: {2: len}}, len, Exception,
                  type("Counted", (Counter,), {})(), collections.namedtuple("P", "x")):
        try:
            encode(value)
        except NotPlainData:
            continue
        raise AssertionError(f"{value!r} was encoded")
    deep = ["list", [["int", "1"]]]
    for _ in range(plain_data.MAX_DEPTH + 2):
        deep = ["list", [deep]]
    for message in (json.dumps(deep), '["int", "1" ]x', '["set", [["list", []]]]', '["int", "' + "f" * (1 << 21) + '"]',
                    '["code", ""]', '["bytes", "!!"]', '{"a": 1}', "[]", "1.5", "1" + "0" * 30,
                    '["ref", 1]', '["type", "function"]', '["defaultdict", "len", []]', '["namedtuple", "1x", [], []]',
                    '["namedtuple", "P", ["import"], [1]]', '["Fraction", "1", "0"]', '["Decimal", "' + "1" * 5000 + '"]',
                    '["Fraction", "' + "f" * 5000 + '", "1"]', '["range", [1, 2, 0]]', '["Counter", [[["list", []], 1]]]'):
        try:
            decode(message)
        except NotPlainData:
            continue
        raise AssertionError(f"{message[:40]!r} was decoded")



def test_the_standard_librarys_value_types_cross_as_themselves():
    Point = collections.namedtuple("Point", "x y")
    for value in (Counter("abracadabra"), OrderedDict([(2, "b"), (1, "a")]), deque([1, (2, 3)]),
                  fractions.Fraction(-3, 4), decimal.Decimal("1.10"), decimal.Decimal("-Infinity"),
                  bytearray(b"\x00\xff"), range(-2, 10, 3), [int, str, type(None)], Point(1, [2])):
        back = decode(encode(value))
        assert type(back) is type(value) or type(value) is Point, value
        assert back == value and repr(back) == repr(value)
    back = decode(encode(defaultdict(list, {"a": [1]})))
    assert type(back) is defaultdict and back["b"] == [] and back["a"] == [1]
    assert decode(encode(defaultdict(lambda: 0, {1: 2}))).default_factory is None  # only a built-in factory crosses
    back = decode(encode(plain_data.Iterated([1, 2])))
    assert list(back) == [1, 2] and back != [1, 2]  # an iterator, as the program returned one


def test_references_cross_only_where_a_side_gives_them():
    table = []
    message = encode([object(), 1], reference=lambda value: table.append(value) or len(table) - 1)
    assert json.loads(message) == ["list", [["ref", 0], 1]]
    assert decode(message, referent=lambda number: ("stand-in", number)) == [("stand-in", 0), 1]
