"""Completions of conversational data, as TRL hands them to reward functions.

For a dataset of conversations TRL (and rlreason) give each completion as a list of messages,
``[{"role": "assistant", "content": text}]``; for plain text, the text. The built-in rewards take
either (``text_completions``); a plugin written for one form gets that form.
"""

from __future__ import annotations

import functools


def completion_text(completion) -> str:
    """The text of a completion: itself, or its assistant messages' content joined (a content
    given as parts, ``[{"type": "text", "text": ...}]``, contributes its text parts).

    >>> completion_text("so 12")
    'so 12'
    >>> completion_text([{"role": "assistant", "content": "so 12"}])
    'so 12'
    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "so 12"}]}])
    'so 12'
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list) or not all(isinstance(m, dict) and "content" in m for m in completion):
        raise TypeError(f"a completion is a string or a list of messages with a 'content', got {type(completion).__name__}")
    return "".join(content_text(m["content"]) for m in completion if m.get("role", "assistant") == "assistant")


def content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise TypeError(f"a message's content is a string or a list of parts, got {type(content).__name__}")


def text_completions(fn):
    """Let reward ``fn``, written for text, take conversational completions too (scoring their text).

    >>> @text_completions
    ... def shout(completions, **columns):
    ...     return [float(c.isupper()) for c in completions]
    >>> shout(["YES", [{"role": "assistant", "content": "no"}]])
    [1.0, 0.0]
    """
    @functools.wraps(fn)
    def scored_as_text(completions: list, *args, **kwargs):
        return fn([completion_text(c) for c in completions], *args, **kwargs)

    return scored_as_text
