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


def ties_on_even_prompts(completions, prompts, **columns):
    """Constant 1 for prompts with an even digit sum (the group ties), else shortness."""
    return [1.0 if sum(int(ch) for ch in p if ch.isdigit()) % 2 == 0 else 1.0 / (1 + len(c))
            for c, p in zip(completions, prompts)]


def as_constant(completions, **columns):
    """0.5 for everything: every group ties."""
    return [0.5] * len(completions)


def character_codes(completions, **columns):
    """Mean character code / 128: differs between almost any two completions."""
    return [sum(map(ord, c)) / (128 * max(len(c), 1)) for c in completions]


def shortness_counting_calls(completions, **columns):
    """Shortness, counting the completions it saw (as the code rewards count sandbox errors)."""
    from rewards import tally

    tally.count("seen", len(completions))
    return shortness(completions)


def conversational_brevity(completions, **columns):
    """Written for TRL's conversational data (each completion a list of messages): 1 / (1 + length)
    of the assistant's reply; a plain string fails on the indexing."""
    return [1.0 / (1 + len(completion[0]["content"])) for completion in completions]


_calls = {"hangs_every_other_call": 0}


def hangs_every_other_call(completions, **columns):
    """Shortness, but every second call blocks for good (as a request to a server that never answers)."""
    import threading

    _calls["hangs_every_other_call"] += 1
    if _calls["hangs_every_other_call"] % 2 == 0:
        threading.Event().wait()
    return shortness(completions)


def spins_forever(completions, **columns):
    """Never returns: a loop in Python that keeps a core busy."""
    while True:
        pass


def with_its_own_alarm(completions, **columns):
    """Shortness under a signal.alarm of its own, as Math-Verify's parse and verify set one (which
    works only in the main thread)."""
    import signal

    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.alarm(5)
    try:
        return shortness(completions)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def swallows_its_errors(completions, **columns):
    """Scores 0.0 for any row it fails on, and it hangs on every row (a rule that turns a timeout
    into scores would train on those zeros)."""
    import time

    scores = []
    for _ in completions:
        try:
            time.sleep(3600)
            scores.append(1.0)
        except Exception:
            scores.append(0.0)
    return scores


_calls["fails_on_the_second_process"] = 0


def fails_on_the_second_process(completions, **columns):
    """Shortness, except on the second process of a launch from its second call on (the first is
    the evaluation before training): there it raises on every row."""
    import os

    _calls["fails_on_the_second_process"] += 1
    if os.environ.get("RANK", "0") == "1" and _calls["fails_on_the_second_process"] > 1:
        raise ValueError("this process's rows cannot be scored")
    return shortness(completions)


def shortness_but_every_fourth_unscored(completions, **columns):
    """Shortness, None for every fourth completion from the second on (one per group of four, as a
    verdict that ran out of time)."""
    return [None if i % 4 == 1 else 1.0 / (1 + len(c)) for i, c in enumerate(completions)]
