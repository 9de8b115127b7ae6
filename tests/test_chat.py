"""Chat models as users run them: conversational prompts through the tokenizer's chat template,
the end-of-turn token ending completions, rewards in TRL's message form, SFT on assistant turns."""

import json

import pytest
import yaml
from tokenizers import AddedToken

from rewards import resolve
from rlreason.chat import PromptRenderer, reward_completions, stop_token_ids
from rlreason.data import columns_of, load_splits, to_example
from rlreason.preflight import check_recipe
from rlreason.recipe import DataConfig, RecipeError, RolloutConfig, TinyModelConfig
from rlreason.rollout.hf import HFRollout
from rlreason.session import open_session
from rlreason.sft import sft_step, training_tokens
from rlreason.tiny import build_char_tokenizer, build_tiny_moe, build_tokenizer
from rlreason.trainer import grpo_step, run_steps
from tests.conftest import TINY
from tests.helpers import eager_to_end, rlreason

SYSTEM = "Answer with a number."
BACKENDS = ["hf", pytest.param("vllm", marks=pytest.mark.slow)]  # each vLLM test starts an engine
CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"},
                {"role": "assistant", "content": "5"}, {"role": "user", "content": "and 4+4?"},
                {"role": "assistant", "content": "it is 8"}]


def conversational_rows(count: int) -> list[dict]:
    """Rows as TRL's conversational datasets hold them: a prompt of messages, and the answer."""
    return [{"prompt": [{"role": "user", "content": f"What is {a} + {a % 7}?"}], "answer": str(a + a % 7)}
            for a in range(count)]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def conversational_data(tmp_path, **settings) -> DataConfig:
    source = write_rows(tmp_path / "conversations.jsonl", conversational_rows(24))
    return DataConfig(source=source, prompt_column="prompt", num_eval=4, **settings)


@pytest.mark.parametrize("family", ["chatml", "deepseek"])
def test_conversations_get_the_ids_of_apply_chat_template_and_a_system_turn(tmp_path, family):
    tokenizer = build_tokenizer(family)
    data = conversational_data(tmp_path, system_prompt=SYSTEM)
    splits = load_splits(data)
    ids = PromptRenderer(tokenizer, data).ids([e.prompt for e in splits.train])
    for example, prompt_ids in zip(splits.train, ids):
        assert example.prompt[0] == {"role": "system", "content": SYSTEM}
        assert prompt_ids == tokenizer.apply_chat_template(example.prompt, add_generation_prompt=True)["input_ids"]
    rendered = tokenizer.decode(ids[0])
    assert SYSTEM in rendered and rendered.endswith("<|im_start|>assistant\n" if family == "chatml" else "<｜Assistant｜>")


def test_chat_template_true_makes_a_plain_prompt_a_user_turn_and_auto_leaves_it_raw():
    tokenizer = build_tokenizer("chatml")
    row = {"question": "1+2=", "answer": "3"}
    templated = to_example(row, DataConfig(chat_template=True, prompt_template="Q: {prompt}"), 0)
    assert templated.prompt == [{"role": "user", "content": "Q: 1+2="}]
    raw = DataConfig()
    assert to_example(row, raw, 0).prompt == "1+2="
    assert PromptRenderer(tokenizer, raw).ids(["1+2="]) == [tokenizer("1+2=").input_ids]


def test_rewards_get_the_forms_of_the_rows_own_prompt():
    """TRL's rule: message forms for rows that hold conversations (the prompt up to the turn to
    answer, never the answer itself); a text row stays text, also when templated as a user turn."""
    answered = {"question": [{"role": "user", "content": "1+2?"}, {"role": "assistant", "content": "3"}], "answer": "3"}
    plain = {"question": "1+2=", "answer": "3"}
    examples = [to_example(answered, DataConfig(), 0), to_example(plain, DataConfig(chat_template=True), 1)]
    columns = columns_of(examples, 2, [[1]] * 4)
    assert columns["prompts"] == [[{"role": "user", "content": "1+2?"}]] * 2 + ["1+2="] * 2
    assert reward_completions(columns["prompts"], ["a", "b", "c", "d"]) == [
        [{"role": "assistant", "content": "a"}], [{"role": "assistant", "content": "b"}], "c", "d"]


def test_a_text_reward_still_gets_text_when_plain_prompts_become_user_turns(make_recipe):
    recipe = make_recipe(model={"tiny": {**TINY, "tokenizer": "chatml"}}, data={"chat_template": True},
                         rewards=[{"name": "tests.plugin_rewards:digits_fraction"}], trainer={"max_steps": 1})
    session = open_session(recipe, "grpo")
    metrics = grpo_step(session, 1)  # digits_fraction iterates characters: a message list fails every row
    assert "reward/tests.plugin_rewards:digits_fraction/errors" not in metrics
    assert session.prompt_ids(session.splits.train[:1])[0][:1] == [session.tokenizer.convert_tokens_to_ids("<|im_start|>")]


def test_chat_template_kwargs_reach_the_template(tmp_path):
    tokenizer = build_tokenizer("chatml")
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    thinking = PromptRenderer(tokenizer, DataConfig())
    direct = PromptRenderer(tokenizer, DataConfig(chat_template_kwargs={"enable_thinking": False}))
    assert direct.text(messages) == thinking.text(messages) + "<think>\n\n</think>\n\n"
    assert direct.ids([messages])[0] == tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, enable_thinking=False)["input_ids"]
    assert direct.ids([messages]) != thinking.ids([messages])


@pytest.mark.parametrize("settings, row, message", [
    # a conversation with templating switched off
    ({"chat_template": False}, {"question": [{"role": "user", "content": "hi"}], "answer": "1"},
     "data.chat_template: false, but row 0"),
    # a format string cannot fill a conversation
    ({"prompt_template": "Q: {prompt}"}, {"question": [{"role": "user", "content": "hi"}], "answer": "1"},
     "data.prompt_template: fills plain-text prompts"),
    # auto leaves plain text raw: a system prompt would be lost
    ({"system_prompt": "Be brief."}, {"question": "1+2=", "answer": "3"}, "data.system_prompt: set, but row 0's"),
    # a list of something else than messages, a message without a string content, one message alone
    ({}, {"question": ["1+2="], "answer": "3"}, "data.prompt_column: row 0's 'question', message 0, is not"),
    ({}, {"question": [{"role": "user", "content": None}], "answer": "3"}, "message 0, is not a message"),
    ({}, {"question": {"role": "user", "content": "hi"}, "answer": "3"}, "row 0's 'question' is dict"),
    # nothing for the assistant to answer
    ({}, {"question": [{"role": "assistant", "content": "hi"}], "answer": "3"}, "has no turn but the assistant's"),
    # template switches on a prompt auto leaves untemplated
    ({"chat_template_kwargs": {"enable_thinking": False}}, {"question": "1+2=", "answer": "3"},
     "data.chat_template_kwargs: set, but row 0's prompt is plain text"),
])
def test_prompt_settings_that_cannot_apply_name_their_key(settings, row, message):
    with pytest.raises(RecipeError, match=message):
        to_example(row, DataConfig(**settings), 0)


def test_conversations_need_a_tokenizer_with_a_chat_template():
    with pytest.raises(RecipeError, match="data.chat_template: .* has no chat template"):
        PromptRenderer(build_char_tokenizer(), DataConfig()).ids([[{"role": "user", "content": "hi"}]])


def test_template_settings_without_a_template_fail_before_loading(make_recipe):
    with pytest.raises(RecipeError, match="data.system_prompt: set, but data.chat_template: false"):
        check_recipe(make_recipe(data={"chat_template": False, "system_prompt": "Be brief."}))


@pytest.mark.parametrize("family, end_of_turn", [("chatml", "<|im_end|>"), ("deepseek", "<｜end▁of▁sentence｜>")])
def test_the_template_end_of_turn_token_stops_completions(family, end_of_turn):
    tokenizer = build_tokenizer(family)
    assert tokenizer.convert_tokens_to_ids(end_of_turn) in stop_token_ids(tokenizer)
    assert stop_token_ids(build_char_tokenizer()) == [build_char_tokenizer().eos_token_id]
    assert set(stop_token_ids(tokenizer, (3, 4))) == {*stop_token_ids(tokenizer), 3, 4}  # the model's own EOS too


def test_an_end_of_turn_token_added_as_special_is_found():
    """Llama-3's way: <|eot_id|> is a special added token, not one of the named special tokens."""
    tokenizer = build_tokenizer("chatml")
    tokenizer.add_tokens([AddedToken("<|eot_id|>", special=True, normalized=False)])
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|eot_id|>"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    assert tokenizer.convert_tokens_to_ids("<|eot_id|>") in stop_token_ids(tokenizer)


def chat_engine(backend: str):
    """A tiny MoE on the ChatML tokenizer that ends turns early, and a rollout engine on it."""
    tokenizer = build_tokenizer("chatml")
    model = build_tiny_moe(TinyModelConfig(**TINY), tokenizer)
    prompts = PromptRenderer(tokenizer, DataConfig()).ids(
        [[{"role": "user", "content": f"what is {a}+{b}?"}] for a, b in [(1, 2), (30, 4), (5, 77), (12, 9)]])
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eager_to_end(model, prompts, end_of_turn)
    cfg = RolloutConfig(max_new_tokens=24, num_generations=4)
    if backend == "hf":
        return HFRollout(model, tokenizer, cfg, stop_token_ids(tokenizer)), prompts, end_of_turn
    from rlreason.rollout.vllm import VLLMRollout

    engine = VLLMRollout(model, tokenizer, cfg, stop_token_ids(tokenizer), source=None, dtype="float32", seed=0,
                         max_model_len=max(map(len, prompts)) + 24)
    return engine, prompts, end_of_turn


@pytest.mark.parametrize("backend", BACKENDS)
def test_end_of_turn_ends_completions_and_counts_in_lengths_and_logprobs(backend, request):
    if backend == "vllm":
        request.getfixturevalue("vllm_installed")
    engine, prompts, end_of_turn = chat_engine(backend)
    try:
        rollouts = engine.generate(prompts, n=4, seeds=[1, 2, 3, 4])
    finally:
        if backend == "vllm":
            engine.close()
    ended = 0
    for ids, reason, logprobs in zip(rollouts.completion_ids, rollouts.finish_reason, rollouts.rollout_logprobs):
        assert len(logprobs) == len(ids) and end_of_turn not in ids[:-1]
        if reason == "stop":
            assert ids[-1] in engine.stop_ids
            ended += ids[-1] == end_of_turn
        else:
            assert len(ids) == 24 and ids[-1] != end_of_turn
    assert ended >= 2 and any(len(ids) > 1 and ids[-1] == end_of_turn for ids in rollouts.completion_ids)


def test_without_the_end_of_turn_token_a_completion_runs_past_it():
    engine, prompts, end_of_turn = chat_engine("hf")
    engine.stop_ids = [engine.tokenizer.eos_token_id]
    rollouts = engine.generate(prompts, n=4, seeds=[1, 2, 3, 4])
    assert any(end_of_turn in ids[:-1] for ids in rollouts.completion_ids)


def hand_built_chatml(tokenizer, conversation, thinking: bool = True) -> tuple[list[int], list[int]]:
    """Qwen3's ChatML written piece by piece: each turn's header, content, <|im_end|> and newline,
    the last turn's empty reasoning block; 1 on what the assistant writes after its generation
    prompt (content and <|im_end|>, and the reasoning block unless the prompt opened it already)."""
    ids, mask = [], []

    def add(text, learned):
        pieces = tokenizer(text, add_special_tokens=False).input_ids
        ids.extend(pieces)
        mask.extend([learned] * len(pieces))

    for turn, message in enumerate(conversation):
        assistant = int(message["role"] == "assistant")
        add(f"<|im_start|>{message['role']}\n", 0)
        if assistant and turn == len(conversation) - 1:
            add("<think>\n\n</think>\n\n", int(thinking))  # enable_thinking=false: in the prompt
        add(message["content"], assistant)
        add("<|im_end|>", assistant)
        add("\n", 0)
    return ids, mask


@pytest.mark.parametrize("thinking", [True, False])
def test_sft_learns_the_assistant_turns_only_as_a_hand_built_mask_says(thinking):
    tokenizer = build_tokenizer("chatml")
    renderer = PromptRenderer(tokenizer, DataConfig(chat_template_kwargs={} if thinking else {"enable_thinking": False}))
    assert renderer.assistant_tokens(CONVERSATION, stop_token_ids(tokenizer)) == hand_built_chatml(
        tokenizer, CONVERSATION, thinking)


def test_sft_mask_of_awkward_conversations():
    tokenizer = build_tokenizer("chatml")
    renderer, stops = PromptRenderer(tokenizer, DataConfig()), stop_token_ids(tokenizer)
    opened_by_assistant = [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Bye."}]
    ids, mask = renderer.assistant_tokens(opened_by_assistant, stops)
    assert learned_spans(tokenizer, ids, mask) == ["Hello.<|im_end|>", "<think>\n\n</think>\n\nBye.<|im_end|>"]
    # a template with no end-of-turn token, EOS closing the conversation: each turn as written
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% else %}{{ eos_token }}{% endif %}")
    two_turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "one"},
                 {"role": "user", "content": "q"}, {"role": "assistant", "content": "two"}]
    ids, mask = renderer.assistant_tokens(two_turns, stop_token_ids(tokenizer))
    assert learned_spans(tokenizer, ids, mask) == [" one\n", " two\n<|endoftext|>"]


def learned_spans(tokenizer, ids, mask) -> list[str]:
    spans, run = [], []
    for token, learned in [*zip(ids, mask), (None, 0)]:
        if learned:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    return spans


def test_sft_learns_a_reasoning_turn_as_the_template_rewrites_it():
    """Like Qwen3's template, the ChatML stand-in drops the reasoning of turns before the last
    question and rewrites the last turn's as a block of its own: SFT learns what it writes."""
    tokenizer = build_tokenizer("chatml")
    conversation = [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "<think>add</think>5"},
                    {"role": "user", "content": "and 4+4?"},
                    {"role": "assistant", "content": "<think>double 4</think>it is 8"}]
    ids, mask = PromptRenderer(tokenizer, DataConfig()).assistant_tokens(conversation, stop_token_ids(tokenizer))
    assert learned_spans(tokenizer, ids, mask) == ["5<|im_end|>", "<think>\ndouble 4\n</think>\n\nit is 8<|im_end|>"]


def test_sft_mask_in_deepseek_format_ends_each_turn_with_eos():
    tokenizer = build_tokenizer("deepseek")
    ids, mask = PromptRenderer(tokenizer, DataConfig()).assistant_tokens(CONVERSATION, stop_token_ids(tokenizer))
    assert tokenizer.decode([i for i, m in zip(ids, mask) if m]) == "5<｜end▁of▁sentence｜>it is 8<｜end▁of▁sentence｜>"
    assert ids == tokenizer.apply_chat_template(CONVERSATION)["input_ids"]


def test_sft_on_multi_turn_conversations_trains_on_their_assistant_turns(make_recipe, tmp_path):
    rows = [{"messages": [*CONVERSATION[:-1], {"role": "assistant", "content": f"it is {a}"}], "answer": str(a)}
            for a in range(12)]
    recipe = make_recipe(model={"tiny": {**TINY, "tokenizer": "chatml"}},
                         data={"source": write_rows(tmp_path / "chats.jsonl", rows), "prompt_column": "messages",
                               "num_eval": 4})
    session = open_session(recipe, "sft")
    example = session.splits.train[0]
    ids, learned = training_tokens(session, example)
    assert (ids, learned) == hand_built_chatml(session.tokenizer, example.prompt)
    assert session.prompt_ids([example])[0] == session.tokenizer.apply_chat_template(
        example.prompt[:-1], add_generation_prompt=True)["input_ids"]  # evaluation answers the last turn
    losses = [sft_step(session, step)["loss"] for step in (1, 2, 3)]
    assert all(loss > 0 for loss in losses) and losses[-1] < losses[0]


def test_sft_on_single_turn_conversations_learns_the_completion_template_as_the_answer(make_recipe, tmp_path):
    recipe = make_recipe(model={"tiny": {**TINY, "tokenizer": "deepseek"}},
                         data={"source": write_rows(tmp_path / "conversations.jsonl", conversational_rows(12)),
                               "prompt_column": "prompt", "num_eval": 4, "completion_template": "It is {answer}."})
    session = open_session(recipe, "sft")
    example = session.splits.train[0]
    ids, learned = training_tokens(session, example)
    answered = [*example.prompt, {"role": "assistant", "content": f"It is {example.columns['answer']}."}]
    assert ids == session.tokenizer.apply_chat_template(answered)["input_ids"]
    assert learned_spans(session.tokenizer, ids, learned) == [f"It is {example.columns['answer']}.<｜end▁of▁sentence｜>"]
    assert sft_step(session, 1)["loss"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_conversational_recipe_trains_with_the_engine_given_templated_prompts(make_recipe, tmp_path, backend, request):
    if backend == "vllm":
        request.getfixturevalue("vllm_installed")
    rows = conversational_rows(24)
    recipe = make_recipe(
        model={"tiny": {**TINY, "tokenizer": "chatml"}},
        data={"source": write_rows(tmp_path / "conversations.jsonl", rows), "prompt_column": "prompt",
              "num_eval": 4, "system_prompt": SYSTEM, "chat_template_kwargs": {"enable_thinking": False}},
        rewards=[{"name": "tests.plugin_rewards:conversational_brevity"}, {"name": "math_accuracy"}],
        rollout={"backend": backend, "max_new_tokens": 8}, trainer={"max_steps": 2, "log_samples_every": 1})
    session = open_session(recipe, "grpo")
    received, generate = [], session.engine.generate

    def recording(prompt_ids, *args, **kwargs):
        received.extend(tuple(p) for p in prompt_ids)
        return generate(prompt_ids, *args, **kwargs)

    session.engine.generate = recording
    try:
        result = run_steps(session, grpo_step)
    finally:
        if backend == "vllm":
            session.engine.close()
    tokenizer = session.tokenizer
    templated = {tuple(tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM}, *row["prompt"]],
                                                     add_generation_prompt=True, enable_thinking=False)["input_ids"])
                 for row in rows}
    assert received and set(received) <= templated
    metrics = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [m for m in metrics if "reward/tests.plugin_rewards:conversational_brevity" in m]
    assert len(trained) == 2 and all(m["reward/tests.plugin_rewards:conversational_brevity"] > 0 for m in trained)
    assert not any(key.endswith("/errors") for m in metrics for key in m)  # no call failed on the message form
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["data"]["chat_template"] is True
    sample = json.loads((result.run_dir / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")  # as the model read it


def test_trl_style_conversational_reward_scores_unchanged_in_rewards_score(tmp_path):
    rows = [{"completion": [{"role": "assistant", "content": "so \\boxed{12}"}], "answer": "12"},
            {"completion": [{"role": "assistant", "content": "13"}], "answer": "12"}]
    path = write_rows(tmp_path / "rows.jsonl", rows)
    plugin = rlreason("rewards", "score", "tests.plugin_rewards:conversational_brevity", "--input", path,
                      "--output", str(tmp_path / "plugin.jsonl"))
    assert plugin.returncode == 0 and "0 errors" in plugin.stdout, plugin.stderr
    scored = [json.loads(line)["reward"] for line in (tmp_path / "plugin.jsonl").read_text().splitlines()]
    assert scored == [1 / (1 + len("so \\boxed{12}")), 1 / 3]
    builtin = rlreason("rewards", "score", "math_accuracy", "--input", path, "--output", str(tmp_path / "math.jsonl"))
    assert builtin.returncode == 0, builtin.stderr
    assert [json.loads(line)["reward"] for line in (tmp_path / "math.jsonl").read_text().splitlines()] == [1.0, 0.0]


BUILT_IN_CASES = {  # name: (completions, columns), each scored as text and as messages
    "math_accuracy": (["so \\boxed{12}", "13"], {"answer": ["12", "12"]}),
    "digit_match": (["the answer is 12", "19"], {"answer": ["12", "12"]}),
    "format": (["<think>a</think><answer>1</answer>", "1"], {}),
    "tag_count": (["<think>a</think>", "<answer>1</answer>"], {}),
    "repetition_penalty": (["a b c a b c a b c", "one two three four"], {}),
    "language_consistency": (["<think>the sum is</think>", "<think>сумма</think>"], {}),
    "overlong_penalty": (["x" * 10, "x"], {"completion_ids": [[0] * 10, [0]], "max_completion_length": 8,
                                          "cache_length": 4}),
    "length": (["12", "it is 12 ok"], {"answer": ["12", "12"], "prompts": ["p", "p"], "completion_ids": [[0], [0] * 5]}),
    "cosine": (["12", "13"], {"answer": ["12", "12"], "completion_ids": [[0], [0] * 5], "max_length": 8}),
    "code_pass": (["```python\ndef f():\n    return 1\n```", "def f(): return 2"],
                  {"test": ["assert f() == 1"] * 2, "entry_point": ["f"] * 2}),
}


@pytest.mark.parametrize("name", sorted(BUILT_IN_CASES))
def test_built_in_rewards_score_messages_as_their_text(name):
    completions, columns = BUILT_IN_CASES[name]
    as_messages = [[{"role": "assistant", "content": c}] for c in completions]
    fn = resolve(name)
    assert fn(as_messages, **columns) == fn(completions, **columns)
