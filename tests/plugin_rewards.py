"""A reward plugin as a user would write one, registered from a test module."""

from rewards import reward


@reward("test_plugin_shortness")
def shortness(completions, **columns):
    """1 / (1 + length): favours short completions."""
    return [1.0 / (1 + len(c)) for c in completions]


def digits_fraction(completions, **columns):
    """Share of characters that are digits (found by dotted path, not registered)."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def as_integer(completions, **columns):
    """The completion read as an integer (raises on anything else)."""
    return [float(int(c)) for c in completions]
