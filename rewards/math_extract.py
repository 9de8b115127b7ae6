r"""Find the final answer in free-form model output.

Extractors are tried in a configurable order; the first that finds something wins:

- ``boxed``: the last ``\boxed{...}`` / ``\fbox{...}`` (nested braces; ``\boxed 5`` too)
- ``answer_tags``: the last ``<answer>...</answer>``
- ``final_answer``: ``**Final Answer:** ...``, ``Final answer: ...``
- ``answer_phrase``: ``The answer is ...`` / ``Answer: ...``
- ``gsm8k``: ``#### 72``
- ``last_math``: the last ``$...$``, ``\(...\)`` or ``\[...\]`` span
- ``last_number``: the last number in the text (not one glued inside a word)

Every extractor is linear in the length of the text (no backtracking regexes), so 200 kB
of output costs milliseconds.
"""

from __future__ import annotations

import re

DEFAULT_ORDER = ("boxed", "answer_tags", "final_answer", "answer_phrase", "gsm8k", "last_math",
                 "last_number")

_NUMBER = re.compile(r"(?<![A-Za-z\d])(?:-?(?:\d{1,3}(?:(?:,| )\d{3})+|\d+)(?:\.\d+)?|-?\.\d+)(?![A-Za-z]*\d)")
_MATH_SPANS = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_FINAL = re.compile(r"\**final\s+answer\**\s*(?:is)?\s*:?\**\s*:?", re.I)
_PHRASE = re.compile(r"(?:the\s+(?:final\s+)?answer\s+is|answer\s*:)\s*:?", re.I)
# where the stated answer ends and the explanation begins
_CLAUSE_END = re.compile(r"(?<![\d\\])\.(?:\s|$)|,?\s+(?:since|because|as|which|so|where|when|for|given)\b|\s+[-\u2014]\s")


def braced(text: str, open_at: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[open_at] == '{'`` and the index after it."""
    depth = 0
    for j in range(open_at, len(text)):
        ch = text[j]
        if ch == "\\" and j + 1 < len(text) and text[j + 1] in "{}":
            continue
        if ch == "{" and (j == 0 or text[j - 1] != "\\"):
            depth += 1
        elif ch == "}" and (j == 0 or text[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[open_at + 1:j], j + 1
    return None


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` or ``\fbox{...}``.

    >>> last_boxed(r"so \boxed{\frac{1}{2}} and then \boxed{3}.")
    '3'
    >>> last_boxed(r"\boxed 5") , last_boxed("no box")
    ('5', None)
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    while start >= 0:
        after = start + (6 if text.startswith("\\boxed", start) else 5)
        rest = text[after:after + 1]
        if rest == "{":
            found = braced(text, after)
            if found is not None:
                return found[0].strip()
        elif rest == " ":
            word = text[after + 1:].split("$")[0].split()
            if word:
                return word[0]
        start = max(text.rfind("\\boxed", 0, start), text.rfind("\\fbox", 0, start))
    return None


def answer_tags(text: str) -> str | None:
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    return text[start + len("<answer>"):end].strip() if start >= 0 else None


def after_marker(pattern: re.Pattern, text: str) -> str | None:
    """What follows the last match of ``pattern``, up to the end of its line or sentence."""
    last = None
    for last in pattern.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end():].strip()
    line = rest.split("\n", 1)[0].strip()
    inner = last_boxed(line) or math_span(line)
    if inner is not None:
        return inner
    return _CLAUSE_END.split(line, maxsplit=1)[0].strip() or None


def math_span(line: str) -> str | None:
    r"""The first ``$...$`` / ``\(...\)`` / ``\[...\]`` span of a line."""
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        i = line.find(opener)
        if i >= 0:
            j = line.find(closer, i + len(opener))
            if j > i:
                return line[i + len(opener):j].strip()
    return None


def gsm8k(text: str) -> str | None:
    i = text.rfind("####")
    if i < 0:
        return None
    tokens = text[i + 4:].split()
    return tokens[0] if tokens else None  # GSM8K answers are one number


def last_math(text: str) -> str | None:
    r"""The last inline or display math span.

    >>> last_math(r"so $k = 2$ and then $\frac{1}{3}$ follows")
    '\\frac{1}{3}'
    """
    found = None
    for found in _MATH_SPANS.finditer(text[-20_000:]):
        pass
    if found is None:
        return None
    inner = next(g for g in found.groups() if g is not None).strip()
    return inner or None


def last_number(text: str) -> str | None:
    found = None
    for found in _NUMBER.finditer(text[-10_000:]):
        pass
    return found.group(0) if found else None


EXTRACTORS = {
    "boxed": last_boxed,
    "answer_tags": answer_tags,
    "final_answer": lambda t: after_marker(_FINAL, t),
    "answer_phrase": lambda t: after_marker(_PHRASE, t),
    "gsm8k": gsm8k,
    "last_math": last_math,
    "last_number": last_number,
}


def extract_answer(text: str, order: tuple[str, ...] | list[str] = DEFAULT_ORDER) -> str | None:
    r"""The final answer a completion commits to, or None.

    >>> extract_answer("47+85=132")
    '132'
    >>> extract_answer("so #### 1,000")
    '1,000'
    >>> extract_answer("**Final Answer:** $\\frac{3}{4}$")
    '\\frac{3}{4}'
    >>> extract_answer("The answer is (B).")
    '(B)'
    """
    for name in order:
        if name not in EXTRACTORS:
            raise ValueError(f"unknown extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
        found = EXTRACTORS[name](text)
        if found:
            return found
    return None


def gold_answer(gold) -> str | None:
    r"""The reference answer: extracted from a worked solution, else the gold as written.

    >>> gold_answer("She sells 3 a day. #### 72"), gold_answer(r"\frac{3}{4}")
    ('72', '\\frac{3}{4}')
    """
    if gold is None or not str(gold).strip():
        return None
    text = str(gold)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if "####" in text:
        return gsm8k(text)
    return text.strip()
