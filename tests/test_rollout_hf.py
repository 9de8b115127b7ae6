import pytest
import torch

from rlreason.recipe import HFGenerateConfig, RolloutConfig
from rlreason.rollout.hf import HFRollout, inverse_cdf_sample
from rlreason.sequences import right_padded, sequence_logprobs
from tests.helpers import eager_to_end


def engine(model, tokenizer, **cfg):
    return HFRollout(model, tokenizer, RolloutConfig(**{"max_new_tokens": 6, **cfg}), [tokenizer.eos_token_id])


def test_g_completions_per_prompt_grouped_with_reasons(tiny_model, tokenizer):
    prompts = tokenizer(["1+2=", "30+4="]).input_ids
    rollouts = engine(tiny_model, tokenizer).generate(prompts, n=3)
    assert len(rollouts) == 6
    assert rollouts.group_index == [0, 0, 0, 1, 1, 1]
    assert rollouts.prompt_ids[:3] == [prompts[0]] * 3 and rollouts.prompt_ids[3] == prompts[1]
    for ids, reason, logprobs in zip(rollouts.completion_ids, rollouts.finish_reason, rollouts.rollout_logprobs):
        assert len(logprobs) == len(ids) and 1 <= len(ids) <= 6
        if reason == "stop":
            assert ids[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id not in ids[:-1]
        else:
            assert reason == "length" and len(ids) == 6 and tokenizer.eos_token_id not in ids


@pytest.mark.parametrize("sampling", [{}, {"min_new_tokens": 6, "top_k": 5}], ids=["plain", "eos-suppressed-top-k"])
def test_rollout_logprobs_match_the_trainer_forward(tiny_model, tokenizer, sampling):
    """The sampler records the logprob of each drawn token under the raw logits / temperature,
    before end-of-sequence suppression and the top-k filter shape what is drawn."""
    cfg = {"temperature": 0.7, **sampling}
    rollouts = engine(tiny_model, tokenizer, **cfg).generate(tokenizer(["12+7=", "5="]).input_ids, n=4)
    batch = right_padded(rollouts.prompt_ids, rollouts.completion_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        trainer_logprobs = sequence_logprobs(tiny_model.eval(), batch, temperature=0.7)
    for i, expected in enumerate(rollouts.rollout_logprobs):
        got = trainer_logprobs[i][batch.completion_mask[i].bool()]
        assert torch.allclose(got, torch.tensor(expected), atol=1e-4)


def test_greedy_is_deterministic_and_stop_strings_end_completions(tiny_model, tokenizer):
    prompts = tokenizer(["7+7="]).input_ids
    first = engine(tiny_model, tokenizer).generate(prompts, n=1, greedy=True)
    assert first.completion_ids == engine(tiny_model, tokenizer).generate(prompts, n=1, greedy=True).completion_ids
    text = tokenizer.decode(first.completion_ids[0], skip_special_tokens=True)
    if text:  # stop at the first character the model produces greedily
        stopped = engine(tiny_model, tokenizer, stop=[text[0]]).generate(prompts, n=1, greedy=True)
        assert stopped.finish_reason == ["stop"] and len(stopped.completion_ids[0]) == 1


def test_sampling_is_reproducible_under_a_seed(tiny_model, tokenizer):
    prompts = tokenizer(["3+4="]).input_ids
    torch.manual_seed(7)
    a = engine(tiny_model, tokenizer).generate(prompts, n=4)
    torch.manual_seed(7)
    b = engine(tiny_model, tokenizer).generate(prompts, n=4)
    assert a.completion_ids == b.completion_ids


def test_a_prompts_completions_depend_on_its_seed_not_on_its_batch(tiny_model, tokenizer):
    """What lets 1 and N processes draw the same completions: seeds are per prompt."""
    alone = engine(tiny_model, tokenizer).generate(tokenizer(["30+4="]).input_ids, n=4, seeds=[11])
    prompts = tokenizer(["1+2=", "30+4=", "8="]).input_ids
    together = engine(tiny_model, tokenizer).generate(prompts, n=4, seeds=[5, 11, 6])
    assert together.completion_ids[4:8] == alone.completion_ids
    reseeded = engine(tiny_model, tokenizer).generate(tokenizer(["30+4="]).input_ids, n=4, seeds=[12])
    assert reseeded.completion_ids != alone.completion_ids


def test_top_k_of_one_samples_the_greedy_completion(tiny_model, tokenizer):
    prompts = tokenizer(["12+7=", "5="]).input_ids
    greedy = engine(tiny_model, tokenizer).generate(prompts, n=1, greedy=True)
    sampled = engine(tiny_model, tokenizer, top_k=1, temperature=1.5).generate(prompts, n=3)
    assert sampled.completion_ids == [ids for ids in greedy.completion_ids for _ in range(3)]


def test_min_new_tokens_equal_to_max_gives_fixed_length_completions(tiny_model, tokenizer):
    prompts = tokenizer(["1+2=", "30+4="]).input_ids
    rollouts = engine(tiny_model, tokenizer, max_new_tokens=12, min_new_tokens=12).generate(prompts, n=4)
    assert all(len(ids) == 12 and tokenizer.eos_token_id not in ids for ids in rollouts.completion_ids)
    assert set(rollouts.finish_reason) == {"length"}


def test_static_cache_draws_the_dynamic_caches_completions(tiny_model, tokenizer):
    """The static cache (compiled decoding on GPUs) changes the cache, not what is sampled: the
    same seeds give the same completions, with logprobs equal to the trainer's."""
    prompts = tokenizer(["12+7=", "5=", "100+23="]).input_ids
    dynamic = engine(tiny_model, tokenizer, max_new_tokens=10).generate(prompts, n=3, seeds=[1, 2, 3])
    static = engine(tiny_model, tokenizer, max_new_tokens=10, hf=HFGenerateConfig(static_cache=True, pad_prompts_to=8))
    drawn = static.generate(prompts, n=3, seeds=[1, 2, 3])
    assert drawn.completion_ids == dynamic.completion_ids and drawn.finish_reason == dynamic.finish_reason
    for got, expected in zip(drawn.rollout_logprobs, dynamic.rollout_logprobs):
        assert torch.allclose(torch.tensor(got), torch.tensor(expected), atol=1e-4)
    greedy = static.generate(prompts, n=1, greedy=True)
    assert greedy.completion_ids == engine(tiny_model, tokenizer, max_new_tokens=10).generate(
        prompts, n=1, greedy=True).completion_ids


def test_static_cache_under_accelerates_bf16_autocast(tiny_model, tokenizer):
    """accelerate's mixed precision wraps the forward in autocast, under which keys and values come
    out in different dtypes; the static cache decodes in the weights' dtype instead: same completions
    as the unprepared fp32 model, and the autocast forward is back afterwards."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    prompts = tokenizer(["12+7=", "5="]).input_ids
    expected = engine(tiny_model, tokenizer, max_new_tokens=8).generate(prompts, n=2, seeds=[4, 5])
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        model = Accelerator(cpu=True, mixed_precision="bf16").prepare(tiny_model)
        autocast_forward = model.forward
        static = engine(model, tokenizer, max_new_tokens=8, hf=HFGenerateConfig(static_cache=True, pad_prompts_to=8))
        assert static.generate(prompts, n=2, seeds=[4, 5]).completion_ids == expected.completion_ids
        assert model.forward == autocast_forward
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
@pytest.mark.parametrize("min_new_tokens", [0, 3])
def test_dropping_finished_rows_draws_what_generate_draws(tiny_model, tokenizer, greedy, min_new_tokens):
    prompts = tokenizer(["1+2=", "30+4=", "5=", "123+45="]).input_ids  # several widths: left padding
    eager_to_end(tiny_model, prompts, tokenizer.eos_token_id, scale=0.3 if greedy else 0.7)
    runs = [engine(tiny_model, tokenizer, max_new_tokens=24, temperature=0.9, min_new_tokens=min_new_tokens,
                   hf=HFGenerateConfig(drop_finished_rows=dropping)).generate(prompts, n=4, greedy=greedy,
                                                                                 seeds=[1, 2, 3, 4])
            for dropping in (True, False)]
    dropping, keeping = runs
    assert dropping.completion_ids == keeping.completion_ids
    assert dropping.finish_reason == keeping.finish_reason
    lengths = {len(ids) for ids in dropping.completion_ids}
    assert min(lengths) >= max(min_new_tokens, 1) and "stop" in dropping.finish_reason
    assert greedy or len(lengths) > 2  # sampled rows end at many different steps
    if not greedy:
        for a, b in zip(dropping.rollout_logprobs, keeping.rollout_logprobs):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)


def test_inverse_cdf_sampling_follows_the_probabilities_and_never_draws_a_zero():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.2, 0.3, 0.0]]).expand(40_000, 6)
    drawn = inverse_cdf_sample(probs, torch.rand(40_000, generator=torch.Generator().manual_seed(3)))
    frequencies = torch.bincount(drawn.flatten(), minlength=6) / 40_000
    assert torch.allclose(frequencies, probs[0], atol=0.01)
    assert frequencies[[0, 2, 5]].sum() == 0
    below_one = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    edges = inverse_cdf_sample(probs[:3], torch.stack([torch.tensor(0.0), below_one, torch.tensor(0.5)]))
    assert edges.flatten().tolist() == [1, 4, 3]  # u = 0: the first positive token; u -> 1: the last
    unnormalised = inverse_cdf_sample(torch.tensor([[2.0, 0.0, 6.0, 0.0]] * 2), torch.tensor([0.2, 0.3]))
    assert unnormalised.flatten().tolist() == [0, 2]  # u is scaled by the row's total
