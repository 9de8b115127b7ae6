"""Plain data across the sandbox boundary: the only values a judged program can hand a test.

Values are None, bool, int, float, complex, str, bytes and lists, tuples, dicts, sets and
frozensets of them; the standard library's value types a solution returns (``Counter``,
``defaultdict`` with a built-in factory, ``OrderedDict``, ``deque``, a named tuple, ``Fraction``,
``Decimal``, ``bytearray``, ``range``, ``array``, dates, times and durations, a dict's views); built-in types as values (``int``, ``str``, ...); and an
exhausted iterator's items (a returned ``map`` or generator, which decodes to an iterator over
them). All of exactly those types: a subclass could carry its own ``__eq__``. They travel as
one line of JSON in which every value but None, bool, str and 64-bit ints is tagged, so a
decoded value is always a fresh object of a trusted type, whatever the bytes were:

>>> decode(encode({"a": (1, 2.5), "b": [None, {3}], 4: b"x", "c": 1 + 2j}))
{'a': (1, 2.5), 'b': [None, {3}], 4: b'x', 'c': (1+2j)}
>>> decode(encode(Counter("abca")))
Counter({'a': 2, 'b': 1, 'c': 1})
>>> class Always(int):
...     def __eq__(self, other):
...         return True
>>> encode(Always(1))
Traceback (most recent call last):
    ...
rewards.sandbox.plain_data.NotPlainData: Always is not plain data
>>> decode(b'["set", [["list", []]]]')
Traceback (most recent call last):
    ...
rewards.sandbox.plain_data.NotPlainData: unhashable type: 'list'

Anything else may cross *by reference* where a side gives ``encode`` a ``reference`` function
(an object's number) and ``decode`` a ``referent`` one (the number's stand-in): the program's
objects stay in its execution and the judge holds a proxy (``judge.Remote``).

The decoder is the trusted side: it bounds nesting and size, and anything but a well-formed
message raises :class:`NotPlainData`.
"""

from __future__ import annotations

import array
import base64
import collections
import datetime
import decimal
import fractions
import json
from collections import Counter, OrderedDict, defaultdict, deque
from typing import Callable

MAX_DEPTH = 64
BARE_INT = 1 << 63
MAX_HEX_DIGITS = 1 << 20
MAX_FRACTION_HEX_DIGITS = 1 << 12  # a fraction is reduced on decoding: gcd of 16k-bit numbers at most
MAX_DECIMAL_CHARS = 1 << 12
# built-in types that may cross as values (``isinstance(x, int)``), and a defaultdict's factory
TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bytearray, bool, list, tuple, dict, set,
                                 frozenset, object, type(None))}
MAPPINGS = {"Counter": Counter, "OrderedDict": OrderedDict}
VIEWS = {"keys": type({}.keys()), "values": type({}.values()), "items": type({}.items())}
TIMES = (datetime.date, datetime.datetime, datetime.time, datetime.timedelta)
TIMES_BY_NAME = {"date": datetime.date, "datetime": datetime.datetime, "time": datetime.time}
ARRAY_CODES = set(array.typecodes)
Reference = Callable[[object], int]
Referent = Callable[[int], object]


class NotPlainData(ValueError):
    """A value (or message) outside the plain-data types, too deep or malformed."""


class Iterated(list):
    """The items an iterator gave (made by the program's side, ``candidate.to_plain``): crosses as
    an iterator over them."""


def encode(value, reference: Reference | None = None) -> bytes:
    """One line of JSON for ``value``; raises NotPlainData for anything but plain data (or, with
    ``reference``, crosses anything else as ``["ref", reference(value)]``)."""
    return json.dumps(tagged(value, 0, reference), separators=(",", ":")).encode()


def decode(message: bytes | str, referent: Referent | None = None):
    """The value ``message`` encodes, built from fresh objects of trusted types (references
    become ``referent(number)``; without ``referent`` they are refused)."""
    try:
        return untagged(json.loads(message), 0, referent)
    except NotPlainData:
        raise
    except (ValueError, TypeError, RecursionError, OverflowError, ArithmeticError, decimal.InvalidOperation) as err:
        raise NotPlainData(str(err)) from None


def tagged(value, depth: int, reference: Reference | None = None):
    if depth > MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    kind, inner = type(value), depth + 1
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:  # bare when small; big ones in hex (no limit on digits, unlike int(str))
        return value if -BARE_INT < value < BARE_INT else ["int", format(value, "x")]
    if kind is float:
        return ["float", value.hex()]  # exact, and NaN/inf survive strict JSON
    if kind is complex:
        return ["complex", value.real.hex(), value.imag.hex()]
    if kind in (bytes, bytearray):
        return [kind.__name__, base64.b64encode(value).decode()]
    if kind in (list, tuple, set, frozenset, deque):
        return [kind.__name__, [tagged(item, inner, reference) for item in value]]
    if kind is Iterated:
        return ["iter", [tagged(item, inner, reference) for item in value]]
    if kind in (dict, Counter, OrderedDict):
        return [kind.__name__, [[tagged(k, inner, reference), tagged(v, inner, reference)] for k, v in value.items()]]
    if kind is defaultdict:
        factory = value.default_factory
        name = factory.__name__ if factory is not None and TYPES.get(factory.__name__) is factory else None
        return ["defaultdict", name, [[tagged(k, inner, reference), tagged(v, inner, reference)]
                                      for k, v in value.items()]]
    if kind is fractions.Fraction:
        return ["Fraction", format(value.numerator, "x"), format(value.denominator, "x")]
    if kind is decimal.Decimal:
        return ["Decimal", str(value)]
    if kind is range:
        return ["range", [value.start, value.stop, value.step]] if all(
            type(n) is int and -BARE_INT < n < BARE_INT for n in (value.start, value.stop, value.step)) else \
            tagged(list(value), depth, reference)
    if kind is type and TYPES.get(value.__name__) is value:
        return ["type", value.__name__]
    if kind in VIEWS.values():
        name = next(n for n, v in VIEWS.items() if v is kind)
        items = [[tagged(k, inner, reference), tagged(v, inner, reference)] for k, v in value] if name == "items" \
            else [tagged(item, inner, reference) for item in value]
        return [name, items]
    if kind in TIMES:
        return [kind.__name__, value.isoformat()] if kind is not datetime.timedelta else \
            ["timedelta", [value.days, value.seconds, value.microseconds]]
    if kind is array.array:
        return ["array", value.typecode, [tagged(item, inner, reference) for item in value]]
    if issubclass(kind, tuple) and is_named_tuple(kind):
        return ["namedtuple", kind.__name__, list(kind._fields), [tagged(item, inner, reference) for item in value]]
    if reference is not None:
        return ["ref", reference(value)]
    raise NotPlainData(f"{kind.__name__} is not plain data")


def is_named_tuple(kind: type) -> bool:
    fields = getattr(kind, "_fields", None)
    return (kind.__bases__ == (tuple,) and type(fields) is tuple and all(type(f) is str for f in fields)
            and type(kind.__name__) is str)


def untagged(node, depth: int, referent: Referent | None = None):
    if depth > MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    if node is None or type(node) in (bool, str) or (type(node) is int and -BARE_INT < node < BARE_INT):
        return node
    if type(node) is not list or not node or type(node[0]) is not str:
        raise NotPlainData(f"malformed value {str(node)[:40]!r}")
    tag, args, inner = node[0], node[1:], depth + 1
    if tag in SCALARS and len(args) == SCALARS[tag][0] and all(type(a) is str for a in args):
        return SCALARS[tag][1](*args)
    if tag == "ref" and referent is not None and len(args) == 1 and type(args[0]) is int:
        return referent(args[0])
    if tag == "range" and len(args) == 1 and type(args[0]) is list and len(args[0]) == 3 \
            and all(type(n) is int for n in args[0]):
        return range(*args[0])
    if tag == "defaultdict" and len(args) == 2 and (args[0] is None or args[0] in TYPES):
        return defaultdict(TYPES.get(args[0]), pairs(args[1], inner, referent))
    if tag == "timedelta" and len(args) == 1 and type(args[0]) is list and len(args[0]) == 3 \
            and all(type(n) is int for n in args[0]):
        return datetime.timedelta(days=args[0][0], seconds=args[0][1], microseconds=args[0][2])
    if tag in TIMES_BY_NAME and len(args) == 1 and type(args[0]) is str and len(args[0]) < 64:
        return TIMES_BY_NAME[tag].fromisoformat(args[0])
    if tag == "array" and len(args) == 2 and args[0] in ARRAY_CODES and type(args[1]) is list:
        return array.array(args[0], [untagged(item, inner, referent) for item in args[1]])
    if tag == "keys" and len(args) == 1 and type(args[0]) is list:
        return dict.fromkeys(untagged(item, inner, referent) for item in args[0]).keys()
    if tag == "values" and len(args) == 1 and type(args[0]) is list:
        return dict(enumerate(untagged(item, inner, referent) for item in args[0])).values()
    if tag == "items" and len(args) == 1:
        return dict(pairs(args[0], inner, referent)).items()
    if tag == "namedtuple" and len(args) == 3 and type(args[1]) is list and type(args[2]) is list:
        return named_tuple_type(args[0], tuple(args[1]))(*(untagged(item, inner, referent) for item in args[2]))
    if len(args) != 1 or type(args[0]) is not list:
        raise NotPlainData(f"malformed {tag!r} value")
    items = args[0]
    if tag in ("dict", *MAPPINGS):
        entries = dict(pairs(items, inner, referent))
        return entries if tag == "dict" else MAPPINGS[tag](entries)
    if tag in CONTAINERS:
        return CONTAINERS[tag](untagged(item, inner, referent) for item in items)
    if tag == "iter":
        return iter([untagged(item, inner, referent) for item in items])
    raise NotPlainData(f"unknown tag {tag[:20]!r}")


def pairs(items, depth: int, referent: Referent | None) -> list[tuple]:
    if type(items) is not list or not all(type(pair) is list and len(pair) == 2 for pair in items):
        raise NotPlainData("malformed dict entry")
    return [(untagged(k, depth, referent), untagged(v, depth, referent)) for k, v in items]


_named_tuples: dict[tuple, type] = {}


def named_tuple_type(name, fields: tuple) -> type:
    """The judge's own named-tuple class of that name and fields (made once, a few hundred kept)."""
    if type(name) is not str or not all(type(f) is str for f in fields) or len(fields) > 256:
        raise NotPlainData("malformed named tuple")
    key = (name, fields)
    if key not in _named_tuples:
        if len(_named_tuples) > 256:
            _named_tuples.clear()
        _named_tuples[key] = collections.namedtuple(name, fields)  # refuses names that are not identifiers
    return _named_tuples[key]


def hex_int(digits: str, most: int = MAX_HEX_DIGITS) -> int:
    if len(digits) > most:
        raise NotPlainData("integer too large")
    return int(digits, 16)


def fraction(numerator: str, denominator: str) -> fractions.Fraction:
    return fractions.Fraction(hex_int(numerator, MAX_FRACTION_HEX_DIGITS), hex_int(denominator, MAX_FRACTION_HEX_DIGITS))


def decimal_number(text: str) -> decimal.Decimal:
    if len(text) > MAX_DECIMAL_CHARS:
        raise NotPlainData("decimal too long")
    return decimal.Decimal(text)


def builtin_type(name: str) -> type:
    if name not in TYPES:
        raise NotPlainData(f"not a built-in type {name[:20]!r}")
    return TYPES[name]


SCALARS = {
    "int": (1, hex_int),
    "float": (1, float.fromhex),
    "complex": (2, lambda real, imag: complex(float.fromhex(real), float.fromhex(imag))),
    "bytes": (1, lambda text: base64.b64decode(text, validate=True)),
    "bytearray": (1, lambda text: bytearray(base64.b64decode(text, validate=True))),
    "Fraction": (2, fraction),
    "Decimal": (1, decimal_number),
    "type": (1, builtin_type),
}
CONTAINERS = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "deque": deque}
