"""The preallocated cache changes where keys and values live, not what the model computes."""

import pytest
import torch
from transformers.cache_utils import DynamicSlidingWindowLayer

from rlreason.rollout.hf import left_padded
from rlreason.rollout.kv_cache import PreallocatedLayer, preallocated_cache


def greedy(model, input_ids, attention_mask, new_tokens, cache=None):
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens, past_key_values=cache,
                         return_dict_in_generate=True, output_logits=True, pad_token_id=0)
    return out.sequences, torch.stack(out.logits, dim=1)


def padded_prompts(tokenizer):
    return left_padded(tokenizer(["12+7=", "5=", "100+23=", "8+8+8="]).input_ids, tokenizer.pad_token_id, "cpu")


@pytest.mark.parametrize("capacity", [40, 3], ids=["room-for-all", "grows"])
def test_generate_with_the_preallocated_cache_equals_the_dynamic_cache(tiny_model, tokenizer, capacity):
    ids, mask = padded_prompts(tokenizer)
    tiny_model.eval()
    expected_ids, expected_logits = greedy(tiny_model, ids, mask, 24)
    cache = preallocated_cache(tiny_model.config, capacity)
    got_ids, got_logits = greedy(tiny_model, ids, mask, 24, cache)
    assert torch.equal(got_ids, expected_ids)
    assert torch.allclose(got_logits, expected_logits, atol=1e-5)
    layer = cache.layers[0]
    assert isinstance(layer, PreallocatedLayer) and layer.get_seq_length() == ids.shape[1] + 24 - 1
    assert layer.capacity >= layer.get_seq_length() and (capacity == 40) == (layer.capacity == 40)


def test_under_autocast_keys_and_values_keep_their_own_dtypes(tiny_model, tokenizer):
    """Under bfloat16 autocast keys come out float32 (rotary in float32) and values bfloat16."""
    ids, mask = padded_prompts(tokenizer)
    tiny_model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected_ids, expected_logits = greedy(tiny_model, ids, mask, 12)
        cache = preallocated_cache(tiny_model.config, 40)
        got_ids, got_logits = greedy(tiny_model, ids, mask, 12, cache)
    assert torch.equal(got_ids, expected_ids) and torch.equal(got_logits, expected_logits)
    layer = cache.layers[0]
    assert (layer.key_buffer.dtype, layer.value_buffer.dtype) == (torch.float32, torch.bfloat16)


def test_only_full_attention_layers_are_preallocated(sliding_window_model, tokenizer):
    model = sliding_window_model.eval()
    cache = preallocated_cache(model.config, 64)
    assert [type(layer) for layer in cache.layers] == [PreallocatedLayer, DynamicSlidingWindowLayer]
    ids, mask = padded_prompts(tokenizer)
    expected_ids, expected_logits = greedy(model, ids, mask, 10)
    got_ids, got_logits = greedy(model, ids, mask, 10, cache)
    assert torch.equal(got_ids, expected_ids) and torch.allclose(got_logits, expected_logits, atol=1e-5)


def test_beam_search_reorders_the_preallocated_rows_as_the_dynamic_cache(tiny_model, tokenizer):
    """Beam search selects and reorders cache rows every step (the row-picking methods)."""
    ids, mask = padded_prompts(tokenizer)
    tiny_model.eval()

    def beams(cache=None):
        return tiny_model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=3,
                                   num_return_sequences=2, max_new_tokens=10, past_key_values=cache, pad_token_id=0)

    assert torch.equal(beams(preallocated_cache(tiny_model.config, 40)), beams())
