r"""Where math sits in model output: boxes, math spans and the joints between them.

Everything here is one linear pass (a brace matcher, a token scan with no backtracking), so
200 kB of output costs milliseconds whatever it contains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPAN_TOKENS = re.compile(r"\$\$|\$|\\\(|\\\[|\\.", re.S)  # openers, and escapes to step over
_CLOSERS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_SPAN_JOINT = re.compile(r"\s*+(?:,|;|,?\s*+and|,?\s*+or)?\s*+")
TEXT_COMMAND = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{[^{}]{0,60}\}")


_BRACE = re.compile(r"[{}]")


def matching_braces(text: str) -> dict[int, int]:
    """``{open index: close index}`` for every balanced, unescaped brace pair, in one pass."""
    pairs, stack = {}, []
    for brace in _BRACE.finditer(text):  # the braces only, not every character
        i = brace.start()
        if i and text[i - 1] == "\\":
            continue
        if text[i] == "{":
            stack.append(i)
        elif stack:
            pairs[stack.pop()] = i
    return pairs


def boxes(text: str) -> list[tuple[int, int, str]]:
    r"""Top-level ``\boxed{...}`` / ``\fbox{...}`` (and ``\boxed 5``): (start, end, content)."""
    pairs = matching_braces(text) if "\\boxed" in text or "\\fbox" in text else {}
    found, end_of_last = [], -1
    for match in re.finditer(r"\\(?:boxed|fbox)(\{| +([^\s$\\]+))", text):
        if match.start() < end_of_last:
            continue  # a box inside a box
        if match.group(2) is not None:
            found.append((match.start(), match.end(), match.group(2)))
            end_of_last = match.end()
        elif match.end() - 1 in pairs:
            close = pairs[match.end() - 1]
            start, end = unwrapped(text, pairs, match.end(), close)
            found.append((match.start(), close + 1, text[start:end].strip()))
            end_of_last = close + 1
    return found


_INNER_BOX = re.compile(r"\s*\\(?:boxed|fbox)\s*\{")


def unwrapped(text: str, pairs: dict[int, int], start: int, end: int) -> tuple[int, int]:
    r"""Where the content of a box starting at ``start`` and closing at ``end`` is, once boxes that
    are all of it are taken off (``\boxed{\boxed{2}}`` holds ``2``), at any depth, in a loop."""
    while True:
        inner = _INNER_BOX.match(text, start, end)
        if inner is None or pairs.get(inner.end() - 1) is None or text[pairs[inner.end() - 1] + 1:end].strip():
            return start, end
        start, end = inner.end(), pairs[inner.end() - 1]


def joins_boxes(between: str) -> bool:
    r"""Is the text between two boxes only a joint (``, ``, ``\quad \text{and}``, ``papers and``)?"""
    if len(between) > 80 or re.search(r"[.!?](?:\s|$)|\n\s*\n", between):
        return False
    words = re.sub(r"\\[A-Za-z]+|[^A-Za-z]", " ", between).split()
    if not words and re.search(r"[^\s$\\(){}\[\]]", between):
        return True  # nothing but symbols between them ('\boxed{a} % \boxed{b}'): both are the answer
    if words and not {"and", "or"} & set(words) and not re.search(r"[,;&]", between):
        return False  # words with no 'and' or comma between the boxes: 'first ... then ...'
    rest = TEXT_COMMAND.sub(" ", between)
    rest = re.sub(r"\\(?:q?quad|[,;:! ]|\(|\)|\[|\])|\$|[,;&]|\b(?:and|or)\b", " ", rest)
    rest = re.sub(r"[A-Za-z](?:_\{?\w+\}?)?\s*=", " ", rest)  # 'y_2 =' naming the next value
    return re.fullmatch(r"\s*(?:[A-Za-z]+\s*){0,3}", rest) is not None


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    content: str


def math_spans(text: str) -> list[Span]:
    r"""``$$...$$``, ``$...$`` (one line), ``\(...\)`` and ``\[...\]`` spans, left to right.

    Linear: an escaped ``\$`` neither opens nor closes, and an opener with no closer anywhere
    after it stops that kind of span from being looked for again.

    >>> [s.content for s in math_spans(r"cost \$5, so $x=1$ and \[y\]")]
    ['x=1', 'y']
    """
    spans, resume, dead = [], 0, set()
    for token in _SPAN_TOKENS.finditer(text):
        opener = token.group()
        if token.start() < resume or opener not in _CLOSERS or opener in dead:
            continue
        end = closing(text, _CLOSERS[opener], token.end())
        if end < 0:
            dead.add(opener)
        elif opener != "$" or "\n" not in text[token.end():end]:  # inline math stays on its line
            spans.append(Span(token.start(), end + len(_CLOSERS[opener]), text[token.end():end].strip()))
            resume = spans[-1].end
    return spans


def closing(text: str, closer: str, start: int) -> int:
    end = text.find(closer, start)
    while end > 0 and closer[0] == "$" and text[end - 1] == "\\":
        end = text.find(closer, end + 1)
    return end


def mask_math(text: str, spans: list[Span] | None = None) -> str:
    """``text`` with every math span's content blanked (same length), so prose rules skip math;
    ``spans`` when the caller has found them already."""
    parts, last = [], 0
    for span in math_spans(text) if spans is None else spans:
        parts += [text[last:span.start + 1], " " * (span.end - span.start - 2)]
        last = span.end - 1
    return "".join(parts) + text[last:]


def spans_joined(text: str, previous: Span, span: Span) -> bool:
    """Only 'and', 'or', a comma or nothing stands between two spans: they are one list."""
    return _SPAN_JOINT.fullmatch(text, previous.end, span.start) is not None


def joined_spans(text: str, spans: list[Span]) -> str | None:
    """The last span with the spans before it that 'and', 'or' or a comma join to it."""
    if not spans:
        return None
    joined = [spans[-1].content]
    for previous, span in zip(reversed(spans[:-1]), reversed(spans)):
        if not spans_joined(text, previous, span):
            break
        joined.insert(0, previous.content)
    return ", ".join(joined)


def nesting_depth(text: str) -> int:
    r"""How deeply brackets and braces nest (``\left(`` counts as its bracket), in one pass.

    >>> nesting_depth(r"\frac{1}{(2+[3])}"), nesting_depth("((3")
    (3, 2)
    """
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]" and depth:
            depth -= 1
    return deepest
