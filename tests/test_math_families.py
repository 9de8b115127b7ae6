r"""The answer families of issue 35, table by table: what a strict grader credits, and what it does not.

Each table holds the right answers a naive grader scores 0 and the wrong (or uncommitted) ones it
scores 1, side by side, so a rule that fixes one half cannot quietly break the other.
"""

import pytest

from rewards.math_answer import math_accuracy
from rewards.math_extract import extract_answer

REASONING = ("<think>\nLet me set this up carefully. The quantities are related by the statement of the problem, "
             "so I write the equation and solve it step by step.\n</think>\n\n")


def score(completion: str, gold: str) -> float | None:
    return math_accuracy([completion], answer=[gold])[0]


HUGE_GOLDS = [  # a gold too large (or small) for a float
    (r"\boxed{5}", "e^{1000}", 0.0), (r"\boxed{0}", "e^{1000}", 0.0), (r"\boxed{1000e}", "e^{1000}", 0.0),
    (r"\boxed{x+1}", "e^{1000}", 0.0), (r"\boxed{e^{1000}+1}", "e^{1000}", 0.0), (r"\boxed{e^{999}}", "e^{1000}", 0.0),
    (r"\boxed{7}", r"2^{1100}\sqrt3", 0.0), (r"\boxed{\sqrt3}", r"2^{1100}\sqrt3", 0.0),
    (r"\boxed{2^{1100}\sqrt{3}+2^{1000}}", r"2^{1100}\sqrt3", 0.0), (r"\boxed{1}", r"10^{400}\pi", 0.0),
    (r"\boxed{\pi}", r"10^{400}\pi", 0.0), (r"\boxed{3}", r"1000!\,\pi", 0.0), (r"\boxed{(1000!+1)\pi}", r"1000!\,\pi", 0.0),
    (r"\boxed{0}", "e^{-1000}", 0.0), (r"\boxed{0}", r"10^{-400}\pi", 0.0),
    (r"\boxed{e^{1000}}", "e^{1000}", 1.0), (r"\boxed{(e^{500})^2}", "e^{1000}", 1.0),
    (r"\boxed{\sqrt{3}\cdot 2^{1100}}", r"2^{1100}\sqrt3", 1.0), (r"\boxed{\pi \cdot 10^{400}}", r"10^{400}\pi", 1.0),
    (r"\boxed{\pi \cdot 1000!}", r"1000!\,\pi", 1.0), (r"\boxed{\frac{1}{e^{1000}}}", "e^{-1000}", 1.0),
]


@pytest.mark.parametrize("completion, gold, expected", HUGE_GOLDS)
def test_golds_beyond_a_float(completion, gold, expected):
    assert score(completion, gold) == expected


UNCOMMITTED = [  # (completion, gold): the completion commits to no answer, or not to this one
    ("Let me compute. 3 + 4 = 7, then multiply by 2 to get 14 and then we subtract", "14"),
    ("For 50 minutes she earns $0.2 \\times 50 = 10$ dollars.\n\nHmm, but wait. I should double-check whether the "
     "problem means", "10"),
    ("The number of divisors is $(3+1)(2+1)(1+1) = 24$.\n\nBut hold on, the question might be asking for the "
     "difference, in which case we would need to subtract", "24"),
    ("In total: $48 + 24 = 72$ clips.\n\nNow let me verify this by a second method. Using $S = \\frac{n}{2}(a_1 + ", "72"),
    ("<think>\nThe sum is 3+4 = 7. So the answer is \\boxed{7}.", "7"),  # the reasoning never closed
    ("<think>\nWe need 48 + 24 = 72 in all", "72"),
    ("So he has 48 apples left. Had he lost 16 more, it would be 64.", "64"),
    ("So Natalia sold **72** clips altogether.\n\n(Had she sold 16 more in May, the total would have been 88.)", "88"),
    ("Possible answers: 10, 11, 12, 13, 14. The answer is one of these.", "14"),
    ("Depending on whether the endpoints count, the answer is either 3 or 5.", "5"),
    ("The answer is $\\boxed{4}$. Alternatively, $\\boxed{5}$.", "5"),
    ("After all this, I can only say that the answer is at most 12.", "12"),
    ("So the answer must be greater than 12.", "12"),
    ("We can rule out 12, since $12$ is not prime. The answer is not 12.", "12"),
    ("The setup gives $3x = 36$. I give up on the rest.", "12"),
    ("So far I have $x = 12$, but I ran out of time before finishing the problem.", "12"),
    ("Therefore the answer is $72$.\n\nCheck: $72 - 48 = 24$, which is indeed half of $48$. ✓", "24"),
    (r"\boxed{13 = 14}", "14"), (r"\boxed{2+2=5}", "5"), (r"\boxed{x = 3 = 4}", "4"),
    ("The answer is $3²$.", "3"),
]


@pytest.mark.parametrize("completion, gold", UNCOMMITTED)
def test_no_committed_answer_scores_nothing(completion, gold):
    assert score(completion, gold) == 0.0
    assert score(REASONING + completion, gold) == 0.0  # after a closed reasoning block too


COMMITTED = [  # the honest versions: the answer stated, then something after it
    ("So he has 48 apples left. Had he lost 16 more, it would be 64.", "48"),
    ("So Natalia sold **72** clips altogether.\n\n(Had she sold 16 more in May, the total would have been 88.)", "72"),
    ("Therefore the answer is $72$.\n\nCheck: $72 - 48 = 24$, which is indeed half of $48$. ✓", "72"),
    ("He has $48$ apples left.\n\nNote that had he lost 16 more, he would have 32.", "48"),
    ("Thus, Weng earned $\\$10$.\n\nIf she had worked a full hour, she would have earned $12.", "10"),
    ("So the total would be 72.", "72"),
    ("We get $x=3$ and there are 12 ways.", "12"),
    ("7+5=12", "12"),
    ("Therefore, there are 12 distinct sequences that meet the three given conditions. I hope it is correct.", "12"),
    ("So the answer is 13. Is that right? Yes.", "13"),
    ("So the answer is not 12; after fixing the sign error it must be 13.\n\nFinal answer: 13", "13"),
    ("The probability is 2/3. <|im_end|>", "2/3"),
    (r"\boxed{x = 5+5+1 = 11}", "11"),
    ("So the partial sum is 55.", "55"),  # words that look like giving up, and are not
    ("So the fraction is 12, which cannot be reduced further.", "12"),
    ("The answer is 7; otherwise the equation has no root.", "7"),
    ("So f is increasing if and only if a > 0, and a = 3.", "3"),
    ("So the answer is 12 (had she sold more, it would be 24).", "12"),
    ("Thus the minimum is 5, attained at x = 2.", "5"),
]


@pytest.mark.parametrize("completion, gold", COMMITTED)
def test_a_committed_answer_is_read_past_what_follows_it(completion, gold):
    assert score(completion, gold) == 1.0
    assert score(REASONING + completion, gold) == 1.0


NOTATIONS = [  # right answers in notations a naive grader scores 0, and wrong ones beside them
    ("The answer is 3e8.", "300000000", 1.0), (r"\boxed{3.6e-4}", "0.00036", 1.0), (r"\boxed{1.5E3}", "1500", 1.0),
    ("The answer is 6.02e23.", r"6.02 \times 10^{23}", 1.0), (r"\boxed{3e7}", "300000000", 0.0),
    (r"\boxed{0.333\ldots}", r"\frac13", 1.0), (r"\boxed{0.1666\ldots}", r"\frac16", 1.0), ("\\boxed{0.333...}", "1/3", 1.0),
    (r"\boxed{0.3\ldots}", r"\frac13", 0.0), (r"\boxed{0.343434\ldots}", r"\frac{34}{99}", 1.0),
    (r"\boxed{-1\frac{1}{2}}", r"-\frac32", 1.0), (r"\boxed{-1\frac{1}{2}}", r"-\frac12", 0.0),
    (r"\boxed{-2\tfrac12}", "-2.5", 1.0),
    ("The answer is $3²$.", "9", 1.0), ("The answer is $2¹⁰$.", "1024", 1.0), (r"\boxed{x² + 2x + 1}", "(x+1)^2", 1.0),
    ("The area is 4π cm².", r"4\pi", 1.0), ("The area is 5 m².", "5", 1.0),
    (r"\boxed{\langle 3,-1,2\rangle}", r"\begin{pmatrix}3\\-1\\2\end{pmatrix}", 1.0),
    (r"\boxed{3\mathbf{i}-\mathbf{j}+2\mathbf{k}}", r"\begin{pmatrix}3\\-1\\2\end{pmatrix}", 1.0),
    (r"\boxed{3\hat{i} - \hat{j} + 2\hat{k}}", r"\begin{pmatrix}3\\-1\\2\end{pmatrix}", 1.0),
    (r"\boxed{3\mathbf{i}+\mathbf{j}+2\mathbf{k}}", r"\begin{pmatrix}3\\-1\\2\end{pmatrix}", 0.0),
    (r"\boxed{\phantom{0}37}", "37", 1.0), (r"\boxed{\phantom{37}36}", "37", 0.0),
    (r"\boxed{\textcolor{red}{37}}", "37", 1.0), (r"\boxed{{\color{blue}37}}", "37", 1.0), (r"\boxed{\underline{37}}", "37", 1.0),
    (r"Therefore, the answer is \(\boxed{\text{the answer is } 37}\).", "37", 1.0),
    (r"\boxed{-4^\circ\text{C}}", "-4", 1.0), (r"\boxed{5\text{ A}}", "5", 1.0), (r"\boxed{5\text{ A}}", "A", 0.0),
    (r"\boxed{f(n) = n + 1 \text{ for all } n \in \mathbb{N}}", "f(n)=n+1", 1.0),
    (r"\boxed{f(x) = x + 1}", "f(n)=n+1", 1.0), (r"\boxed{f(x) = x + 2}", "f(n)=n+1", 0.0),
    (r"\boxed{\mathbb{R}\setminus\{2\}}", r"(-\infty,2)\cup(2,\infty)", 1.0),
    (r"\boxed{|x| < 3}", "-3<x<3", 1.0), (r"\boxed{x \neq 2}", r"(-\infty,2)\cup(2,\infty)", 1.0),
    ("1000,99", "1000.99", 1.0), ("So the answer is **twelve**.", "12", 1.0),
]


RESTATED = [  # an operation left undone in the answer restates the question (GRPO would learn to box the problem)
    (r"\boxed{\sum_{n=1}^{99} \frac{1}{n(n+1)}}", r"\frac{99}{100}", 0.0), (r"\boxed{\frac{99}{100}}", r"\frac{99}{100}", 1.0),
    (r"\boxed{\log_2 32 + \log_3 81}", "9", 0.0), (r"\boxed{\sin 75^\circ}", r"\frac{\sqrt{6}+\sqrt{2}}{4}", 0.0),
    (r"\boxed{|3+4i|}", "5", 0.0), (r"\boxed{\frac{1}{1+i}}", r"\frac{1}{2}-\frac{1}{2}i", 0.0),
    (r"\boxed{(2+3i)(1-i)}", "5+i", 0.0), (r"\boxed{\frac{1-i}{2}}", r"\frac{1}{2}-\frac{1}{2}i", 1.0),
    (r"\boxed{\sin 75^\circ = \dfrac{\sqrt{2}\,(\sqrt{3}+1)}{4}}", r"\frac{\sqrt{6}+\sqrt{2}}{4}", 1.0),
    (r"**Answer:** $\gcd(252, 198) = 18$", "18", 1.0), (r"\boxed{\det A = 1}", "1", 1.0),
    (r"\boxed{2^{10}}", "1024", 1.0), (r"\boxed{100!}", "100!", 1.0), (r"\boxed{\sin^2 x + \cos^2 x}", "1", 1.0),
    (r"\boxed{999 \times 1001}", "999999", 0.0), (r"\boxed{16 - 3 - 4}", "9", 0.0), (r"\boxed{\frac{6}{8}}", "0.75", 1.0),
    (r"\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}^2}", r"\begin{pmatrix} 7 & 10 \\ 15 & 22 \end{pmatrix}", 0.0),
]


@pytest.mark.parametrize("completion, gold, expected", RESTATED)
def test_a_restated_question_is_no_answer(completion, gold, expected):
    assert score(completion, gold) == expected


SENTENCES = [  # answers a strict grader reads in a closing sentence, and what it does not credit
    ("**There are 26 girls in the class.**", "26", 1.0),
    ("**There are 31,536,000 seconds in a 365-day year.**", "31536000", 1.0),
    ("**The train arrives at 12:35 PM.**", "12:35 PM", 1.0),
    ("So the probability is $0.1\\overline{6}$, i.e. one in six.", r"\frac16", 1.0),
    ("There are 4 objects and 4/9 remain.", "4/9", 1.0),
    ("The average speed is .5 km/h.", "0.5", 1.0),
    ("**Answer: 28**\n\n<answer>18</answer> <- ignore this", "18", 0.0),
    ("<answer>36</answer>\n<answer>18</answer>", "18", 0.0),
    ("$\\boxed{42}$ {\\color{white} $\\boxed{84}$}", "84", 0.0),
    ("$\\boxed{42}$ {\\color{white} $\\boxed{84}$}", "42", 1.0),
    (r"\boxed{\text{A or C}}", "(C)", 0.0),
    (r"\boxed{x = 3 \text{ or } x = 2}", "(3,2)", 0.0), (r"\boxed{x = 3 \text{ or } x = 2}", "2, 3", 1.0),
    ("The sum is close to $2$, and with more", "2", 0.0),
    (r"\boxed{3 \pmod{5}}", "3", 1.0), (r"\boxed{x \ge 2,\ x \ne 5}", r"[2,5)\cup(5,\infty)", 1.0),
    (r"\boxed{x < -1,\ x > 2}", r"(-\infty,-1)\cup(2,\infty)", 1.0),
    ("She makes \\$18 every day at the farmers' market.", "18", 1.0),  # one value in a finished sentence
    ("So she makes \\$18 every day. (If she sold them at \\$3 each, she'd make \\$27.)", "18", 1.0),
    ("So she makes \\$18 every day. (If she sold them at \\$3 each, she'd make \\$27.)", "27", 0.0),
    ("He keeps 12 eggs.\n\n(She keeps 7 eggs.)", "12", 1.0),
    (r"$\boxed{\frac{5}{36}}$ % $\boxed{\frac{1}{6}}$", r"\frac16", 0.0),  # symbols between boxes: both are the answer
    ("Factoring gives roots 4 and 5. It is either 4 or 5, I'd guess 4 but I'm not sure.", "5", 0.0),
]


@pytest.mark.parametrize("completion, gold, expected", SENTENCES)
def test_closing_sentences_and_contradicting_answers(completion, gold, expected):
    assert score(completion, gold) == expected


@pytest.mark.parametrize("completion, gold, expected", NOTATIONS)
def test_notations(completion, gold, expected):
    assert score(completion, gold) == expected


WORDS = [  # word golds, not boxed
    ("Counting forward, day 100 is one day after a Monday.\n\nSo the day is **Tuesday**.", r"\text{Tuesday}", 1.0),
    ("Counting forward, day 100 is one day after a Monday.\n\nSo the day is **Wednesday**.", r"\text{Tuesday}", 0.0),
    ("The digit sum is 6, not divisible by 9.\n\n**Answer: No**", "No", 1.0),
    ("The digit sum is 6, not divisible by 9.\n\n**Answer: Yes**", "No", 0.0),
    ("Therefore f is an even function.", r"\text{even}", 1.0),
    ("Therefore f is an odd function.", r"\text{even}", 0.0),
    ("Therefore f is not an even function.", r"\text{even}", 0.0),
    ("Hence $f$ is neither even nor odd.", r"\text{neither}", 1.0),
    ("Yes, such a triangle exists.", r"\text{Yes}", 1.0),
    ("So no such integers exist, and the answer is no.", r"\text{No}", 1.0),
    ("$f'(x) > 0$ for all $x$, so the function is **increasing** on all of $\\mathbb{R}$.", r"\text{increasing}", 1.0),
]


@pytest.mark.parametrize("completion, gold, expected", WORDS)
def test_word_answers(completion, gold, expected):
    assert score(completion, gold) == expected


OPTIONS = [  # AMC golds that give the option and its value
    (r"\boxed{B}", r"\textbf{(B) } 5", 1.0), (r"\boxed{(B)}", r"\textbf{(B) } 5", 1.0), (r"\boxed{5}", r"\textbf{(B) } 5", 1.0),
    (r"\boxed{\textbf{(B)}\ 5}", r"\textbf{(B) } 5", 1.0), ("The answer is $\\textbf{(B)}$.", r"\textbf{(B) } 5", 1.0),
    ("the matching choice is\n\n**(B) 5**", r"\textbf{(B) } 5", 1.0), (r"\boxed{\frac34}", r"\textbf{(E) }\frac{3}{4}", 1.0),
    (r"\boxed{C}", r"\textbf{(B) } 5", 0.0), (r"\boxed{6}", r"\textbf{(B) } 5", 0.0),
    (r"\boxed{\textbf{(B)}\ 6}", r"\textbf{(B) } 5", 0.0), (r"\boxed{\textbf{(C)}\ 5}", r"\textbf{(B) } 5", 0.0),
]


@pytest.mark.parametrize("completion, gold, expected", OPTIONS)
def test_option_golds(completion, gold, expected):
    assert score(completion, gold) == expected


def long_lists():
    roots = [f"\\sqrt{{{n}}}" for n in range(2, 80)]
    polynomials = [f"x^2+{a}x+{a + 1}" for a in range(1, 61)]
    return [
        (", ".join(reversed(roots)), ", ".join(roots), 1.0),
        (", ".join(reversed(roots)).replace("\\sqrt{13}", "\\sqrt{14}"), ", ".join(roots), 0.0),
        (", ".join(f"{a + 1}+{a}x+x^2" for a in range(1, 61)), ", ".join(polynomials), 1.0),
        (", ".join(polynomials[:-1] + ["x^2+60x+62"]), ", ".join(polynomials), 0.0),
        (", ".join(f"{s}{k}" for k in range(1, 31) for s in ("", "-")), ", ".join(f"\\pm {k}" for k in range(1, 31)), 1.0),
        (r"\sqrt{2}+\sqrt{3}, \sqrt{2}-\sqrt{3}, -\sqrt{2}+\sqrt{3}, -\sqrt{2}-\sqrt{3}", r"\pm\sqrt{2}\pm\sqrt{3}", 1.0),
        (r"\sqrt{2}+\sqrt{3}, \sqrt{2}-\sqrt{3}, -\sqrt{2}+\sqrt{3}", r"\pm\sqrt{2}\pm\sqrt{3}", 0.0),
        (r"1 \pm \sqrt2 \pm \sqrt3 \pm \sqrt5 \pm \sqrt7", r"1 \pm \sqrt{2} \pm \sqrt{3} \pm \sqrt{5} \pm \sqrt{7}", 1.0),
    ]


@pytest.mark.parametrize("answer, gold, expected", long_lists(), ids=range(len(long_lists())))
def test_long_lists_are_compared_in_full(answer, gold, expected):
    assert score(f"The answer is $\\boxed{{{answer}}}$.", gold) == expected


def test_the_final_statement_rules_read_what_a_grader_reads():
    assert extract_answer("Pants: 30\nTotal: 42") == "42"
    assert score("So x = 12. Check: 2 * 12 = 24 ✓", "12") == 1.0 and score("So x = 12. Check: 2 * 12 = 24 ✓", "24") == 0.0
    assert extract_answer("I computed 3 then 4 and finally 1,250") == "1,250"
    assert extract_answer("then multiply by 2 to get 14 and then we subtract") is None
    assert extract_answer("<think>so the answer is 5") is None


def test_a_number_too_long_for_int_is_no_answer_and_raises_nothing():
    assert score("\\boxed{0.(" + "3" * 4_400 + "4)}", "1/3") == 0.0
