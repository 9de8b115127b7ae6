"""Grouped-query decoding reads the cache as it is and computes what transformers' sdpa computes."""

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from rlreason.rollout.decode_attention import grouped_decode_attention, grouped_decoding
from rlreason.rollout.hf import left_padded


class Attention(torch.nn.Module):
    num_key_value_groups, is_causal = 4, True


def padding_mask(batch: int, length: int) -> torch.Tensor:
    """(B, 1, 1, L) bool: row i has i positions of left padding."""
    return (torch.arange(length)[None, :] >= torch.arange(batch)[:, None])[:, None, None, :]


@pytest.mark.parametrize("mask", ["padding", "none"])
def test_one_query_per_sequence_equals_sdpa(mask):
    query, key, value = torch.randn(3, 8, 1, 16), torch.randn(3, 2, 9, 16), torch.randn(3, 2, 9, 16)
    attention_mask = padding_mask(3, 9) if mask == "padding" else None
    expected, _ = sdpa_attention_forward(Attention(), query, key, value, attention_mask, scaling=0.3)
    got, _ = grouped_decode_attention(Attention(), query, key, value, attention_mask, scaling=0.3)
    assert got.shape == expected.shape == (3, 1, 8, 16)
    assert torch.allclose(got, expected, atol=1e-6)
    # a head that only sees its own kv head: changing kv head 1 leaves heads 0-3 untouched
    key[:, 1] += 1.0
    moved, _ = grouped_decode_attention(Attention(), query, key, value, attention_mask, scaling=0.3)
    assert torch.equal(moved[:, :, :4], got[:, :, :4]) and not torch.allclose(moved[:, :, 4:], got[:, :, 4:])


def test_several_queries_go_to_sdpa_unchanged():
    query, key, value = torch.randn(2, 8, 5, 16), torch.randn(2, 2, 5, 16), torch.randn(2, 2, 5, 16)
    expected, _ = sdpa_attention_forward(Attention(), query, key, value, None)
    got, _ = grouped_decode_attention(Attention(), query, key, value, None)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("which", ["moe", "sliding-window"])
def test_generate_under_grouped_decoding_equals_sdpa(tiny_model, sliding_window_model, tokenizer, which):
    """Left-padded prompts of different lengths (the mask path), greedy: same tokens, same logits;
    the model is back on sdpa afterwards."""
    model = (tiny_model if which == "moe" else sliding_window_model).eval()
    ids, mask = left_padded(tokenizer(["12+7=", "5=", "100+23=", "8+8+8="]).input_ids, tokenizer.pad_token_id, "cpu")
    assert model.config._attn_implementation == "sdpa" and model.config.num_key_value_heads == 1

    def greedy():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=16,
                             min_new_tokens=16, return_dict_in_generate=True, output_logits=True, pad_token_id=0)
        return out.sequences, torch.stack(out.logits, dim=1)

    expected_ids, expected_logits = greedy()
    with grouped_decoding(model):
        assert model.config._attn_implementation == "rlreason_grouped_decode"
        got_ids, got_logits = greedy()
    assert model.config._attn_implementation == "sdpa"
    assert torch.equal(got_ids, expected_ids) and torch.allclose(got_logits, expected_logits, atol=1e-5)


def test_other_attention_implementations_are_left_alone(tiny_model):
    tiny_model.set_attn_implementation("eager")
    with grouped_decoding(tiny_model):
        assert tiny_model.config._attn_implementation == "eager"
    assert tiny_model.config._attn_implementation == "eager"
