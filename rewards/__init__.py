"""Rule-based reward functions (pure Python, no torch).

A reward is ``fn(completions: list[str], **columns) -> list[float | None]``: one score per
completion, ``None`` where it does not apply. ``columns`` are the dataset's other fields,
one value per completion (e.g. ``answer``), plus ``prompts`` and, in training,
``completion_ids`` (the generated token ids), as in TRL.
"""

from rewards.registry import RewardError, available, resolve, reward
from rewards.suite import RewardSuite
from rewards import code, length, math_answer, partial_credit, r1_format, repetition  # noqa: F401  (registers the built-ins)

__all__ = ["RewardError", "RewardSuite", "available", "resolve", "reward"]
