"""Plain data across the sandbox boundary: the only values a judged program can hand a test.

Values are None, bool, int, float, complex, str, bytes and lists, tuples, dicts, sets and
frozensets of them, of those exact types (a subclass could carry its own ``__eq__``). They
travel as one line of JSON in which every value but None, bool, str and 64-bit ints is tagged, so
a decoded value is always a fresh object of a built-in type, whatever the bytes were:

>>> decode(encode({"a": (1, 2.5), "b": [None, {3}], 4: b"x", "c": 1 + 2j}))
{'a': (1, 2.5), 'b': [None, {3}], 4: b'x', 'c': (1+2j)}
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

The decoder is the trusted side: it bounds nesting and size, and anything but a well-formed
message raises :class:`NotPlainData`.
"""

from __future__ import annotations

import base64
import json

MAX_DEPTH = 64
BARE_INT = 1 << 63


class NotPlainData(ValueError):
    """A value (or message) outside the plain-data types, too deep or malformed."""


def encode(value) -> bytes:
    """One line of JSON for ``value``; raises NotPlainData for anything but plain data."""
    return json.dumps(tagged(value, 0), separators=(",", ":")).encode()


def decode(message: bytes | str):
    """The value ``message`` encodes, built from fresh built-in objects."""
    try:
        return untagged(json.loads(message), 0)
    except NotPlainData:
        raise
    except (ValueError, TypeError, RecursionError, OverflowError) as err:
        raise NotPlainData(str(err)) from None


def tagged(value, depth: int):
    if depth > MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:  # bare when small; big ones in hex (no limit on digits, unlike int(str))
        return value if -BARE_INT < value < BARE_INT else ["int", format(value, "x")]
    if kind is float:
        return ["float", value.hex()]  # exact, and NaN/inf survive strict JSON
    if kind is complex:
        return ["complex", value.real.hex(), value.imag.hex()]
    if kind is bytes:
        return ["bytes", base64.b64encode(value).decode()]
    if kind in (list, tuple, set, frozenset):
        return [kind.__name__, [tagged(item, depth + 1) for item in value]]
    if kind is dict:
        return ["dict", [[tagged(k, depth + 1), tagged(v, depth + 1)] for k, v in value.items()]]
    raise NotPlainData(f"{kind.__name__} is not plain data")


def untagged(node, depth: int):
    if depth > MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    if node is None or type(node) in (bool, str) or (type(node) is int and -BARE_INT < node < BARE_INT):
        return node
    if type(node) is not list or not node or type(node[0]) is not str:
        raise NotPlainData(f"malformed value {str(node)[:40]!r}")
    tag, args = node[0], node[1:]
    if tag in SCALARS and len(args) == SCALARS[tag][0] and all(type(a) is str for a in args):
        return SCALARS[tag][1](*args)
    if len(args) != 1 or type(args[0]) is not list:
        raise NotPlainData(f"malformed {tag!r} value")
    items = args[0]
    if tag == "dict":
        if not all(type(pair) is list and len(pair) == 2 for pair in items):
            raise NotPlainData("malformed dict entry")
        return {untagged(k, depth + 1): untagged(v, depth + 1) for k, v in items}
    if tag in CONTAINERS:
        return CONTAINERS[tag](untagged(item, depth + 1) for item in items)
    raise NotPlainData(f"unknown tag {tag[:20]!r}")


def hex_int(digits: str) -> int:
    if len(digits) > 1 << 20:
        raise NotPlainData("integer too large")
    return int(digits, 16)


SCALARS = {
    "int": (1, hex_int),
    "float": (1, float.fromhex),
    "complex": (2, lambda real, imag: complex(float.fromhex(real), float.fromhex(imag))),
    "bytes": (1, lambda text: base64.b64decode(text, validate=True)),
}
CONTAINERS = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}
