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

import dataclasses
import logging

from rlreason.recipe import DataConfig, Recipe, RecipeError

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
    value, column = row[cfg.prompt_column], cfg.prompt_column
    if isinstance(value, list):
        if cfg.chat_template is False:
            raise RecipeError(f"data.chat_template: false, but row {index}'s {column!r} is a conversation (a "
                              "list of messages); set it to auto to render it with the tokenizer's chat template")
        if cfg.prompt_template != "{prompt}":
            raise RecipeError(f"data.prompt_template: fills plain-text prompts, but row {index}'s {column!r} is a "
                              "conversation; put the instruction in its messages or in data.system_prompt")
        conversation = [checked_message(m, index, column, turn) for turn, m in enumerate(value)]
        if all(m["role"] == "assistant" for m in conversation):
            raise RecipeError(f"data.prompt_column: row {index}'s {column!r} has no turn but the assistant's "
                              "to answer")
    elif isinstance(value, str):
        text = filled_template(row, cfg, index)
        if cfg.chat_template is not True:
            for key in ("system_prompt", "chat_template_kwargs"):
                if getattr(cfg, key):
                    raise RecipeError(f"data.{key}: set, but row {index}'s prompt is plain text, which "
                                      f"data.chat_template: {cfg.chat_template} leaves untemplated; set "
                                      "data.chat_template: true to make it a user turn")
            return text
        conversation = [{"role": "user", "content": text}]
    else:
        raise RecipeError(f"data.prompt_column: row {index}'s {column!r} is {type(value).__name__}; a prompt is "
                          "a string or a conversation (a list of {role, content} messages)")
    if cfg.system_prompt is not None and not any(m["role"] == "system" for m in conversation):
        conversation.insert(0, {"role": "system", "content": cfg.system_prompt})
    return conversation


def checked_message(message, index: int, column: str, turn: int) -> dict:
    """A copy of one message (every key kept: templates read e.g. ``reasoning_content``)."""
    if not (isinstance(message, dict) and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), (str, list))):
        raise RecipeError(f"data.prompt_column: row {index}'s {column!r}, message {turn}, is not a message "
                          f"with a string role and a string (or parts) content: {str(message)[:80]}")
    return dict(message)


def resolved_chat_template(recipe: Recipe, examples: list) -> Recipe:
    """``data.chat_template: auto`` resolved to true when the training prompts are conversations:
    what the run's config.yaml records, so that evaluating the run on a standard set (plain-text
    problems) renders them with the chat template too."""
    if recipe.data.chat_template != "auto" or not any(e.conversational for e in examples):
        return recipe
    return dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, chat_template=True))


def filled_template(row: dict, cfg: DataConfig, index: int) -> str:
    try:
        return cfg.prompt_template.format(**{**row, "prompt": row[cfg.prompt_column]})  # a 'prompt' column too
    except (KeyError, IndexError) as err:
        raise RecipeError(f"data.prompt_template: unknown field {err} (row {index} has "
                          f"prompt, {', '.join(row)})") from None


def reward_prompt(prompt: str | Conversation, conversational: bool) -> str | Conversation:
    """The prompt reward functions see (TRL's ``prompts``): for a row that held a conversation,
    its messages up to the turn to answer; for a row of text, the text (also when
    ``data.chat_template: true`` made it a user turn)."""
    if conversational:
        return generation_turns(prompt)
    return prompt[-1]["content"] if isinstance(prompt, list) else prompt


def reward_completions(prompts: list, texts: list[str]) -> list:
    """What reward functions are given for each completion (``prompts``: as ``reward_prompt``
    gives them): its text, or for a conversation's completion TRL's form
    ``[{"role": "assistant", "content": text}]``."""
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
        try:
            return self.tokenizer.apply_chat_template(conversation, **options, **self.template_kwargs)
        except Exception as err:  # a Jinja error (or the template's own raise_exception) on this conversation
            raise RecipeError(f"data.chat_template: the tokenizer's chat template fails on the conversation "
                              f"{str(conversation)[:120]}: {type(err).__name__}: {err}") from None

    def assistant_tokens(self, conversation: Conversation, stop_ids: list[int]) -> tuple[list[int], list[int]]:
        """The conversation's token ids (as ``apply_chat_template`` gives them), and 1 on each
        token the model writes in an assistant turn, 0 elsewhere: what SFT learns.

        An assistant turn's tokens are those a model would generate after the generation prompt:
        from where the rendering of the conversation before the turn (with the generation
        prompt) departs from the whole, through the end-of-turn token (one of ``stop_ids``). So
        the role header is never learned, and what the template writes into the turn (Qwen3's
        reasoning block, rebuilt from the content) is learned as the model would write it. A
        turn whose tokens cannot be told apart this way is refused, not guessed at.
        """
        text = self.template(conversation, tokenize=False)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        mask, learned_to = [0] * len(ids), 0
        for turn, message in enumerate(conversation):
            if message["role"] != "assistant":
                continue
            start = common_prefix_length(text, self.generation_prefix(conversation[:turn]))
            first = max(next((k for k, (_, hi) in enumerate(offsets) if hi > start), len(ids)), learned_to)
            # where the turn ends when it is the last: the bound of its end-of-turn token, unless the
            # template writes a last turn differently (Qwen3's reasoning block), then no bound
            bound = common_prefix_length(text, self.template(conversation[:turn + 1], tokenize=False))
            limit = len(ids)
            if bound > start:
                limit = next((k for k, (lo, _) in enumerate(offsets) if lo >= bound), len(ids))
            last = next((k for k in range(first, limit) if ids[k] in stop_ids), None)
            if last is None and bound > start:
                last = limit - 1  # a template without an end-of-turn token: the turn as written
            if last is None or last < first:
                raise RecipeError(f"data.chat_template: the tokenizer's template gives turn {turn} of the "
                                  f"conversation {str(conversation)[:80]} no tokens of its own that SFT could learn")
            mask[first:last + 1] = [1] * (last + 1 - first)
            learned_to = last + 1
        return ids, mask

    def generation_prefix(self, turns: Conversation) -> str:
        """The rendering of ``turns`` with the generation prompt (of no turns, where the template
        allows it: a conversation the assistant opens)."""
        if turns:
            return self.template(turns, tokenize=False, add_generation_prompt=True)
        try:  # as a batch of one: apply_chat_template refuses a lone empty conversation
            return self.template([[]], tokenize=False, add_generation_prompt=True)[0]
        except RecipeError:
            return ""


def common_prefix_length(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def generation_turns(conversation: Conversation) -> Conversation:
    """The conversation a completion continues: without its closing assistant turns (a
    conversation written for SFT ends with the answer)."""
    end = len(conversation)
    while end > 1 and conversation[end - 1]["role"] == "assistant":  # prompt_of keeps a turn that is not
        end -= 1
    return conversation[:end]


def stop_token_ids(tokenizer, generation_eos=None, template_kwargs: dict | None = None) -> list[int]:
    """The tokens that end a completion: the tokenizer's EOS, the model's own (its generation
    config's ``eos_token_id``, an id or a list), and the token the chat template closes an
    assistant turn with (e.g. ``<|im_end|>``, found by rendering one)."""
    found = [tokenizer.eos_token_id]
    found += list(generation_eos) if isinstance(generation_eos, (list, tuple)) else [generation_eos]
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
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return next((token for token in tokenizer(after, add_special_tokens=False).input_ids if token in special), None)
