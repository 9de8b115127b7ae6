r"""Find the final answer in free-form model output.

Extractors are tried in a configurable order; the first that finds something wins. The
default order reads a completion the way a grader does:

- ``marked``: whichever explicit answer comes last in the text: the boxes (``boxed``), a
  final-answer sentence (``final_answer``), ``<answer>`` tags (``answer_tags``), ``####``
  (``gsm8k``) or ``The answer is ...`` / ``Answer: ...`` at a line start (``answer_phrase``);
- ``conclusion``: a last sentence that concludes (``So x != 2.``, ``Total: 42``);
- ``bare``: the whole completion, when it is an answer with no prose around it (``1/2``,
  ``\tfrac83``, ``x + \sqrt2 i``);
- ``last_value``: the last math span or plain value (``3 1/4``, ``2/3``, ``12,000``, ``28%``),
  whichever comes later (``last_math`` and ``last_number`` alone are also available).

Boxes next to each other (``\boxed{1} and \boxed{2}``) form one answer, the list ``1, 2``. In
a final-answer sentence the value follows its verb (``The largest $n$ is 34.`` -> ``34``), and a
period followed by a space ends it (``The answer is 7. Done.`` -> ``7``). When the text has a
``</think>``, only what follows it is read: an answer left in the reasoning is no answer.

Every extractor is linear in the length of the text (one pass for braces, no backtracking
regexes), so 200 kB of output costs milliseconds.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from rewards.commitment import (MAX_UNIT_WORDS, QUALIFIED, conditional, final_statement,
                                reasoning_unfinished, uncommitted)
from rewards.latex_normalise import normalise
from rewards.latex_spans import (TEXT_COMMAND, Span, boxes, joined_spans, joins_boxes, mask_math, matching_braces,
                                 math_spans, spans_joined)

DEFAULT_ORDER = ("marked", "conclusion", "bare", "last_value")
TAIL = 20_000  # plain-text fallbacks read the end of the output only

# a plain value: a mixed number (3 1/4, 1 000 4/9), a fraction (2/3) or a number, maybe a percent
_INTEGER = r"\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ ]\d{3})+(?![\d/])|\d+"
_VALUE = re.compile(rf"""(?<![A-Za-z\d.\\])[-+−]?(?:
      \d{{1,2}}:\d{{2}}(?:\s*[AaPp]\.?[Mm]\b\.?)?(?![\d:])  # a time: 12:35 PM
    |      (?:{_INTEGER})[ \t]+\d+/\d+(?![\d/])
    | \d+/\d+(?![\d/])
    | (?:0|[1-9]\d*),(?:\d{{1,2}}|\d{{4,}})(?![\d,])  # a decimal comma: 1000,99 (never a thousands group)
    | (?:{_INTEGER})(?:\.\d+)?
    | \.\d+
    )(?:π|√\d+)?(?![A-Za-z]*\d)(?:[ \t]*(?:\\?%|percent(?:age)?\b|pct\b))?""", re.X | re.I)  # 4π, 2√3 in plain text
_FRACTION_COMMAND = re.compile(r"-?\\[dtc]?frac\s*\{[^{}]{1,40}\}\s*\{[^{}]{1,40}\}")
# no leading quantifier: '\**final' rescans every run of stars (200 kB of '*' took minutes)
FINAL_MARKER = re.compile(r"final\s+answer\**\s*(?:is)?\s*:?\**\s*:?", re.I)
# 'the answer is' anywhere; 'Answer:' (or 'Answer $...$') only where a line starts, not 'check our answer: ...'
# possessive runs (*+, ++): a long run of spaces after 'Answer' is read once, never backtracked into
ANSWER_PHRASE = re.compile(r"(?:the\s++(?:final\s++|correct\s++|right\s++)?answer\s++is(?![\w'’])|"
                           r"(?:^|\n)[ \t*#_]*+answer[ \t*_]*+(?::|(?=\s*+(?:\$|\\\(|\\\[))))\s*+:?", re.I)
# where a stated answer ends: a period, ! or ? before a space, a blank line, or a reason
# (each alternative starts on a comma or on the first of a run of spaces: one pass over any run)
_CLAUSE_END = re.compile(r"[.!?](?=\s|$)|;|\n[ \t]*+\n|,\s++(?:not|rather than|instead of)\b|"
                         r"(?:,\s*+|(?<![\s,])\s++)(?:since|because|as|which|so|where|when|for|given|attained|achieved|"
                         r"reached|occurring|I hope|i\.e\.|e\.g\.|that is|or equivalently)(?!\w)|(?<!\s)\s++[-\u2014]\s")
_CONCLUSION = re.compile(r"(?:so|thus|hence|therefore|finally|total|in total|altogether|overall)\b\s*[,:]?\s*", re.I)
# words an answer itself may contain (others mean prose around it)
_ANSWER_WORDS = {"and", "or", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod", "arcsin",
                 "arccos", "arctan", "sinh", "cosh", "tanh", "pi", "sqrt", "max", "min", "gcd", "lcm", "det",
                 "infty", "inf"}
COPULA = re.compile(r"\s(?:is|are|was|were|equals|be|becomes)\s+(?:equal\s+to\s+)?", re.I)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


@dataclass(frozen=True)
class Found:
    answer: str
    at: int  # where in the text the answer was stated, to tell which came last
    end: int = -1  # where its statement ends, where known


# ---------------------------------------------------------------- boxes


def boxed(text: str) -> Found | None:
    r"""The last box, with the boxes joined to it: ``\boxed{1}, \boxed{2}`` -> ``1, 2``.

    >>> boxed(r"so \boxed{\frac{1}{2}}. Then \boxed{3}.").answer
    '3'
    >>> boxed(r"The roots are \boxed{-2} \quad \text{and} \quad \boxed{1}.").answer
    '-2, 1'
    """
    return last_boxes(text, boxes(text))


def last_boxes(text: str, found: list[tuple[int, int, str]]) -> Found | None:
    """``boxed`` from the text's boxes, found once by the caller."""
    found = [b for b in found if b[2]]
    if not found:
        return None
    cluster = [found[-1]]
    for previous in reversed(found[:-1]):
        between = text[previous[1]:cluster[0][0]]
        if not (joins_boxes(between) or hedges_between(between)):
            break
        cluster.insert(0, previous)
    return Found(", ".join(content for _, _, content in cluster), cluster[-1][0], cluster[-1][1])


_HEDGE = re.compile(r"\b(?:alternatively|or|otherwise|maybe|perhaps|possibly)\b", re.I)


def hedges_between(between: str) -> bool:
    r"""Two boxes offered as alternatives (``\boxed{4}. Alternatively, \boxed{5}``): both are the answer."""
    return len(between) <= 200 and _HEDGE.search(between) is not None


# ---------------------------------------------------------------- sentences that state the answer


def clause(text: str) -> str:
    """The text up to where the stated answer ends (outside math)."""
    text = _PROSE_ASIDE.sub(lambda m: " " * len(m.group()), text[:2000])  # '12 (had she ..., it would be 24)'
    end = _CLAUSE_END.search(mask_math(text))
    stated = (text[:end.start()] if end else text).strip()
    return re.sub(r"\s*\([^()]*$", "", stated).rstrip("[{,;: ").strip()  # '0.375 (i.e. ...' ends at '0.375'


def stated_answer(sentence: str) -> str | None:
    r"""The answer a sentence states: its boxes, else the value after its verb, else its last value.

    >>> stated_answer("The largest $n$ is 34"), stated_answer("Jane started 3 hours ago")
    ('34', '3')
    >>> stated_answer(r"$(5, 8)$ and $(8, 5)$"), stated_answer("12,000,023")
    ('(5, 8), (8, 5)', '12,000,023')
    """
    inside = boxed(sentence)
    if inside:
        return inside.answer
    share = _SHARE.search(sentence)
    if share:
        return f"{share.group(1)}%"  # '28 is 35 percent of 80'
    verbs = list(COPULA.finditer(mask_math(sentence)))
    if verbs and sentence[verbs[-1].end():].strip():
        sentence = sentence[verbs[-1].end():].strip()
    spans = [span for span in math_spans(sentence) if span.content]
    if spans and not sentence[:spans[0].start].strip(" :*\"'`\\"):
        first = [spans[0]]
        for previous, span in zip(spans, spans[1:]):
            if not spans_joined(sentence, previous, span):
                break
            first.append(span)
        return ", ".join(span.content for span in first)
    if is_bare(sentence):
        return sentence.strip(" *.:") or None
    value = last_value(sentence)
    if value:
        return value.answer
    spelt = spelt_number(sentence)
    return spelt.answer if spelt else None  # 'the answer is **twelve**', 'one sixth'


_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_PARTS = {"half": 2, "halves": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
          "eighth": 8, "ninth": 9, "tenth": 10, "hundredth": 100}
_SPELT = re.compile(r"(?<![\w-])(?:(" + "|".join(_TENS) + r")(?:[- ](" + "|".join(_UNITS[1:10]) + r"))?|(" + "|".join(_UNITS) + r"))"
                    r"(?:[- ](" + "|".join(_PARTS) + r")s?)?(?![\w-])", re.I)
_NOT_A_NUMBER = re.compile(r"(?:\b(?:the|a|this|that|which|each|every|any|no|another)\s+$)", re.I)


def spelt_number(sentence: str) -> Found | None:
    """The last number spelt in words: ``twenty-four`` (24), ``forty-two``, ``one sixth`` (1/6);
    not 'one' used as a pronoun ('the one', 'one of them').

    >>> [spelt_number(s).answer for s in ("Janet has twenty-four apples left.", "The probability is one sixth.")]
    ['24', '1/6']
    >>> spelt_number("Take the one with the most."), spelt_number("one of these")
    (None, None)
    """
    found = None
    for match in _SPELT.finditer(sentence):
        is_pronoun = match.group(3) and match.group(3).lower() == "one" and not match.group(4) and (
            _NOT_A_NUMBER.search(sentence[:match.start()]) or re.match(r"\s+of\b", sentence[match.end():]))
        if not is_pronoun:
            found = match
    if found is None:
        return None
    tens, unit, alone, part = found.groups()
    number = (_TENS.index(tens.lower()) + 2) * 10 + (_UNITS.index(unit.lower()) if unit else 0) if tens \
        else _UNITS.index(alone.lower())
    text = f"{number}/{_PARTS[part.lower().rstrip('s') if part.lower() != 'halves' else 'half']}" if part else str(number)
    return Found(text, found.start(), found.end())


def after_marker(pattern: re.Pattern, text: str, outside: list[tuple[int, int]] = ()) -> Found | None:
    """The answer stated after the last match of ``pattern`` that is not inside one of the
    ``outside`` spans (boxes); none where the statement hedges (``the answer is at most 12``)."""
    last = None
    for match in pattern.finditer(text):
        if not any(start <= match.start() < end for start, end in outside):
            last = match
    if last is None:
        return None
    stated = clause(text[last.end():])
    if QUALIFIED.match(mask_math(stated)) or conditional(sentence_around(text, last.start(), last.end())):
        return None
    answer = stated_answer(stated)
    return Found(answer, last.start()) if answer else None


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence (or line) that holds ``text[start:end]``."""
    begin = max(text.rfind(mark, max(0, start - 1000), start) for mark in ".!?\n") + 1
    stops = [stop for mark in ".!?\n" if (stop := text.find(mark, end, end + 1000)) >= 0]
    return text[begin:min(stops, default=min(len(text), end + 1000))]


def is_bare(text: str) -> bool:
    r"""An answer with no prose around it: no word outside LaTeX commands but 'and', 'or', 'sin'..."""
    stripped = text.strip()
    if not 0 < len(stripped) <= 300 or "\n\n" in stripped:
        return False
    return all(w.lower() in _ANSWER_WORDS for w in _WORD.findall(TEXT_COMMAND.sub(" ", stripped)))


def looks_like_answer(answer: str) -> bool:
    """A digit, LaTeX, a math sign or a letter or two: not 'correct' after 'The answer is'."""
    return bool(re.search(r"[\d\\=<>^()+\-⁰¹²³⁴⁵⁶⁷⁸⁹±√π∞≤≥≠−∪∩½⅓⅔¼¾]", answer)) or len(answer.strip(" ().")) <= 2


def conclusion(text: str) -> Found | None:
    r"""The final statement (see ``commitment``), when it concludes: 'So x != 2.', 'Therefore
    $x \geq 5$.', 'Total: 42'; none when it hedges or gives up.

    >>> conclusion("2x >= 10.\nTherefore x >= 5.").answer, conclusion("So we add them up.")
    ('x >= 5', None)
    >>> conclusion("So he has 48 left.\nHad he lost 16 more, it would be 64.").answer
    '48'
    """
    final = final_statement(text)
    if final is None:
        return None
    start, sentence = final
    sentence = sentence.rstrip().rstrip(" .!")
    opening = _CONCLUSION.match(sentence, len(sentence) - len(sentence.lstrip(" *#>")))
    if opening is None:
        return None
    stated = _PROSE_ASIDE.sub(lambda m: " " * len(m.group()), sentence[opening.end():])
    answer = stated_answer(_WHERE_ATTAINED.split(stated, maxsplit=1)[0])  # 'minimum is 5, attained at x = 2': 5
    if not answer or not looks_like_answer(answer) or uncommitted(sentence, max(sentence.rfind(answer), 0)):
        return None
    return Found(answer, start)


_WHERE_ATTAINED = re.compile(r",\s*+(?:attained|achieved|reached|occurring|which occurs)\b", re.I)
# an aside in prose inside parentheses: '(had she sold more, it would be 24)'
_PROSE_ASIDE = re.compile(r"\((?=[^()]*[A-Za-z]{2,}\s+[A-Za-z]{2,})[^()]*\)")


def bare(text: str) -> Found | None:
    r"""The whole text, when it is an answer (``\tfrac83``, ``x + 1.414i``), not a list of numbers.

    >>> bare(r"\left(x-2\right)\left(x+2\right)").answer, bare("So it is 5."), bare("4 4/9 2")
    ('\\left(x-2\\right)\\left(x+2\\right)', None, None)
    """
    stripped = text.strip()
    if not is_bare(stripped) or re.fullmatch(r"[-+]?[\d\s,./%]*", stripped):
        return None  # plain numbers side by side: the last one is read by last_value
    return Found(stripped.rstrip(". "), 0)


# ---------------------------------------------------------------- plain extractors


def answer_tags(text: str) -> Found | None:
    if text.count("<answer>") > 1 or text.count("</answer>") > 1:
        return None  # two answers in tags commit to neither
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    inner = text[start + len("<answer>"):end].strip() if start >= 0 else ""
    return Found(inner, start) if inner else None


def gsm8k(text: str) -> Found | None:
    i = text.rfind("####")
    tokens = text[i + 4:].split() if i >= 0 else []
    return Found(tokens[0], i) if tokens else None  # GSM8K answers are one number


def last_math(text: str) -> Found | None:
    r"""The last inline or display math span.

    >>> last_math(r"so $k = 2$ and then $\frac{1}{3}$ follows").answer
    '\\frac{1}{3}'
    """
    offset = max(0, len(text) - TAIL)
    return last_span(math_spans(text[offset:]), offset)


def last_span(spans: list[Span], offset: int) -> Found | None:
    if not spans or not spans[-1].content:
        return None
    return Found(spans[-1].content, offset + spans[-1].start, offset + spans[-1].end)


def last_number(text: str) -> Found | None:
    r"""The last plain value outside math: ``3 1/4``, ``2/3``, ``1,250``, ``28%``, ``\frac{10}{9}``.

    >>> [last_number(t).answer for t in ("so x = 2/3.", "add 3 1/4 cups", "we get \\frac{10}{9}")]
    ['2/3', '3 1/4', '\\frac{10}{9}']
    """
    offset = max(0, len(text) - TAIL)
    return last_plain_value(text[offset:], offset)


def last_plain_value(tail: str, offset: int, spans: list[Span] | None = None) -> Found | None:
    masked = mask_math(tail, spans)
    found = None
    for pattern in (_VALUE, _FRACTION_COMMAND):
        for match in pattern.finditer(masked):
            if found is None or match.end() > found.end() or (match.end() == found.end() and match.start() < found.start()):
                found = match
    if found is None:
        return None
    return Found(tail[found.start():found.end()].strip(), offset + found.start(), offset + found.end())


def last_value(text: str) -> Found | None:
    """The last math span or plain value, whichever the text states later; spans joined by 'and'
    or a comma are one list ('$x = 1$ and $x = -2$')."""
    offset = max(0, len(text) - TAIL)
    tail = text[offset:]
    spans = math_spans(tail)  # once, for the last span, the masking and the joining
    math, number = last_span(spans, offset), last_plain_value(tail, offset, spans)
    if math is None or (number is not None and number.at > math.at):
        return number
    return Found(joined_spans(tail, [s for s in spans if s.content]) or math.answer, math.at, math.end)


_STATING = re.compile(r"\s(?:is|are|was|were|equals|be|becomes)\s+(?:equal\s+to\s+)?|=|^[\s*#]*[A-Za-z][A-Za-z ]{0,30}:\s*", re.I)


def stated_after_verb(sentence: str) -> str | None:
    r"""What a final statement states after its first verb, ``=`` or label, when that is an answer
    with no prose (``The angle is π/4.``, ``cos 45° = √2/2``, ``Result: −1/2``): up to where the
    statement goes on (``, which``, ``because``, a parenthesis); none when it hedges or gives up."""
    masked = mask_math(sentence)
    verb = _STATING.search(masked)
    if verb is None:
        return None
    rest = clause(sentence[verb.end():])
    rest = re.sub(r"\s*\([^()]*\)[\s.!]*$", "", rest).strip(" *:").rstrip(" .")  # not the point of .5
    if not rest or rest.count("$") % 2 or uncommitted(sentence, verb.end(), listing="=" in rest):
        return None
    if is_bare(rest) and looks_like_answer(rest):
        return rest
    opening = _VALUE.match(mask_math(rest))  # 'There are 26 girls in the class.'
    after = rest[opening.end():] if opening else ""
    if (opening and re.match(r"\s+(?!(?:or|and|to|plus|minus|times|divided|over|by)\b)[A-Za-z]", after)
            and not re.search(r"(?<![\w.,])\d[\d,./]*(?![\w-])", mask_math(after))):  # a '365-day year' is no value
        return rest[:opening.end()].strip()
    return None


_ANY_VALUE = re.compile(r"(?<![\w.])\d[\d,.]*")
_SHARE = re.compile(r"\bis\s+(\d+(?:\.\d+)?)\s*(?:\\?%|percent)\s+of\b", re.I)


def committed_value(text: str) -> Found | None:
    """The value the final statement (see ``commitment``) ends on: ``7+5=12``, ``there are 12
    ways.``; none when the text has no final statement, the statement hedges or gives up, or
    more than a few words follow its last value (``... to get 14 and then we subtract``)."""
    final = final_statement(text)
    if final is None:
        return None
    start, sentence = final
    stated = stated_after_verb(sentence)
    if stated is not None:
        return Found(stated, start)
    share = _SHARE.search(sentence)
    if share:
        return Found(f"{share.group(1)}%", start + share.start(1))  # '28 is 35 percent of 80'
    value = last_value(sentence) or spelt_number(sentence)
    if value is None or uncommitted(sentence, value.at, listing="=" in value.answer):
        return None
    if sentence.rstrip(" *").endswith(".") and len(_ANY_VALUE.findall(mask_math(sentence))) == 1 and not last_math(sentence):
        return Found(value.answer, start + value.at, start + value.end)  # 'She makes $18 every day at the market.'
    if re.fullmatch(r"[\d\s,.]*\d[\d\s,.]*", mask_math(sentence[:value.at]) or "x"):
        return None  # '1 2 3 ... 39999': the last of a list of numbers is no answer
    rest = mask_math(sentence[value.end:]) if value.end >= 0 else ""
    if re.search(r"\d", rest) or len(re.findall(r"[A-Za-z]+", rest)) > MAX_UNIT_WORDS:
        return None
    return Found(value.answer, start + value.at, start + value.end)


def marked(text: str) -> Found | None:
    """Whichever explicit answer (boxes, final-answer sentence, tags, ####, 'The answer is')
    comes last: '\\boxed{24} is wrong. The answer is 72.' answers 72."""
    found = boxes(text)
    inside_boxes = [(start, end) for start, end, _ in found]  # '\boxed{\text{the answer is } 37}'
    phrase = after_marker(ANSWER_PHRASE, text, inside_boxes)
    phrase = phrase if phrase and looks_like_answer(phrase.answer) else None
    tags = answer_tags(text)
    others = [f for f in (last_boxes(text, found), after_marker(FINAL_MARKER, text, inside_boxes), gsm8k(text), phrase) if f]
    if tags and any(f.at < tags.at and not same_text(f.answer, tags.answer) for f in others):
        return CONTRADICTED  # '**Answer: 28** ... <answer>18</answer>': two different answers commit to neither
    candidates = others + ([tags] if tags else [])
    return max(candidates, key=lambda f: f.at) if candidates else None


CONTRADICTED = Found("", -1)  # explicit answers that disagree: nothing else is read either


def same_text(a: str, b: str) -> bool:
    """Two stated answers that read the same once normalised (no parsing: a difference is enough)."""
    return normalise(a) == normalise(b)


# what a chat template leaves after the reply when a completion is decoded with its special tokens
_END_TOKENS = re.compile(r"(?:\s*(?:<\|[\w ]{1,40}\|>|</s>|<eos>|<end_of_turn>)(?:\s*(?:user|assistant|system)\b)?)+\s*$")


_FINDERS = {
    "marked": marked,
    "boxed": boxed,
    "final_answer": lambda t: after_marker(FINAL_MARKER, t),
    "answer_tags": answer_tags,
    "gsm8k": gsm8k,
    "answer_phrase": lambda t: after_marker(ANSWER_PHRASE, t),
    "conclusion": conclusion,
    "bare": bare,
    "last_value": committed_value,
    "last_math": last_math,
    "last_number": last_number,
}
EXTRACTORS = tuple(_FINDERS)


def extract_answer(text: str, order: tuple[str, ...] | list[str] = DEFAULT_ORDER) -> str | None:
    r"""The final answer a completion commits to, or None.

    >>> extract_answer("we add 47+85=132"), extract_answer("so #### 1,000"), extract_answer("1/2")
    ('132', '1,000', '1/2')
    >>> extract_answer("**Final Answer:** $\\frac{3}{4}$"), extract_answer("The answer is (B).")
    ('\\frac{3}{4}', '(B)')
    >>> extract_answer(r"\boxed{200} ... Final Answer: The final answer is $10,455$. I hope it is correct.")
    '10,455'
    """
    unknown = [name for name in order if name not in _FINDERS]
    if unknown:
        raise ValueError(f"unknown extractor {unknown[0]!r}; choose from {', '.join(EXTRACTORS)}")
    if reasoning_unfinished(text) or text.count("<answer>") > 1:
        return None  # '<think>' never closed, or two answers in tags: no answer was given
    text = visible(text)
    ending = _END_TOKENS.search(text, max(0, len(text) - 500))
    text = (text[:ending.start()] if ending else text).replace("`", " ")  # code spans and fences are no answer's part
    end_of_thought = text.rfind("</think>")
    reply = text[end_of_thought + len("</think>"):] if end_of_thought >= 0 else text
    for name in order:  # after a closed <think>, only the reply counts: an answer left in thought is none
        found = _FINDERS[name](reply)
        if found is CONTRADICTED:
            return None
        if found and found.answer:
            return found.answer
    return None


_INVISIBLE = re.compile(r"\{\s*\\color\s*\{\s*white\s*\}|\\textcolor\s*\{\s*white\s*\}\s*\{|\\[hv]?phantom\s*\{")


def visible(text: str) -> str:
    r"""The text without what is drawn invisible (``{\color{white} ...}``, ``\textcolor{white}{...}``,
    ``\phantom{...}``), blanked to spaces so positions stay: a grader reads what is shown."""
    if "white" not in text and "phantom" not in text:
        return text
    pairs = matching_braces(text)
    blanked = list(text)
    for hidden in _INVISIBLE.finditer(text):
        opening = hidden.start() if text[hidden.start()] == "{" else hidden.end() - 1
        for i in range(hidden.start(), pairs.get(opening, opening) + 1):
            blanked[i] = " "
    return "".join(blanked)


def gold_answer(gold) -> str | None:
    r"""The reference answer: extracted from a worked solution, else the gold as written.

    >>> gold_answer("She sells 3 a day. #### 72"), gold_answer(r"\frac{3}{4}")
    ('72', '\\frac{3}{4}')
    >>> gold_answer(r"\boxed{1} papers and \boxed{2} bins")
    '1, 2'
    """
    if gold is None or not str(gold).strip():
        return None
    return reference_in(str(gold).strip())


@functools.lru_cache(maxsize=65536)
def reference_in(text: str) -> str:
    """``gold_answer`` of a non-empty gold; cached, as each gold comes once per sample of its group."""
    found = marked(text)
    if found is None and not is_bare(text):
        found = after_marker(ANSWER_PHRASE, text)
    return found.answer if found else text


def is_choice(answer: str) -> bool:
    return re.fullmatch(r"\(\s*[A-Ea-e]\s*\)|[A-E]|\\text\{\s*\(?[A-E]\)?\s*\}", answer.strip()) is not None
