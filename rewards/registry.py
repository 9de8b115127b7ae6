"""Find reward functions by name: the decorator registry, the ``rlreason.rewards``
entry-point group, or a dotted ``package.module:function`` path."""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Callable

ENTRY_POINT_GROUP = "rlreason.rewards"

RewardFn = Callable[..., list]

_registry: dict[str, RewardFn] = {}


class RewardError(ValueError):
    """A reward that cannot be found or that broke its contract; the message names it."""


def reward(name: str | None = None):
    """Register ``fn(completions, **columns) -> list[float | None]`` under ``name``.

    >>> @reward("always_one")
    ... def always_one(completions, **columns):
    ...     return [1.0] * len(completions)
    >>> resolve("always_one")(["a", "b"])
    [1.0, 1.0]
    """

    def register(fn: RewardFn) -> RewardFn:
        key = name or fn.__name__
        known = _registry.get(key)
        if known is not None and known.__qualname__ != fn.__qualname__:
            raise RewardError(f"reward name {key!r} is taken by {describe(known)}")
        _registry[key] = fn
        return fn

    return register


def resolve(name: str) -> RewardFn:
    """The reward function called ``name``; an unknown name lists the valid ones."""
    if name in _registry:
        return _registry[name]
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name in plugins:
        return plugins[name].load()
    if ":" in name:
        return import_dotted(name)
    valid = sorted(set(_registry) | set(plugins))
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise RewardError(
        f"unknown reward {name!r}; {hint}valid names: {', '.join(valid)} "
        "(or give 'package.module:function')"
    )


def import_dotted(path: str) -> RewardFn:
    module_name, _, attr = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise RewardError(f"cannot import reward {path!r}: {err}") from None
    if not callable(fn):
        raise RewardError(f"reward {path!r} is not callable")
    return fn


def available() -> dict[str, RewardFn]:
    """Every registered and entry-point reward, by name."""
    found = dict(_registry)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.load())
    return found


def describe(fn: RewardFn) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"
