"""math_accuracy and its building blocks: every answer category, real data, bounded cost."""

import collections
import json
import subprocess
import sys
import threading
import time

import pytest

from benchmarks.math_cases import CASES, RAW_CASES, render, rows
from rewards.math_answer import math_accuracy
from rewards.math_equivalence import answers_equal
from rewards.math_extract import extract_answer, gold_answer
from tests.conftest import ROOT


@pytest.mark.parametrize("category, predicted, gold, expected", CASES,
                         ids=[f"{c}-{i}" for i, (c, *_rest) in enumerate(CASES)])
def test_labelled_case(category, predicted, gold, expected):
    index = CASES.index((category, predicted, gold, expected))
    completion = render(predicted, index)
    assert math_accuracy([completion], answer=[gold]) == [float(expected)], completion


@pytest.mark.parametrize("category, completion, gold, expected", RAW_CASES,
                         ids=[f"raw-{i}" for i in range(len(RAW_CASES))])
def test_labelled_completion(category, completion, gold, expected):
    assert math_accuracy([completion], answer=[gold]) == [float(expected)], completion


def test_every_category_has_positives_and_negatives():
    seen = collections.defaultdict(set)
    for category, _, _, expected in CASES + RAW_CASES:
        seen[category].add(expected)
    thin = [c for c, verdicts in seen.items() if verdicts != {True, False}]
    assert not thin, f"categories missing a positive or a negative: {thin}"
    assert len(seen) >= 20


@pytest.mark.parametrize("text, expected", [
    (r"first \boxed{1} then \boxed{\frac{a}{\sqrt{b}}}", r"\frac{a}{\sqrt{b}}"),  # last box, nested braces
    (r"so \fbox{7}", "7"),
    (r"\boxed 5 is it", "5"),
    ("The answer is 17, since ...", "17"),
    ("Answer: $x^2$", "x^2"),
    ("**Final Answer:** The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
    ("<think>2+2</think><answer>4</answer>", "4"),
    ("she earns 5 + 7 = 12 dollars\n#### 12", "12"),
    ("I computed 3 then 4 and finally 1,250", "1,250"),
    ("no answer at all", None),
])
def test_extraction(text, expected):
    assert extract_answer(text) == expected


def test_extractor_order_is_configurable():
    text = r"#### 5 but \boxed{6}"
    assert extract_answer(text) == "6"
    assert extract_answer(text, ["gsm8k", "boxed"]) == "5"
    assert math_accuracy([text], answer=["5"], extractors=["gsm8k"]) == [1.0]
    with pytest.raises(ValueError, match="unknown extractor 'boxd'"):
        extract_answer(text, ["boxd"])


def test_gold_solutions_are_reduced_to_their_answer():
    assert gold_answer("Work... so \\boxed{\\dfrac{3}{4}}.") == "\\dfrac{3}{4}"
    assert gold_answer("Natalia sold 48/2 = 24 clips.\n#### 72") == "72"
    assert gold_answer("  ") is None


@pytest.mark.parametrize("name, solution_key, gsm8k", [("math500_test.jsonl", "solution", False),
                                                       ("gsm8k_test.jsonl", "answer", True)])
def test_reference_solutions_match_their_own_answer_and_not_others(shared_data, name, solution_key, gsm8k):
    data = [json.loads(line) for line in (shared_data / name).read_text().splitlines()]
    gold = [(r["answer"].split("####")[-1].strip() if gsm8k else r["answer"]) for r in data]
    others = gold[1:] + gold[:1]
    solutions = [r[solution_key] for r in data]
    own = math_accuracy(solutions, answer=gold)
    other = math_accuracy(solutions, answer=others)
    differ = [not answers_equal(o, g) for g, o in zip(gold, others)]  # '5' and 'x=5' are one answer
    right = sum(v == 1.0 for v in own) + sum(v == 0.0 for v, d in zip(other, differ) if d)
    total = len(data) + sum(differ)
    assert total - right <= max(1, total // 1000), f"{right}/{total}"  # at least 999 in 1000


PATHOLOGICAL = [
    r"\boxed{10^{10^{10^{10}}}}",
    r"\boxed{9^{9^{9^9}}}",
    r"\boxed{\sin(10^{10^{10}})}",
    r"\boxed{(x+1)^{100000}}",
    "x " * 100_000 + r"\boxed{3}",                         # 200 kB of text
    r"\boxed{" + "(" * 300 + "3" + ")" * 300 + "}",        # 300 nested parentheses
    r"\boxed{" + r"\frac{1}{" * 400 + "3" + "}" * 400 + "}",
    r"\boxed{" + "{" * 5000 + "}",                         # unbalanced
    "*" * 200_000,                                         # runs of one character: no regex rescans them
    ("*" * 1000 + "final") * 200,
    "$" * 200_000,
    " " * 200_000 + "1",
    "\\(" * 100_000,
    "1 " * 100_000,
]


def test_a_batch_with_pathological_rows_finishes_fast_and_scores_the_rest():
    normal = [r"\boxed{3}", r"\boxed{\frac{6}{2}}", r"\boxed{4}"]
    completions = PATHOLOGICAL + normal
    started = time.perf_counter()
    scores = math_accuracy(completions, answer=["3"] * len(completions), timeout=1.0)
    elapsed = time.perf_counter() - started
    assert scores[-3:] == [1.0, 1.0, 0.0]
    assert scores[4] == 1.0 and scores[5] == 1.0  # long text and deep nesting are still read right
    assert all(s in (0.0, 1.0) for s in scores)
    assert elapsed < 2.0 * len(PATHOLOGICAL)  # every row bounded by its budget


@pytest.mark.parametrize("completion", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_no_row_takes_more_than_two_seconds(completion):
    started = time.perf_counter()
    math_accuracy([completion], answer=["5"], timeout=1.0)
    assert time.perf_counter() - started < 2.0


def test_bounded_from_a_worker_thread():
    # signal.alarm cannot work here; the worker-process budget must
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        scores=math_accuracy([PATHOLOGICAL[0], r"\boxed{5}"], answer=["5", "5"], timeout=0.5)))
    started = time.perf_counter()
    thread.start()
    thread.join(10)
    assert result["scores"] == [0.0, 1.0] and time.perf_counter() - started < 3


def test_direct_equivalence_api():
    assert answers_equal(r"\frac{1}{2}", "0.5")
    assert not answers_equal("x^2", "x^3")


def test_score_command_on_the_labelled_set_beats_97_percent(tmp_path):
    labelled = rows()
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps({k: r[k] for k in ("completion", "answer")}) for r in labelled))
    out = tmp_path / "scored.jsonl"
    done = subprocess.run([sys.executable, "-m", "cli", "rewards", "score", "math_accuracy", "--input",
                           str(path), "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line)["reward"] for line in out.read_text().splitlines()]
    correct = sum((s == 1.0) == r["expected"] for s, r in zip(scored, labelled))
    assert correct / len(labelled) >= 0.97
    assert f"{len(labelled)} rows" in done.stdout and "rows/s" in done.stdout


@pytest.mark.parametrize("completion, gold", [
    ("\\boxed{3/0}", "3"),  # a zero denominator in the prediction
    ("The answer is 4", "1/0"),  # in the gold
    ("The answer is 4 0/0.", "4"),  # in a mixed number
    ("\\boxed{2}", ".1/0"),  # a decimal over zero: not even a literal Fraction reads
    ("\\boxed{3}", "1.5/2"),  # a decimal numerator
])
def test_zero_denominators_and_decimal_fractions_score_zero_instead_of_raising(completion, gold):
    assert math_accuracy([completion], answer=[gold]) == [0.0]


@pytest.mark.parametrize("completion, gold, expected", [
    # extraction: the last value, not a piece of it
    ("so x = \\frac{10}{9}", "9", 0.0),  # not the denominator
    ("so x = \\frac{10}{9}", "10/9", 1.0),
    ("The probability is 2/3.", "3", 0.0),
    ("The probability is 2/3.", "\\frac{2}{3}", 1.0),
    ("Add 3 1/4 cups of flour.", "\\frac{13}{4}", 1.0),  # a mixed number in text
    ("The answer is 7. Done.", "7", 1.0),  # a period ends the answer
    ("Final Answer: The final answer is 12,000,023. I hope it is correct.", "12000023", 1.0),
    ("Final Answer: The largest $n$ is 34.", "34", 1.0),  # the value after the verb, not '$n$'
    ("We get $x=3$ and there are 12 ways.", "12", 1.0),  # a later plain number beats an earlier span
    ("We get $x=3$ and there are 12 ways.", "3", 0.0),
    ("The cost is \\$5 per item, so the total is $x = 7$", "7", 1.0),  # an escaped \$ closes nothing
    # boxes: several are one answer; so are several golds
    ("\\boxed{1} and \\boxed{2}", "\\{1,2\\}", 1.0),
    ("The roots are \\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}.", "1, -2", 1.0),
    ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "2", 0.0),  # many candidates are not the answer
    ("first \\boxed{1} then \\boxed{2}", "2", 1.0),  # a later box, not a list
    ("\\boxed{200} ... Final Answer: The final answer is $10,455$. I hope it is correct.", "10455", 1.0),
    ("$\\boxed{1,2}$", "$\\boxed{1}\\boxed{2}$", 1.0),
    # relations
    ("$x >= 5$", "x \\geq 5", 1.0),
    ("$x \\lt 3$", "x < 3", 1.0),
    ("$x \\gt 5$", "x > 5", 1.0),
    ("$x != 3$", "x \\neq 3", 1.0),
    ("$-x >= -1$", "x \\le 1", 1.0),
    ("$x <= 2$", "x < 2", 0.0),
    # ordered vs unordered
    ("$(3,1)$", "\\{1,3\\}", 0.0),  # a tuple is no set
    ("$(3,1)$", "(1,3)", 0.0),
    ("$\\{3,1\\}$", "\\{1,3\\}", 1.0),
    ("$3, 1$", "1, 3", 1.0),  # a list of solutions has no order
    ("$\\boxed{32, 349}$", "32349", 0.0),  # a list, not a thousands separator (both paths)
    ("$\\boxed{32,\\! 349}$", "32349", 1.0),
    # equation golds
    ("$(3,2)$", "(p,q)=(3,2)", 1.0),
    ("$(2,3)$", "(p,q)=(3,2)", 0.0),
    ("$\\frac{1}{\\sqrt{6}}$", "\\frac{NO}{BO}=\\frac{1}{\\sqrt6}", 1.0),
    ("$1$", "|AB|=1", 1.0),
    ("$1$", "A:B=1", 1.0),
    ("$\\boxed{x}$", "x=5", 0.0),
    ("$11a+c$", "7 = 11a+c", 0.0),  # an equation, not a value
    ("$7:32$", "S_{MBCN}:S=7:32", 1.0),
    ("$(5,2),(7,2)$", "p=5,q=2;p=7,q=2", 1.0),
    # the rest of the families
    ("$19, 46, \\text{ and } 82$", "19, 46, 82", 1.0),
    ("$x \\approx 11$", "11", 1.0),
    ("$x = 1/3 \\approx 0.33$", "\\frac{1}{3}", 1.0),
    ("$\\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right]$", "\\begin{pmatrix}1 & 2\\\\3 & 4\\end{pmatrix}", 1.0),
    ("$0<f(x)<1$", "(0,1)", 1.0),
    ("$4210_7$", "4210_{7}", 1.0),
    ("$\\sin(90^\\circ-x)$", "\\cos x", 1.0),
    ("$F_n = \\sum_{k=0}^{n-1} F_{n-k-1} F_k$", "F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", 1.0),
    ("$F_n = \\sum_{k=0}^{n-2} F_k F_{n-k-2}$", "F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", 0.0),
    # percents and decimals
    ("\\boxed{28\\%}", "28", 1.0),
    ("It rose by 28%.", "0.28", 1.0),
    ("4 4/9%", "40/9", 0.0),
    ("$0.3333$", "\\frac{1}{3}", 1.0),  # four significant digits approximate an exact value
    ("$3.14$", "\\pi", 0.0),  # three do not
    # a later plain answer outranks an earlier box; the reasoning yields to what follows it
    ("\\boxed{24} is wrong. The answer is 72.", "72", 1.0),
    ("\\boxed{24} is wrong. The answer is 72.", "24", 0.0),
    ("<think>Maybe \\boxed{24}?</think>\nThe answer is 72.", "24", 0.0),
    ("\\boxed{5}. The answer is correct because we checked it.", "5", 1.0),  # 'correct' is no answer
    ("At first I got \\boxed{5}, but the correct answer is 7.", "7", 1.0),
    ("<think>\nthe answer is 5\n</think>\n\nI am not sure.", "5", 0.0),  # an answer left in thought is none
    ("the answer is 5\n</think>\n\n", "5", 0.0),
    # names keep their values; decimals both written match exactly
    ("$\\boxed{a=3, b=2}$", "a=2, b=3", 0.0),
    ("$\\boxed{b=3, a=2}$", "a=2, b=3", 1.0),
    ("$\\boxed{a=2, c=3}$", "a=2, b=3", 0.0),
    ("$d = \\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$ inches.", "\\frac{639}{40}", 1.0),  # one value twice
    ("Therefore $17^{-1} \\equiv \\boxed{44}$. We may check our answer: $17 \\cdot 44 = 748$.", "44", 1.0),
    ("The solutions are $x = 1$ and $x = -2$.", "1, -2", 1.0),
    ("The solutions are $x = \\boxed{-2} \\quad \\text{and} \\quad x = \\boxed{1}$.", "1, -2", 1.0),
    ("Her balance is \\$1,234,567.88.", "1234567.89", 0.0),
    ("So $\\boxed{72.00005}$", "72", 0.0),
    ("$\\boxed{100.00001}$", "100", 0.0),
    ("So $\\boxed{0.0000001}$", "0", 0.0),
    ("The answer is 0.125, i.e. 1/8.", "\\frac{1}{8}", 1.0),
    ("The answer is $\\boxed{\\sqrt{20.0001}}$.", "2\\sqrt5", 0.0),  # a decimal inside an expression is exact
    ("The answer is $\\boxed{x^2+7.0001x+10}$.", "x^2+7x+10", 0.0),
    ("The answer is $\\boxed{(x+1)^{40}+1}$.", "(x+1)^{40}", 0.0),  # rational points compare exactly
    ("**Answer:** $x + y = 9$", "9", 1.0),  # a quantity and its value
    ("**Answer:** $2x + 3 = 9$", "9", 0.0),  # an equation is no value
    ("In base 2, $11 = \\boxed{1011}$.", "1011_2", 1.0),
    ("Solving the system, $\\boxed{y = 2, x = 3}$.", "(3,2)", 1.0),
    # one-line conclusions and plain text
    ("So x != 2.", "x \\neq 2", 1.0),
    ("Solving 2x - 3 >= 7 gives 2x >= 10.\nTherefore x >= 5.", "x \\geq 5", 1.0),
    ("Pants: 30\nTotal: 42", "42", 1.0),
    ("Numerically, $x \\approx 11$.", "11", 1.0),
    ("Rounding, the answer is approximately 11.", "11", 1.0),
    ("Total: $3 \\times 4 = 12$ dollars.", "12", 1.0),
    ("\\boxed{\\boxed{\\boxed{2}}}", "2", 1.0),
    ("So $\\boxed{x<-1 \\text{ or } x>2}$.", "(-\\infty,-1)\\cup(2,\\infty)", 1.0),
    # no number at all
    ("\\boxed{3/0}", "1/0", 0.0),
    ("The answer is 4 0/0.", "0", 0.0),
    ("$12:00$", "1:00", 0.0),
])
def test_issue_families(completion, gold, expected):
    assert math_accuracy([completion], answer=[gold]) == [expected]


@pytest.mark.parametrize("completion, gold", [
    ("A. Because B is not valid", "A"),
    ("Because B is valid", "B"),
    ("The answer is (C).", "\\text{(C)}"),
])
def test_multiple_choice_golds_read_the_letter(completion, gold):
    assert math_accuracy([completion], answer=[gold]) == [1.0]


def test_hand_written_attack_completions_are_all_judged_right():
    """benchmarks/math_attack_cases.jsonl: completions seven independent testers wrote against
    math_accuracy as a black box (their ambiguous cases left out), in every style they tried;
    attack-3 to attack-7 hold long reasoning-model completions in the families of issue 35."""
    rows = [json.loads(line) for line in (ROOT / "benchmarks" / "math_attack_cases.jsonl").read_text().splitlines()]
    scores = math_accuracy([r["completion"] for r in rows], answer=[r["answer"] for r in rows])
    wrong = [(r["style"], r["completion"][-120:], r["answer"], r["expected"]) for r, s in zip(rows, scores)
             if (s == 1.0) != r["expected"]]
    assert len(rows) > 2700 and not wrong, wrong
