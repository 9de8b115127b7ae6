"""How to test a reward plugin: call it like the trainer does, on rows you write down."""

import pytest

from rlreason_example_rewards import answer_mentioned, reasoning_steps


def test_reasoning_steps_counts_up_to_min_steps():
    worked = "First, add the ones.\nNext, carry the ten.\nFinally, add the tens: 12."
    assert reasoning_steps([worked, "12"]) == [1.0, 0.0]
    assert reasoning_steps([worked], min_steps=6) == [0.5]
    with pytest.raises(ValueError, match="min_steps"):
        reasoning_steps(["x"], min_steps=0)


def test_answer_mentioned_reads_the_answer_column():
    assert answer_mentioned(["the sum is 12.", "1200", "12"], answer=["12", "12", None]) == [1.0, 0.0, None]
