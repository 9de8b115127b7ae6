"""Length shaping rewards: DAPO's soft overlong punishment, Kimi k1.5's length reward, and the
cosine length scaling of Yeo et al. (2025)."""

from __future__ import annotations

import math
from collections import defaultdict

from rewards.conversation import text_completions
from rewards.math_answer import math_accuracy
from rewards.registry import RewardError, reward


@reward("soft_overlong_punishment")
@reward("overlong_penalty")
@text_completions
def overlong_penalty(completions: list[str], completion_ids: list[list[int]] | None = None,
                     max_completion_length: int | None = None, cache_length: int | None = None,
                     **columns) -> list[float]:
    """DAPO's soft overlong punishment (Yu et al., 2025, eq. 13), on completion token counts.

    0 up to ``max_completion_length - cache_length`` tokens, then falling linearly to -1 at
    ``max_completion_length``; -1 beyond it. Set ``max_completion_length`` to the rollout's
    ``max_new_tokens`` and ``cache_length`` to the soft band (the paper: 20480 and 4096).

    >>> overlong_penalty(["", "", "", ""], completion_ids=[[0] * 6, [0] * 8, [0] * 10, [0] * 12],
    ...                  max_completion_length=10, cache_length=4)
    [0.0, -0.5, -1.0, -1.0]
    """
    if max_completion_length is None or cache_length is None:
        raise RewardError("overlong_penalty needs args max_completion_length and cache_length")
    if not 0 < cache_length <= max_completion_length:
        raise RewardError(f"overlong_penalty: cache_length must be in (0, max_completion_length], "
                          f"got {cache_length} and {max_completion_length}")
    if completion_ids is None:
        raise RewardError("overlong_penalty needs the column completion_ids (token ids of each "
                          "completion), which the trainer passes")
    free = max_completion_length - cache_length
    return [max(-1.0, min(0.0, (free - len(ids)) / cache_length)) for ids in completion_ids]


def lengths(completions: list[str], completion_ids: list[list[int]] | None) -> list[int]:
    """Token counts when the caller passes ``completion_ids`` (training and ``rlreason eval`` do),
    else character counts (e.g. ``rlreason rewards score`` on rows without ids)."""
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(c) for c in completions]


def correctness(completions: list[str], answer: list | None, name: str, **math_args) -> list[bool]:
    if answer is None:
        raise RewardError(f"{name} needs the column answer (the reference it checks correctness against)")
    return [score == 1.0 for score in math_accuracy(completions, answer=answer, **math_args)]


@reward("length")
@text_completions
def kimi_length(completions: list[str], answer: list | None = None, prompts: list | None = None,
                completion_ids: list[list[int]] | None = None, **columns) -> list[float]:
    """Kimi k1.5's length reward (Kimi Team, 2025, "Kimi k1.5: Scaling Reinforcement Learning with
    LLMs", sec. 2.3.3), among the completions of the same prompt: with
    ``lambda = 0.5 - (len - min_len) / (max_len - min_len)``, a correct completion gets
    ``lambda`` and a wrong one ``min(0, lambda)``: shorter correct answers are rewarded, longer
    wrong ones penalised. 0 for every completion of a prompt whose completions are all one length.
    Correctness is ``math_accuracy`` against ``answer``.

    >>> kimi_length(["12", "so it is 12", "it is 13, I think, or so"], answer=["12"] * 3,
    ...             prompts=["5+7="] * 3, completion_ids=[[0] * 2, [0] * 6, [0] * 10])
    [0.5, 0.0, -0.5]
    """
    correct = correctness(completions, answer, "length")
    sizes = lengths(completions, completion_ids)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts if prompts is not None else [""] * len(completions)):
        groups[str(prompt)].append(i)
    scores = [0.0] * len(completions)
    for rows in groups.values():
        shortest, longest = min(sizes[i] for i in rows), max(sizes[i] for i in rows)
        if longest == shortest:
            continue
        for i in rows:
            lam = 0.5 - (sizes[i] - shortest) / (longest - shortest)
            scores[i] = lam if correct[i] else min(0.0, lam)
    return scores


@reward("cosine")
@text_completions
def cosine_length(completions: list[str], answer: list | None = None,
                  completion_ids: list[list[int]] | None = None, max_length: int | None = None,
                  min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                  min_value_wrong: float = -1.0, max_value_wrong: float = -0.5, **columns) -> list[float]:
    """Cosine length scaling (Yeo et al., 2025, "Demystifying Long Chain-of-Thought Reasoning in
    LLMs", sec. 4.1): the reward moves along a half cosine from length 0 to ``max_length`` (set it
    to the rollout's ``max_new_tokens``): correct answers from ``max_value_correct`` down to
    ``min_value_correct`` (short and right is best), wrong ones from ``min_value_wrong`` up to
    ``max_value_wrong`` (a long wrong attempt is penalised less than a short guess). Correctness is
    ``math_accuracy`` against ``answer``; lengths past ``max_length`` count as ``max_length``.

    >>> cosine_length(["12", "12", "12", "13", "13"], answer=["12"] * 5, max_length=10,
    ...               completion_ids=[[], [0] * 5, [0] * 10, [], [0] * 10])
    [1.0, 0.75, 0.5, -1.0, -0.5]
    """
    if max_length is None or max_length <= 0:
        raise RewardError("cosine needs args max_length > 0 (the rollout's max_new_tokens)")
    correct = correctness(completions, answer, "cosine")
    scores = []
    for size, right in zip(lengths(completions, completion_ids), correct):
        cosine = math.cos(math.pi * min(size, max_length) / max_length)  # 1 at length 0, -1 at max
        low, high = (min_value_correct, max_value_correct) if right else (max_value_wrong, min_value_wrong)
        scores.append(round(low + 0.5 * (high - low) * (1.0 + cosine), 12))
    return scores
