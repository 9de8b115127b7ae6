"""Two rewards in rlreason's (and TRL's) signature: ``fn(completions, **columns) -> list[float | None]``.

rlreason finds them by name through the ``rlreason.rewards`` entry points in pyproject.toml.
"""

from __future__ import annotations

import re

# "Step 1:", "1.", "- ", "* ", and the connectives of a worked solution (open-r1's reasoning_steps_reward)
STEP = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)


def reasoning_steps(completions: list[str], min_steps: int = 3, **columns) -> list[float]:
    """Share of ``min_steps`` explicit reasoning steps the completion shows, capped at 1.

    >>> reasoning_steps(["Step 1: add the ones.\\nStep 2: carry.\\nStep 3: add the tens.", "First, 12.", "12"])
    [1.0, 0.333, 0.0]
    """
    if min_steps < 1:
        raise ValueError(f"reasoning_steps: min_steps must be >= 1, got {min_steps}")
    return [round(min(1.0, len(STEP.findall(c)) / min_steps), 3) for c in completions]


def answer_mentioned(completions: list[str], answer: list | None = None, **columns) -> list[float | None]:
    """1.0 when the reference ``answer`` (a dataset column) appears in the completion as a whole
    token, else 0.0; ``None`` (does not apply) for rows without one.

    >>> answer_mentioned(["so it is 12", "it is 123", "12"], answer=["12", "12", None])
    [1.0, 0.0, None]
    """
    if answer is None:
        raise ValueError("answer_mentioned needs the dataset column 'answer'")
    scores: list[float | None] = []
    for completion, gold in zip(completions, answer):
        if gold is None:
            scores.append(None)
        else:
            found = re.search(rf"(?<![\w.]){re.escape(str(gold).strip())}(?![\w])", completion)
            scores.append(1.0 if found else 0.0)
    return scores
