"""Penalties on how a completion is written, not on what it answers: n-gram repetition (Yeo et al.,
2025) and language mixing (DeepSeek-R1)."""

from __future__ import annotations

import re
import unicodedata

from rewards.conversation import text_completions
from rewards.r1_format import think_span
from rewards.registry import RewardError, reward

WORD = re.compile(r"\w+")


@reward("repetition_penalty")
@text_completions
def repetition_penalty(completions: list[str], ngram_size: int = 3, max_penalty: float = -1.0,
                       **columns) -> list[float]:
    """N-gram repetition penalty (Yeo et al., 2025, "Demystifying Long Chain-of-Thought Reasoning in
    LLMs", sec. 4.2): ``max_penalty * (1 - distinct n-grams / n-grams)`` over the lowercased words
    of the completion; 0 for text without repeats or shorter than ``ngram_size`` words.

    >>> repetition_penalty(["the cat sat on the mat", "so so so so so", "hi"], ngram_size=2)
    [0.0, -0.75, 0.0]
    """
    if ngram_size < 1 or max_penalty > 0:
        raise RewardError(f"repetition_penalty: ngram_size must be >= 1 and max_penalty <= 0, got "
                          f"{ngram_size} and {max_penalty}")
    scores = []
    for completion in completions:
        words = WORD.findall(completion.lower())
        ngrams = [tuple(words[i:i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
        scores.append(max_penalty * (1 - len(set(ngrams)) / len(ngrams)) + 0.0 if ngrams else 0.0)
    return scores


def script_of(character: str) -> str:
    """The Unicode script a letter belongs to, from its name: 'LATIN', 'CJK', 'CYRILLIC', ...
    (Chinese and Japanese ideographs are 'CJK'; kana 'HIRAGANA'/'KATAKANA'; Hangul 'HANGUL')."""
    name = unicodedata.name(character, "")
    return name.split(" ", 1)[0] if name else ""


@reward("language_consistency")
@text_completions
def language_consistency(completions: list[str], script: str = "latin", think_opened: bool = False,
                         **columns) -> list[float | None]:
    """DeepSeek-R1's language consistency reward (DeepSeek-AI, 2025, sec. 2.3.2): the share of the
    reasoning's words written in the target language, so chains of thought stop mixing languages.

    The reasoning is the text in ``<think>...</think>`` (else the completion before ``<answer>``).
    Languages are told apart by script: ``script`` names the target's Unicode script (``latin``
    for English and most European languages, ``cjk`` for Chinese, ``cyrillic``, ``arabic``,
    ``hangul``, ...). A word counts once; each CJK ideograph counts as a word, since Chinese has
    no spaces. Numbers and symbols are ignored; ``None`` where the reasoning has no letters.

    >>> language_consistency(["<think>add the ones 所以</think><answer>5</answer>", "<think>12+3</think>"])
    [0.6, None]
    >>> language_consistency(["首先计算 then 5"], script="cjk")
    [0.8]
    """
    target = script.upper()
    scores: list[float | None] = []
    for completion in completions:
        words = []
        for word in WORD.findall(think_span(completion, think_opened)):
            letters = [ch for ch in word if ch.isalpha()]
            if letters and script_of(letters[0]) == "CJK":
                words += [script_of(ch) for ch in letters]  # each ideograph is a word
            elif letters:
                words.append(script_of(letters[0]))
        scores.append(sum(w == target for w in words) / len(words) if words else None)
    return scores
