"""Sampled-evaluation statistics: pass@k (unbiased estimator) and majority voting (maj@k).

Pure functions over per-sample outcomes; no model, no I/O.
"""

from __future__ import annotations

from collections import Counter


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n of which c
    are correct, is correct: 1 - C(n-c, k) / C(n, k), the unbiased estimator of Chen et al.,
    2021 (*Evaluating Large Language Models Trained on Code*), in its stable product form.

    >>> pass_at_k(10, 0, 4), pass_at_k(10, 10, 4), pass_at_k(4, 1, 4)
    (0.0, 1.0, 1.0)
    >>> round(pass_at_k(10, 3, 1), 6)
    0.3
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    missed = 1.0
    for drawn in range(n - c + 1, n + 1):
        missed *= 1.0 - k / drawn
    return 1.0 - missed


def majority_correct(answers: list[str | None], correct: list[bool]) -> bool:
    """maj@k: whether the answer most samples agree on (first seen wins a tie; samples with no
    answer do not vote) is a correct one.

    >>> majority_correct(["12", "13", "12", None], [True, False, True, False])
    True
    >>> majority_correct(["13", "12", "13"], [False, True, False])
    False
    >>> majority_correct([None, None], [False, False])
    False
    """
    votes = Counter(answer for answer in answers if answer is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(answer for answer in answers if answer is not None and votes[answer] == top)
    return any(ok for answer, ok in zip(answers, correct) if answer == winner)


def k_values(k: int) -> list[int]:
    """The k of pass@k to report for k samples per problem: powers of two up to k, and k.

    >>> k_values(8), k_values(5), k_values(1)
    ([1, 2, 4, 8], [1, 2, 4, 5], [1])
    """
    values, j = [], 1
    while j < k:
        values.append(j)
        j *= 2
    return values + [k]
