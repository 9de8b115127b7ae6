"""Prompts as the model reads them: plain text, or a conversation through the tokenizer's chat template.

A prompt is either text (``data.prompt_template`` filled in) or a conversation: a list of
``{"role", "content"}`` messages, as TRL's conversational datasets hold them. Conversations are
rendered with the tokenizer's own chat template (``apply_chat_template(...,
add_generation_prompt=True)``, with ``data.chat_template_kwargs`` such as Qwen3's
``enable_thinking``), so a chat model sees its roles, special tokens and end-of-turn markers.

Completions of a conversation reach reward functions as TRL gives them,
``[{"role": "assistant", "content": text}]``; the template's end-of-turn token ends a completion
(``stop_token_ids``); SFT on a conversation learns its assistant turns only (``assistant_tokens``).
"""

from __future__ import annotations

import logging

from rlreason.recipe import DataConfig, RecipeError

log = logging.getLogger(__name__)

Conversation = list[dict]
PROBE = "rlreason end-of-turn probe"


def is_conversation(value) -> bool:
    """A non-empty list of messages, each a mapping with a ``role`` and a ``content``."""
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def prompt_of(row: dict, cfg: DataConfig, index: int) -> str | Conversation:
    """Row ``index``'s prompt as ``cfg`` says: text, or the conversation to template (a system
    turn first when ``data.system_prompt`` is set and the conversation has none)."""
    value = row[cfg.prompt_column]
    if is_conversation(value):
        if cfg.chat_template is False:
            raise RecipeError(f"data.chat_template: false, but row {index}'s {cfg.prompt_column!r} is a "
                              "conversation (a list of messages); set it to auto to render it with the "
                              "tokenizer's chat template")
        if cfg.prompt_template != "{prompt}":
            raise RecipeError(f"data.prompt_template: fills plain-text prompts, but row {index}'s "
                              f"{cfg.prompt_column!r} is a conversation; put the instruction in its messages "
                              "or in data.system_prompt")
        conversation = [{"role": m["role"], "content": m["content"]} for m in value]
    elif isinstance(value, list):
        raise RecipeError(f"data.prompt_column: row {index}'s {cfg.prompt_column!r} is a list but not a "
                          "conversation (messages with a role and a content each)")
    else:
        text = filled_template(row, cfg, index)
        if cfg.chat_template is not True:
            if cfg.system_prompt is not None:
                raise RecipeError(f"data.system_prompt: row {index}'s prompt is plain text, which "
                                  f"data.chat_template: {cfg.chat_template} leaves untemplated; set "
                                  "data.chat_template: true to make it a user turn")
            return text
        conversation = [{"role": "user", "content": text}]
    if cfg.system_prompt is not None and conversation[0]["role"] != "system":
        conversation.insert(0, {"role": "system", "content": cfg.system_prompt})
    return conversation


def filled_template(row: dict, cfg: DataConfig, index: int) -> str:
    try:
        return cfg.prompt_template.format(**{**row, "prompt": row[cfg.prompt_column]})  # a 'prompt' column too
    except (KeyError, IndexError) as err:
        raise RecipeError(f"data.prompt_template: unknown field {err} (row {index} has "
                          f"prompt, {', '.join(row)})") from None


def reward_completions(prompts: list, texts: list[str]) -> list:
    """What reward functions are given for each completion: its text, or for a conversation's
    completion TRL's form ``[{"role": "assistant", "content": text}]``."""
    return [[{"role": "assistant", "content": text}] if is_conversation(prompt) else text
            for prompt, text in zip(prompts, texts)]


class PromptRenderer:
    """Prompts -> the token ids the rollout engine gets (and the text they spell)."""

    def __init__(self, tokenizer, cfg: DataConfig):
        self.tokenizer, self.template_kwargs = tokenizer, dict(cfg.chat_template_kwargs)

    def ids(self, prompts: list[str | Conversation]) -> list[list[int]]:
        """Token ids of each prompt: plain text tokenized as it is (the tokenizer's own special
        tokens added), a conversation rendered for the assistant's next turn."""
        plain = [i for i, p in enumerate(prompts) if not is_conversation(p)]
        out: list[list[int]] = [[] for _ in prompts]
        if plain:
            for i, ids in zip(plain, self.tokenizer([prompts[i] for i in plain]).input_ids):
                out[i] = ids
        for i, prompt in enumerate(prompts):
            if is_conversation(prompt):
                out[i] = self.rendered(generation_turns(prompt), add_generation_prompt=True)
        return out

    def text(self, prompt: str | Conversation) -> str:
        """The prompt as the model reads it (the chat template's markup included)."""
        if not is_conversation(prompt):
            return prompt
        return self.template(generation_turns(prompt), tokenize=False, add_generation_prompt=True)

    def rendered(self, conversation: Conversation, add_generation_prompt: bool = False) -> list[int]:
        return list(self.template(conversation, add_generation_prompt=add_generation_prompt)["input_ids"])

    def template(self, conversation: Conversation, **options):
        if self.tokenizer.chat_template is None:
            raise RecipeError("data.chat_template: the prompts are conversations, but the model's tokenizer "
                              "has no chat template (a base model?); use a chat model's tokenizer, or plain-text "
                              "prompts with data.chat_template: auto")
        return self.tokenizer.apply_chat_template(conversation, **options, **self.template_kwargs)

    def assistant_tokens(self, conversation: Conversation, stop_ids: list[int]) -> tuple[list[int], list[int]]:
        """The conversation's token ids (as ``apply_chat_template`` gives them), and 1 on each
        token the model writes in an assistant turn, 0 elsewhere: what SFT learns.

        An assistant turn's tokens are those a model would generate after the generation prompt:
        from where the rendering of the conversation before the turn (with the generation
        prompt) departs from the whole, through the end-of-turn token (one of ``stop_ids``). So
        the role header is never learned, and what the template writes into the turn (Qwen3's
        reasoning block, rebuilt from the content) is learned as the model would write it.
        """
        text = self.template(conversation, tokenize=False)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        mask = [0] * len(ids)
        for turn, message in enumerate(conversation):
            if message["role"] != "assistant":
                continue
            before = self.template(conversation[:turn], tokenize=False, add_generation_prompt=True) if turn else ""
            start = common_prefix_length(text, before)
            first = next((k for k, (_, hi) in enumerate(offsets) if hi > start), len(ids))
            ends = (k for k in range(first, len(ids)) if ids[k] in stop_ids)
            last = next(ends, None)
            if last is None:  # a template without an end-of-turn token: up to where the next turn starts
                through = self.template(conversation[:turn + 1], tokenize=False)
                stop = common_prefix_length(text, through)
                last = max((k for k, (lo, _) in enumerate(offsets) if lo < stop), default=first - 1)
            mask[first:last + 1] = [1] * (last + 1 - first)
        return ids, mask


def common_prefix_length(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def generation_turns(conversation: Conversation) -> Conversation:
    """The conversation a completion continues: without its closing assistant turns (a
    conversation written for SFT ends with the answer)."""
    end = len(conversation)
    while end and conversation[end - 1]["role"] == "assistant":
        end -= 1
    if not end:
        raise RecipeError("data.prompt_column: a conversation holds only assistant turns; a prompt needs "
                          "a user turn to answer")
    return conversation[:end]


def stop_token_ids(tokenizer, generation_eos=None, template_kwargs: dict | None = None) -> list[int]:
    """The tokens that end a completion: the tokenizer's EOS, the model's own (its generation
    config's ``eos_token_id``, an id or a list), and the token the chat template closes an
    assistant turn with (e.g. ``<|im_end|>``, found by rendering one)."""
    found = [tokenizer.eos_token_id]
    found += generation_eos if isinstance(generation_eos, list) else [generation_eos]
    if tokenizer.chat_template is not None:
        found.append(end_of_turn_id(tokenizer, template_kwargs or {}))
    return sorted({token for token in found if token is not None})


def end_of_turn_id(tokenizer, template_kwargs: dict) -> int | None:
    """The first special token the chat template writes after an assistant turn's content."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": PROBE}],
                                             tokenize=False, **template_kwargs)
    except Exception as err:  # a template that refuses this conversation: stop on EOS alone
        log.warning("chat template: cannot render a probe turn (%s); completions end at EOS only", err)
        return None
    after = text[text.rindex(PROBE) + len(PROBE):] if PROBE in text else ""
    special = set(tokenizer.all_special_ids)
    return next((token for token in tokenizer(after, add_special_tokens=False).input_ids if token in special), None)
