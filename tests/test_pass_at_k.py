"""pass@k against its closed form, majority voting, and the sampled evaluation's bookkeeping."""

import math

import pytest

from rlreason.pass_at_k import k_values, majority_correct, pass_at_k


def test_pass_at_k_is_the_closed_form_estimator():
    for n in range(1, 17):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1.0 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12), (n, c, k)


def test_pass_at_k_grows_with_k_and_is_the_solve_rate_at_one():
    assert [round(pass_at_k(8, 2, k), 6) for k in (1, 2, 4, 8)] == [0.25, 0.464286, 0.785714, 1.0]
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


def test_majority_vote_counts_answers_not_samples_without_one():
    assert majority_correct(["7", None, None, "7", "8"], [True, False, False, True, False])
    assert not majority_correct(["8", "7", "8"], [False, True, False])
    assert majority_correct(["7", "8"], [True, False])  # a tie goes to the first answer seen
    assert k_values(16) == [1, 2, 4, 8, 16]
