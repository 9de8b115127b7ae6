r"""Whether a completion commits to a final answer, and which sentence states it.

A strict grader credits only an answer the completion commits to. Explicit answers (boxes,
``Final Answer:``, ``The answer is``, tags, ``####``) commit wherever they stand, unless hedged
(``the answer is at most 12``, ``either 3 or 5``, ``\boxed{4}. Alternatively, \boxed{5}``).
Without one, the completion's *final statement* must state it:

- a completion whose reasoning never closed (``<think>`` with no ``</think>`` after it) has none;
- nor has one cut off: ending on a comma, an operator or an open ``$``, or on words after its
  last value (``... to get 14 and then we subtract``);
- the final statement is the last sentence that is not an afterthought: a check or verification
  (``Check: 12 * 2 = 24.``), a hypothetical (``Had he lost 16 more, it would be 64.``), a note or
  aside, a pleasantry, a question;
- it states a value at its end (a few unit words may follow: ``there are 12 ways.``), and gives
  up or hedges nowhere (``I give up``, ``so far``, ``at most``, ``probably``).

Everything here is a linear pass over the end of the text.
"""

from __future__ import annotations

import re

from rewards.latex_spans import mask_math, math_spans

READ_CHARS = 4000  # the final statement is found in the text's last few thousand characters

_CONCLUDING = re.compile(r"[\s*#>(\[_]*(?:so|thus|hence|therefore|finally|in total|total|altogether|overall|"
                         r"in conclusion|in summary|the answer|the final answer)\b", re.I)
_AFTERTHOUGHT = re.compile(
    r"^[\s*#>(\[_]*(?:check(?:ing)?|verification|verify(?:ing)?|note|notice|remark|fun fact|interestingly|"
    r"by the way|p\.?s\.?|sanity|as a check|double[- ]check(?:ing)?|alternatively)\b"
    r"|\b(?:let(?:'s| me| us)\s+(?:double[- ]check|check|verify|confirm|reconsider)|to (?:verify|check|confirm)|"
    r"plugging|substituting (?:back|it|this|these)|i hope|hope this|let me know|feel free|good luck)\b"
    r"|✓|\\checkmark|\?[\s*)]*$", re.I)
_HYPOTHETICAL = re.compile(r"\b(?:would|could|might)\b|\w['’]d\b", re.I)  # she'd make $27
# a final statement that gives up commits to nothing; one that qualifies its value right before it
# ('at most 12', 'not 12', 'either 3 or 5', 'probably 5') commits to no value
_GIVES_UP = re.compile(r"\b(?:not sure|unsure|unable|(?:cannot|can't|couldn't)(?! be (?:reduced|simplified|factored|"
                       r"written|expressed|made))|give up|gave up|ran out|so far|partially|partial(?! (?:sums?|fractions?|"
                       r"derivatives?|products?|credit|order))|incomplete|no idea|not certain|candidates?|possibilities|"
                       r"possible (?:values|answers)|could be any|depending on|whether or not)\b", re.I)
_QUALIFIER_BEFORE = re.compile(
    r"(?:\b(?:not|never|at most|at least|than|either|or|maybe|perhaps|possibly|probably|likely|between|"
    r"somewhere|guess)\b|n't)(?:\s+(?:be|equal to|exactly|just|only|quite|really|around|about))*[\s:$*(]*$", re.I)
_ALTERNATIVES = re.compile(r"\b(?:either|or)\b[\s:$*(]*$", re.I)
# after 'the answer is', what makes the rest no value: 'at most 12', 'not 12', 'one of these'
QUALIFIED = re.compile(
    r"^[\s*]*(?:(?:definitely|certainly|surely|clearly|obviously|actually)\s+)?(?:not\b|never\b|no longer\b|at (?:most|least)\b|(?:greater|less|more|fewer|larger|smaller|bigger|"
    r"higher|lower) than\b|(?:above|below|under|over|between|either|maybe|perhaps|possibly|probably|likely|"
    r"unknown|undetermined|one of|somewhere)\b)", re.I)
_CLOSED = re.compile(r"(?:[.!?)\]}*\"'`✓]|\\\]|\\\))$")
MAX_UNIT_WORDS = 3  # words that may follow a final value: '12 apples', '3 1/4 cups of flour'
_FUNCTION_WORD_END = re.compile(
    r"\b(?:the|a|an|of|to|in|on|for|with|and|or|but|so|then|which|that|is|are|was|were|be|we|it|gives|give|get|gets|"
    r"obtain|yields|equals|by|as|at|from|into|than|this|these|if|when|since|because|thus|hence|therefore)$", re.I)
_ABBREVIATION = re.compile(r"\b(?:i\.e|e\.g|etc|vs|cf|approx|resp|Dr|Mr|Mrs|Ms|St|No|Fig|Eq)\.", re.I)
_BREAK = re.compile(r"[.!?](?=\s)|\n")
_DANGLING = re.compile(r"(?:[,;:=+\-/^(\[{\\&]|(?<!\*)\*)$|\\(?:frac|sqrt|cdot|times|left)$")  # not markdown's '**'


def reasoning_unfinished(text: str) -> bool:
    """An opened ``<think>`` with no ``</think>`` after it: the answer was never given."""
    return text.rfind("<think>") > text.rfind("</think>")


def cut_off(text: str) -> bool:
    """The text stops mid-sentence: on a comma, an operator, an opening bracket, an open ``$``, or,
    with no closing punctuation, on more than a few words after its last value."""
    stripped = text.rstrip()
    if not stripped:
        return True
    if stripped.endswith(("$", "\\)", "\\]")):
        spans = math_spans(stripped[-READ_CHARS:])
        if not spans or spans[-1].end != len(stripped[-READ_CHARS:]):
            return True  # an open '$'
        return _DANGLING.search(spans[-1].content) is not None  # '$\gcd(84, 126) =$'
    if _DANGLING.search(stripped):
        return True
    last_line = stripped[stripped.rfind("\n") + 1:][-2000:]
    if last_line.count("{") > last_line.count("}"):
        return True  # '$\boxed{45' stops inside a group: it might have gone on to 450
    if _CLOSED.search(stripped):
        return False
    if _FUNCTION_WORD_END.search(stripped[-40:]):
        return True  # '... which gives', '... so the answer is''
    start, end = sentences(stripped)[-1]
    last = mask_math(stripped[start:end])
    value = max(last.rfind("$") + 1, max((m.end() for m in re.finditer(r"\d", last)), default=0))
    after = last[value:]
    return (value == 0 or len(re.findall(r"[A-Za-z]+", after)) > MAX_UNIT_WORDS
            or re.match(r"\W*,|\s*(?:and|but|so|then|which|with|while|where|because)\b", after) is not None)


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty sentence or line in the end of ``text``, math kept whole."""
    offset = max(0, len(text) - READ_CHARS)
    masked = _ABBREVIATION.sub(lambda m: m.group().replace(".", "_"), mask_math(text[offset:]))  # 'i.e.' ends nothing
    found, start = [], 0
    for match in _BREAK.finditer(masked):
        if masked[start:match.end()].strip():
            found.append((offset + start, offset + match.end()))
        start = match.end()
    if masked[start:].strip():
        found.append((offset + start, len(text)))
    return found


def concludes(sentence: str) -> bool:
    return _CONCLUDING.match(sentence) is not None


def afterthought(sentence: str) -> bool:
    """A sentence after the answer that states none: a check, a hypothetical, an aside, a question."""
    masked = mask_math(sentence)
    if re.fullmatch(r"\s*\(.*\)[\s.]*", masked, re.S):
        return True  # a whole sentence in parentheses: '(She keeps 7 eggs.)'
    if concludes(masked) and not masked.rstrip(" *.)").endswith("?"):
        return False  # 'So the total would be 72.' concludes
    return bool(_AFTERTHOUGHT.search(masked) or _HYPOTHETICAL.search(masked))


def final_statement(text: str) -> tuple[int, str] | None:
    """Where the completion's final statement starts, and its text; None when it has none (cut
    off, nothing but afterthoughts, or an afterthought that gives up)."""
    if cut_off(text):
        return None
    for start, end in reversed(sentences(text)):
        sentence = text[start:end]
        if not afterthought(sentence):
            return start, sentence
        if _GIVES_UP.search(mask_math(sentence)):
            return None  # 'I'd guess 4 but I'm not sure': a doubt at the end undoes what came before
    return None


_CONDITIONS = re.compile(r"\bif\b.*\bif\b|\bdepending on\b|\bwhether or not\b", re.I | re.S)


def conditional(sentence: str) -> bool:
    """An answer given under conditions: 'If they do, the answer is 45; if they don't, it is 40.'"""
    return _CONDITIONS.search(_IFF.sub("iff", mask_math(sentence))) is not None


_IFF = re.compile(r"\bif and only if\b", re.I)  # one condition, not two


def uncommitted(sentence: str, value_at: int, listing: bool = False) -> bool:
    """A statement that gives up ('I give up', 'so far', 'candidates'), or qualifies the value
    starting at ``value_at`` right before it ('at most 12', 'is not 12', 'either 3 or 5',
    'probably 5'); with ``listing`` (the value lists solutions: 'either $x = 4$ or $x = 5$'), an
    'either ... or' lists, it does not hedge.

    >>> uncommitted("the number is not 10 which is 1,000.99", 30), uncommitted("it is not 12", 10)
    (False, True)
    """
    masked = mask_math(sentence)
    before = masked[:value_at]
    qualifier = _QUALIFIER_BEFORE.search(before)
    if qualifier and listing and _ALTERNATIVES.match(before, qualifier.start()):
        qualifier = None
    return _GIVES_UP.search(masked) is not None or qualifier is not None or conditional(sentence)
