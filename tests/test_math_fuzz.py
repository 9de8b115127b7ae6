"""math_accuracy and answers_equal on random strings and LaTeX fragments: none raises, none is slow.

A policy writes whatever it writes; a reward that raises or stalls on it ends or holds up a step.
"""

import signal
import time
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards.math_answer import math_accuracy
from rewards.math_equivalence import answers_equal, quick_verdict

FRAGMENTS = ["\\frac{", "\\dfrac", "}", "{", "\\boxed{", "\\sqrt", "^", "_", "x", "n", "1", "0", "7", "10",
             "9999999999", "/", "=", ",", ".", "-", "+", "*", "!", "'", "%", "\\%", "$", "\\$", " ", "\n",
             "\\left(", "\\right)", "(", ")", "[", "]", "\\{", "\\}", "\\infty", "\\pi", "e", "i", "\\text{",
             "\\mathrm{", "\\begin{pmatrix}", "&", "\\\\", "\\end{pmatrix}", "\\cup", "\\cap", "<", ">", "\\le",
             "\\geq", "\\neq", "\\approx", "^\\circ", "\\sin", "\\log", "\\cdot", "\\times", ":", ";",
             "\\mathbb{R}", "\\emptyset", "The answer is ", "Final Answer: ", " and ", "\\pm", "0/0", "1/0",
             " 1/4", "3 ", ">=", "!=", "\\lt", "\\sum_{k=0}^{n}", "\\begin{cases}", "\\end{cases}", "1,000",
             "\\(", "\\)", "\\[", "\\]", " percent", "\\fbox{", "<answer>", "</answer>", "#### ", " is "]
latex = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
texts = st.one_of(latex, st.text(max_size=80))
MAX_SECONDS = 1.0


class Stalled(Exception):
    pass


@contextmanager
def stall_alarm(seconds: float = 10.0):
    """A stall fails the example (hypothesis then shows it) instead of hanging the suite."""
    def stalled(*_):
        raise Stalled(f"over {seconds} s")
    previous = signal.signal(signal.SIGALRM, stalled)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def score_both(completion: str, gold: str) -> float:
    started = time.perf_counter()
    with stall_alarm():
        math_accuracy([completion], answer=[gold])
        answers_equal(completion, gold)
    return time.perf_counter() - started


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(texts, texts)
def test_random_answers_neither_raise_nor_stall(completion, gold):
    assert score_both(completion, gold) < MAX_SECONDS



@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(texts, texts)
def test_the_quick_path_never_contradicts_the_full_comparison(predicted, gold):
    with stall_alarm():
        quick = quick_verdict(predicted, gold)
        assert quick is None or quick == answers_equal(predicted, gold)
