"""Format rewards for the DeepSeek-R1 template: reasoning in ``<think>``, the answer in ``<answer>``.

DeepSeek-AI (2025), "DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement
Learning", sec. 2.2.2: a format reward "that enforces the model to put its thinking process
between '<think>' and '</think>' tags", next to the accuracy reward. ``tag_count`` is the dense
version open-r1 uses early in training, when the strict format is still rare.
"""

from __future__ import annotations

import re

from rewards.conversation import text_completions
from rewards.registry import reward

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
R1_FORMAT = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)


def opened(completion: str, think_opened: bool) -> str:
    """The completion as if it began with ``<think>`` when the prompt already opened it (R1-Zero
    templates end the prompt with ``<think>``, so the model writes only the rest)."""
    return "<think>" + completion if think_opened else completion


@reward("format")
@text_completions
def format_reward(completions: list[str], think_opened: bool = False, **columns) -> list[float]:
    """1.0 when the completion is exactly ``<think>...</think>`` then ``<answer>...</answer>``
    (whitespace around them allowed, each tag once, nothing after), else 0.0.

    ``think_opened``: the prompt ends with ``<think>``, so completions start inside it.

    >>> format_reward(["<think>2+2 is 4</think>\\n<answer>4</answer>", "<answer>4</answer>",
    ...                "<think>a</think><answer>4</answer> and more", "<think>a<think>b</think><answer>4</answer>"])
    [1.0, 0.0, 0.0, 0.0]
    >>> format_reward(["so 4</think> <answer>4</answer>"], think_opened=True)
    [1.0]
    """
    scores = []
    for completion in completions:
        text = opened(completion, think_opened)
        once = all(text.count(tag) == 1 for tag in TAGS)
        scores.append(1.0 if once and R1_FORMAT.fullmatch(text) else 0.0)
    return scores


@reward("tag_count")
@text_completions
def tag_count(completions: list[str], think_opened: bool = False, **columns) -> list[float]:
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` that appears exactly
    once: partial credit on the way to the full format (open-r1's ``tag_count_reward``).

    >>> tag_count(["<think>x</think><answer>1</answer>", "<think>x</think> 1", "<answer>1</answer><answer>2</answer>", ""])
    [1.0, 0.5, 0.0, 0.0]
    """
    return [0.25 * sum(opened(c, think_opened).count(tag) == 1 for tag in TAGS) for c in completions]


def think_span(completion: str, think_opened: bool = False) -> str:
    """The reasoning: the text inside ``<think>...</think>`` when there is one, else everything
    before ``<answer>`` (or the whole completion)."""
    text = opened(completion, think_opened)
    found = re.search(r"<think>(.*?)</think>", text, re.DOTALL)
    if found:
        return found.group(1)
    return text.split("<answer>", 1)[0]
