r"""Reading the answer where the gold is a letter or a word.

- ``extract_choice``: a multiple-choice letter (``(B)``, ``A. Because...``, the last standalone
  A-E, a letter in ``\\text{}`` after a number being a unit, not an option);
- ``extract_words``: words (``Tuesday``, ``No``, ``even``): after ``Answer:``, the final
  statement's bold words, the gold word where the statement asserts it, an opening yes or no,
  what follows the last verb.
"""

from __future__ import annotations

import re

from rewards.commitment import QUALIFIED, final_statement, reasoning_unfinished
from rewards.latex_spans import mask_math
from rewards.math_extract import (ANSWER_PHRASE, COPULA, DEFAULT_ORDER, FINAL_MARKER, TAIL, clause, extract_answer,
                                  is_choice)

_CHOICE_ANYWHERE = re.compile(r"(?<![\w\\$])\(?([A-E])\)?(?![\w'])")
_CHOICE_AT_START = re.compile(r"\s*\**\(?([A-E])(?:\)|\.|:|\*\*)")
_LETTER_CHOICE = re.compile(r"\(?\s*([A-E])\s*\)?")
_ASIDE = re.compile(r"(?<!\s)\s*+\([^()]*+\)(?=[\s.!]*+$)")
# where a word answer's phrase ends: a clause break, a preposition, an adverb of extent
_WORDS_END = re.compile(r"[;,(.!]|\s(?:on|in|for|over|at|when|since|because|as|so|and|which|with|from|to|throughout|"
                        r"everywhere|always|globally|here)\b", re.I)
_BOLD = re.compile(r"\*\*([^*\n]{1,80})\*\*")
_YES_NO = re.compile(r"[\s*]*(yes|no)\b", re.I)
_WORDS = re.compile(r"[A-Za-z][A-Za-z ,-]{0,60}")


def extract_words(text: str, order: tuple[str, ...] | list[str] = DEFAULT_ORDER, gold: str | None = None) -> str | None:
    r"""The final answer where the gold is a word (``Tuesday``, ``No``, ``even``): the extracted
    answer when it has words, else the words after ``Answer:``/``the answer is``, else the final
    statement's bold words, the one-word ``gold`` where the statement asserts it (``The series
    diverges.``: not negated, no alternative offered), its opening yes or no, or what follows its verb.

    >>> extract_words("Counting on, day 100 is a Tuesday.\n\nSo the day is **Tuesday**.")
    'Tuesday'
    >>> extract_words("The digit sum is 6.\n\n**Answer: No**"), extract_words("Therefore f is an even function.")
    ('No', 'an even function')
    """
    answer = extract_answer(text, order)
    if answer and re.search(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", answer)):  # words, not command names
        return answer
    if reasoning_unfinished(text):
        return None
    reply = text[text.rfind("</think>") + len("</think>"):] if "</think>" in text else text
    for pattern in (FINAL_MARKER, ANSWER_PHRASE):
        marker = None
        for marker in pattern.finditer(reply):
            pass
        stated = clause(reply[marker.end():]) if marker else ""
        if stated and not QUALIFIED.match(stated.strip(" *_:$")):
            return words_in(stated, gold) or answer
    final = final_statement(reply)
    return (words_in(final[1], gold) if final else None) or answer


def words_in(sentence: str, gold: str | None) -> str | None:
    """The words a sentence gives as its answer: its bold words, the ``gold`` word where it asserts
    it, an opening yes or no, what follows its last verb up to a preposition (an aside in
    parentheses left out), or the words it opens with."""
    bold = _BOLD.findall(sentence)
    if bold:
        return bold[-1].strip()
    if gold and asserts_word(sentence, gold):
        return gold
    opening = _YES_NO.match(sentence)
    if opening:
        return opening.group(1)
    sentence = _ASIDE.sub("", sentence.rstrip())  # 'Hence f is odd (it is not even).'
    verbs = list(COPULA.finditer(mask_math(sentence)))
    if verbs:
        return _WORDS_END.split(sentence[verbs[-1].end():], maxsplit=1)[0].strip(" .!*$") or None
    words = _WORDS.match(sentence.strip(" *_:$"))
    return words.group().strip(" ,-") if words else None


_HEDGES = re.compile(r"\b(?:either|or|whether|if|maybe|perhaps|possibly|probably|unless|unsure|not sure)\b")
_NEGATION = re.compile(r"\b(?:not|never|neither|nor|no)\b|n't")


def asserts_word(sentence: str, word: str) -> bool:
    """Does ``sentence`` assert the single ``word``, with no negation in the three words before it
    and no alternative anywhere? ('The series diverges; it does not converge.' asserts 'diverges')"""
    masked = mask_math(sentence).lower()
    if " " in word.strip() or _HEDGES.search(masked):
        return False
    for found in re.finditer(rf"\b{re.escape(word.strip().lower())}\b", masked):
        if not _NEGATION.search(" ".join(masked[:found.start()].split()[-3:])):
            return True
    return False


def extract_choice(text: str, order: tuple[str, ...] | list[str] = DEFAULT_ORDER) -> str | None:
    """A multiple-choice letter: the extracted answer if it is one, else a letter the text opens
    with (``A. Because...``), else the last standalone capital A-E.

    >>> extract_choice("A. Because B is not valid"), extract_choice("Because B is valid")
    ('A', 'B')
    """
    answer = extract_answer(text, order)
    if answer and (is_choice(answer) or _LETTER_CHOICE.fullmatch(answer.strip())):
        return answer
    if answer and len(set(_CHOICE_ANYWHERE.findall(answer))) > 1:
        return answer  # '\boxed{\text{A or C}}' hedges between options
    start = _CHOICE_AT_START.match(text)
    if start:
        return start.group(1)
    found = None
    for found in _CHOICE_ANYWHERE.finditer(_UNIT_TEXT.sub(lambda m: " " * len(m.group()), text[-TAIL:])):
        pass
    return found.group(1) if found else answer


_UNIT_TEXT = re.compile(r"(?<=[\d}])\s*\\(?:text|mathrm)\s*\{[^{}]*\}")  # 5\text{ A}: a unit, not option A
