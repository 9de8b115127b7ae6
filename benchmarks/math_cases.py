r"""A labelled set of (completion, gold, verdict) rows for math answer verifiers.

Each case is (category, predicted answer, gold answer, expected verdict). ``rows()`` wraps
each predicted answer in a realistic completion, cycling through the ways models state a
final answer (``\boxed{}``, "The answer is", "**Final Answer:**", ``<answer>`` tags,
GSM8K ``####``...), so extraction is exercised on every category.
"""

from __future__ import annotations

CASES: list[tuple[str, str, str, bool]] = [
    # ---- integers and rationals
    ("number", "42", "42", True),
    ("number", "-7", "-7", True),
    ("number", "41", "42", False),
    ("number", "7", "-7", False),
    ("number", r"\frac{1}{2}", "0.5", True),
    ("number", "0.5", r"\frac{1}{2}", True),
    ("number", r"\frac{2}{4}", r"\frac{1}{2}", True),
    ("number", r"\frac{3}{4}", r"\frac{4}{3}", False),
    ("number", ".35625", "0.35625", True),
    ("number", "0.35625", r"\frac{57}{160}", True),
    ("number", "0.33", r"\frac{1}{3}", False),
    ("number", "0.3333333", r"\frac13", True),
    ("number", r"\frac 59", r"\frac{5}{9}", True),
    ("number", r"137 \frac{1}{2}", "137.5", True),
    ("number", r"137\frac{1}{2}", r"\frac{275}{2}", True),
    ("number", "1.50", "1.5", True),
    ("number", "3.0", "3", True),
    ("number", "3.01", "3", False),
    ("number", "-0.25", r"-\frac{1}{4}", True),
    ("number", r"\frac{-1}{4}", r"-\frac{1}{4}", True),
    ("number", "2^{10}", "1024", True),
    ("number", "2^{10}", "1000", False),
    ("number", "10^{-3}", "0.001", True),
    ("number", "1.2e3", "1200", True),  # e-notation is a number (issue: 3e8, 3.6e-4 scored 0)
    ("number", "1.2e3", "120", False),
    # ---- floats with relative tolerance
    ("float", "3.1415926535", r"\pi", True),
    ("float", "3.14", r"\pi", False),
    ("float", "1.4142135", r"\sqrt{2}", True),
    ("float", "1.41", r"\sqrt{2}", False),
    ("float", "0.6666667", r"\frac{2}{3}", True),
    ("float", "2.718281828", "e", True),
    # ---- symbolic expressions
    ("symbolic", "x^2+2x+1", "(x+1)^2", True),
    ("symbolic", "(x+1)^2", "x^2+2x+1", True),
    ("symbolic", "x^2+2x", "(x+1)^2", False),
    ("symbolic", "2x+2", "2(x+1)", True),
    ("symbolic", r"\frac{x}{2}", "0.5x", True),
    ("symbolic", "p - q", "-q + p", True),
    ("symbolic", "q - p", "p - q", False),
    ("symbolic", r"\frac{1}{x} + \frac{1}{y}", r"\frac{x+y}{xy}", True),
    ("symbolic", r"\frac{x+y}{x}", r"\frac{x+y}{xy}", False),
    ("symbolic", r"a^2 - b^2", r"(a-b)(a+b)", True),
    ("symbolic", r"\sin^2 x + \cos^2 x", "1", True),
    ("symbolic", r"2\sin x \cos x", r"\sin(2x)", True),
    ("symbolic", r"\sin x", r"\cos x", False),
    ("symbolic", r"4\pi r^2", r"4 r^2 \pi", True),
    ("symbolic", r"\frac{4}{3}\pi r^3", r"\frac{4\pi r^3}{3}", True),
    ("symbolic", r"2\pi r", r"\pi r^2", False),
    ("symbolic", r"288 \pi", r"288\pi", True),
    ("symbolic", r"96\pi", r"288\pi", False),
    ("symbolic", r"\frac{\sqrt{21}}{5}", r"\frac{\sqrt{21}}{5}", True),
    ("symbolic", r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", True),
    ("symbolic", r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    ("symbolic", r"\frac{\sqrt{2}}{2}", r"\sqrt{2}", False),
    ("symbolic", r"3\sqrt{2}", r"\sqrt{18}", True),
    ("symbolic", r"2\sqrt{3}", r"\sqrt{6}", False),
    # ---- tuples: ordered
    ("tuple", "(1, 2)", "(1,2)", True),
    ("tuple", "(2, 1)", "(1,2)", False),
    ("tuple", r"(6,31,-1)", r"(6, 31, -1)", True),
    ("tuple", r"(6,-1,31)", r"(6, 31, -1)", False),
    ("tuple", r"\left(3, \frac{\pi}{2}\right)", r"\left( 3, \frac{\pi}{2} \right)", True),
    ("tuple", r"(3, \frac{\pi}{2})", r"(3, \frac{\pi}{4})", False),
    ("tuple", r"(0.5, 2)", r"\left(\frac12, 2\right)", True),
    ("tuple", "(1, 2, 3)", "(1, 2)", False),
    # ---- sets and lists of solutions: unordered
    ("set", r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
    ("set", r"\{1, 2\}", r"\{1, 2, 3\}", False),
    ("set", "2, -3", "-3, 2", True),
    ("set", "2, 3", "-3, 2", False),
    ("set", r"\{-1, \frac{1}{2}\}", r"\frac12, -1", True),
    ("set", r"1, 2, 3", r"3, 1, 2", True),
    ("set", r"\{4\}", r"\{4, 5\}", False),
    # ---- intervals and unions
    ("interval", r"(3, \infty)", r"(3,\infty)", True),
    ("interval", r"[3, \infty)", r"(3,\infty)", False),
    ("interval", r"(-\infty, 2) \cup (3, \infty)", r"(-\infty,2)\cup(3,\infty)", True),
    ("interval", r"(3, \infty) \cup (-\infty, 2)", r"(-\infty,2)\cup(3,\infty)", True),
    ("interval", r"(-\infty, 2] \cup (3, \infty)", r"(-\infty,2)\cup(3,\infty)", False),
    ("interval", r"[-2, 5)", r"[-2,5)", True),
    ("interval", r"[-2, 5]", r"[-2,5)", False),
    ("interval", r"(-\sqrt{3}, \sqrt{3})", r"(-\sqrt{3}, \sqrt{3})", True),
    ("interval", r"\left[\frac{1}{2}, 4\right)", r"[0.5, 4)", True),
    # ---- inequalities against intervals
    ("inequality", "x > 3", r"(3, \infty)", True),
    ("inequality", r"x \ge 3", r"(3, \infty)", False),
    ("inequality", r"x \geq 3", r"[3, \infty)", True),
    ("inequality", r"(3, \infty)", "x > 3", True),
    ("inequality", r"-2 \le x < 5", "[-2, 5)", True),
    ("inequality", r"-2 < x < 5", "[-2, 5)", False),
    ("inequality", r"x < 2", r"(-\infty, 2)", True),
    ("inequality", r"x \leq 2", r"(-\infty, 2)", False),
    # ---- equations
    ("equation", "y = 2x + 1", "y = 2x + 1", True),
    ("equation", "y = 1 + 2x", "y = 2x + 1", True),
    ("equation", "y - 2x = 1", "y = 2x + 1", True),
    ("equation", "2y = 4x + 2", "y = 2x + 1", True),
    ("equation", "y = 2x - 1", "y = 2x + 1", False),
    ("equation", "x^2 + y^2 = 25", "x^2+y^2=25", True),
    ("equation", "x^2 + y^2 = 5", "x^2+y^2=25", False),
    ("equation", "x = 5", "5", True),
    ("equation", "5", "x = 5", True),
    ("equation", "x = 4", "5", False),
    ("equation", "k = -12", "-12", True),
    # ---- matrices
    ("matrix", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", True),
    ("matrix", r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", True),
    ("matrix", r"\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", False),
    ("matrix", r"\begin{pmatrix} \frac12 \\ -1 \end{pmatrix}", r"\begin{pmatrix} 0.5 \\ -1 \end{pmatrix}", True),
    ("matrix", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \end{pmatrix}", False),
    # ---- complex numbers
    ("complex", "6 - 5i", "6-5i", True),
    ("complex", "-5i + 6", "6-5i", True),
    ("complex", "6 + 5i", "6-5i", False),
    ("complex", r"\frac{1}{2} + \frac{\sqrt{3}}{2}i", r"\frac{1 + i\sqrt{3}}{2}", True),
    ("complex", "i^2", "-1", True),
    ("complex", "2i", "-2i", False),
    # ---- plus-minus
    ("pm", r"3 \pm 2\sqrt{2}", r"3 \pm 2 \sqrt{2}", True),
    ("pm", r"3 + 2\sqrt{2}, 3 - 2\sqrt{2}", r"3 \pm 2 \sqrt{2}", True),
    ("pm", r"3 - 2\sqrt{2}, 3 + 2\sqrt{2}", r"3 \pm 2 \sqrt{2}", True),
    ("pm", r"3 + 2\sqrt{2}", r"3 \pm 2 \sqrt{2}", False),
    ("pm", r"\pm 4", "4, -4", True),
    ("pm", r"\pm 4", "4", False),
    # ---- infinity
    ("infinity", r"\infty", r"\infty", True),
    ("infinity", r"-\infty", r"\infty", False),
    ("infinity", r"+\infty", r"\infty", True),
    # ---- constants
    ("constant", r"e^{i\pi}", "-1", True),
    ("constant", r"e^{i\pi}", "1", False),
    ("constant", r"\ln(e^2)", "2", False),  # an operation left undone restates the question (issue 35)
    ("constant", "2", r"\ln(e^2)", True),
    ("constant", r"\cos(\pi)", "-1", False),  # an operation left undone restates the question (issue 35)
    ("constant", "-1", r"\cos(\pi)", True),
    ("constant", r"\sin\frac{\pi}{6}", r"\frac{1}{2}", False),  # an operation left undone restates the question (issue 35)
    ("constant", r"\frac{1}{2}", r"\sin\frac{\pi}{6}", True),
    ("constant", r"\pi", "3", False),
    # ---- factorials, binomials, logs, roots
    ("functions", "5!", "120", True),
    ("functions", "4!", "120", False),
    ("functions", r"\binom{5}{2}", "10", True),
    ("functions", r"\binom{6}{2}", "10", False),
    ("functions", r"\log_2 8", "3", False),  # an operation left undone restates the question (issue 35)
    ("functions", "3", r"\log_2 8", True),
    ("functions", r"\log_{2}{16}", "3", False),
    ("functions", r"\log_3 81", "4", False),  # an operation left undone restates the question (issue 35)
    ("functions", "4", r"\log_3 81", True),
    ("functions", r"\sqrt[3]{27}", "3", True),
    ("functions", r"\sqrt[3]{8}", "3", False),
    ("functions", r"\sqrt{16}", "4", True),
    ("functions", r"\frac{10!}{8!}", "90", True),
    ("functions", r"\ln 8", r"3\ln 2", True),
    # ---- normalisation: \left/\right, dfrac/tfrac
    ("normalise", r"\left(\dfrac{1}{2}, 3\right)", r"\left(\frac12, 3\right)", True),
    ("normalise", r"\tfrac{3}{8}", r"\frac{3}{8}", True),
    ("normalise", r"\dfrac{17}{50}", "0.34", True),
    ("normalise", r"\dfrac{17}{50}", "0.35", False),
    # ---- units and words
    ("units", r"18 \text{ cm}", "18", True),
    ("units", r"18\text{ cm}^2", "18", True),
    ("units", r"19 \text{ cm}", "18", False),
    ("units", r"12 \mbox{ inches}", "12", True),
    ("units", "12 apples", "12", True),
    ("units", r"5 \text{ dollars}", r"5", True),
    ("units", r"\text{Evelyn}", r"\text{Evelyn}", True),
    ("units", r"\text{Evelyn}", r"\text{Alice}", False),
    ("units", "Evelyn", r"\text{Evelyn}", True),
    ("units", r"50 \text{ mph}", "60", False),
    # ---- dollars, percent, degrees
    ("currency", r"\$18.90", "18.90", True),
    ("currency", r"\$18.90", "18.9", True),
    ("currency", r"\$19.90", "18.90", False),
    ("percent", r"25\%", "25", True),
    ("percent", "25%", "25", True),
    ("percent", r"26\%", "25", False),
    ("degrees", r"30^\circ", "30", True),
    ("degrees", r"30^{\circ}", "30", True),
    ("degrees", r"60^\circ", "30", False),
    # ---- thousands separators
    ("thousands", "1,000", "1000", True),
    ("thousands", r"1{,}000", "1000", True),
    ("thousands", "1,000,000", "1000000", True),
    ("thousands", "10,000", "1000", False),
    ("thousands", r"8{,}000", "8000", True),
    # ---- multiple choice
    ("choice", "(B)", "B", True),
    ("choice", "B", "(B)", True),
    ("choice", r"\text{(B)}", "B", True),
    ("choice", "(C)", "B", False),
    ("choice", "b", "B", True),
    # ---- repeating decimals, approximations
    ("repeating", r"0.\overline{3}", r"\frac{1}{3}", True),
    ("repeating", r"0.1\overline{6}", r"\frac{1}{6}", True),
    ("repeating", r"0.\overline{6}", r"\frac{1}{3}", False),
    ("repeating", r"\approx 3.1416", r"3.1416", True),
    # ---- named answers and membership
    ("definition", r"f(x) = x^2 + 1", r"x^2+1", True),
    ("definition", r"f(x) = x^2 - 1", r"x^2+1", False),
    ("definition", r"x \in (3, \infty)", r"(3, \infty)", True),
    ("definition", r"2 \le x \le 5", r"[2, 5]", True),
    ("definition", r"2 < x < 5", r"[2, 5]", False),
    # ---- trailing punctuation
    ("punctuation", "72.", "72", True),
    ("punctuation", "72,", "72", True),
    ("punctuation", r"\frac{1}{2}.", r"\frac{1}{2}", True),
    ("punctuation", "73.", "72", False),
]

# whole completions, for extraction without a fixed style: (category, completion, gold, verdict)
RAW_CASES: list[tuple[str, str, str, bool]] = [
    ("extraction", r"Putting it together we get $k = \frac{1}{3}$", "1/3", True),
    ("extraction", r"which simplifies to $\frac{2}{7}$ in the end", r"\frac{2}{7}", True),
    ("extraction", r"which simplifies to $\frac{2}{9}$ in the end", r"\frac{2}{7}", False),
    ("extraction", r"Answer \[ 9 \]", "9", True),
    ("extraction", r"Answer \( (9+1) \)", "10", True),
    ("extraction", "The code is XK2B9 and nothing else", "2", False),
    ("extraction", "The total is 7 425 000 people", "7425000", True),
    ("extraction", "that is 1,250.50€ in total", "1250.5", True),
    ("extraction", "The area is 36m² overall", "36", True),
    ("extraction", r"The answer is 17, since 17 is prime.", "17", True),
    ("extraction", r"The answer is 19, since 17 is prime.", "17", False),
    ("extraction", r"so we conclude $\boxed{28 \text{ percent}}$", r"28\%", True),
    ("extraction", r"The roots are $\boxed{-2, 3}$.", r"x=-2 \text{ or } x=3", True),
    ("extraction", r"The roots are $\boxed{-2, 4}$.", r"x=-2 \text{ or } x=3", False),
    ("extraction", r"It lies between $\boxed{6\text{ and }7}$.", "6, 7", True),
    ("extraction", r"**Final Answer**\n\n\[\n\boxed{\dfrac{5}{12}}\n\]", r"\frac{5}{12}", True),
]

# how models commit to an answer; {a} is the answer, {w} filler reasoning with numbers in it
STYLES = [
    "We compute step by step: 3 + 4 = 7, then the result follows.\nTherefore the answer is $\\boxed{{{a}}}$.",
    "Let's think. First 12 and 5 give 17.\nThe answer is ${a}$.",
    "Simplifying gives the expression below.\n\n**Final Answer:** ${a}$",
    "<think>Try 2 then 3 then 10.</think>\n<answer>{a}</answer>",
    "Working: 2 * 6 = 12.\nAnswer: ${a}$",
    "So we get \\fbox{{{a}}}",
    "Final answer: \\boxed{{{a}}}.",
    "After checking both cases (1 and 2), I conclude \\boxed{{ {a} }}",
]
GSM8K_STYLE = "She had 5 then 7 more.\n#### {a}"
PLAIN_STYLE = "First 3, then 9, so the total is {a}"


def render(answer: str, index: int) -> str:
    """A completion that states ``answer`` in one of the common styles (cycled by ``index``)."""
    if index % 11 == 10 and answer.lstrip("-").replace(".", "").replace(",", "").isdigit():
        return (GSM8K_STYLE if index % 2 else PLAIN_STYLE).format(a=answer)
    style = STYLES[index % len(STYLES)]
    if style.count("$") and "\\begin" in answer:
        style = STYLES[0]
    return style.format(a=answer)


def rows() -> list[dict]:
    """The labelled rows: completion, answer (gold), expected (bool), category."""
    rendered = [{"completion": render(pred, i), "answer": gold, "expected": expected, "category": category}
                for i, (category, pred, gold, expected) in enumerate(CASES)]
    raw = [{"completion": completion, "answer": gold, "expected": expected, "category": category}
           for category, completion, gold, expected in RAW_CASES]
    return rendered + raw
