import pytest
import torch

from rlreason.logprobs import token_logprobs
from rlreason.losses import BatchTotals, LossConfig, policy_loss
from rlreason.sequences import policy_forward, right_padded, sequence_logprobs, split_to, token_budget_batches


def test_completion_mask_marks_exactly_the_completion_targets():
    batch = right_padded([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 9, 10], [8, 11, 12, 13, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # targets are input_ids[:, 1:]: [6, 7, 9, 10] and [11, 12, 13, 0]
    assert batch.completion_mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 0]]


def test_padding_does_not_change_logprobs_or_loss(tiny_model):
    tiny_model.eval()
    prompts, completions = [[10, 11, 12], [13]], [[14, 15], [16, 17, 18, 19, 20, 21]]
    together = right_padded(prompts, completions, pad_id=0)
    with torch.no_grad():
        batched = sequence_logprobs(tiny_model, together)
        alone = sequence_logprobs(tiny_model, right_padded(prompts[:1], completions[:1], pad_id=0))
    mask = together.completion_mask[0].bool()
    assert torch.allclose(batched[0][mask], alone[0][right_padded(prompts[:1], completions[:1], 0).completion_mask[0].bool()], atol=1e-5)
    # the loss over both sequences equals the sum of each sequence's share
    cfg, totals, adv = LossConfig(loss_type="bnpo"), BatchTotals(2, 8), torch.tensor([1.0, -0.5])
    whole, _ = policy_loss(batched, batched - 0.1, adv, together.completion_mask, cfg, totals)
    shares = 0.0
    for i in range(2):
        single = right_padded(prompts[i:i + 1], completions[i:i + 1], pad_id=0)
        with torch.no_grad():
            lp = sequence_logprobs(tiny_model, single)
        shares += policy_loss(lp, lp - 0.1, adv[i:i + 1], single.completion_mask, cfg, totals)[0]
    assert abs(whole.item() - shares.item()) < 1e-5


def test_padding_token_value_is_irrelevant(tiny_model):
    tiny_model.eval()
    prompts, completions = [[10, 11], [12]], [[13], [14, 15, 16, 17]]
    with torch.no_grad():
        a = sequence_logprobs(tiny_model, right_padded(prompts, completions, pad_id=0))
        b = sequence_logprobs(tiny_model, right_padded(prompts, completions, pad_id=42))
    mask = right_padded(prompts, completions, pad_id=0).completion_mask.bool()
    assert torch.allclose(a[mask], b[mask], atol=1e-6)


def test_completion_only_logits_give_the_full_forwards_logprobs_and_entropies(tiny_model):
    tiny_model.eval()
    prompts, completions = [[10, 11, 12, 13], [14, 15], [16, 17, 18]], [[19, 20], [21, 22, 23, 24], []]
    batch = right_padded(prompts, completions, pad_id=0)
    with torch.no_grad():
        scored = policy_forward(tiny_model, batch, temperature=0.7)
        logits = tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    full = token_logprobs(logits, batch.input_ids[:, 1:], temperature=0.7)
    mask = batch.completion_mask.bool()
    assert torch.allclose(scored.logprobs[mask], full[mask], atol=1e-5)
    probs = torch.softmax(logits / 0.7, dim=-1)
    entropy = -(probs * torch.log(probs)).sum(dim=-1)
    assert torch.allclose(scored.entropy[mask], entropy[mask], atol=1e-4)
    # the shortest prompt (2 tokens) sets the first kept position: target 1; before it, zeros
    assert scored.logprobs[:, :1].abs().sum() == 0 and scored.logprobs[1, 1] != 0


@pytest.mark.parametrize("checkpointing", [False, True])
def test_chunked_output_layer_gives_the_full_logits_values_and_gradients(tiny_model, checkpointing):
    """Completion positions only, through the output layer 3 at a time: the same logprobs,
    entropies, MoE aux loss and parameter gradients (through the logprobs and, as an entropy bonus
    takes it, the entropies) as full logits, with the model's own gradient checkpointing on and
    off; positions that are not completion targets are zero."""
    torch.manual_seed(0)
    if checkpointing:
        tiny_model.gradient_checkpointing_enable()
    tiny_model.train()
    prompts, completions = [[10, 11, 12, 13], [14, 15], [16, 17, 18]], [[19, 20], [21, 22, 23, 24, 25], [26]]
    batch = right_padded(prompts, completions, pad_id=0)
    mask = batch.completion_mask.bool()
    results = []
    for chunk in (0, 3):
        tiny_model.zero_grad(set_to_none=True)
        scored = policy_forward(tiny_model, batch, temperature=0.7, router_outputs=True, logits_chunk_tokens=chunk,
                                entropy_grad=True)
        weights = torch.arange(1.0, 1.0 + mask.sum().item())  # a different weight per token
        ((scored.logprobs[mask] * weights).sum() - (scored.entropy[mask] * weights.flip(0)).sum()
         + scored.aux_loss).backward()
        grads = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}
        results.append((scored, grads))
    (full, full_grads), (chunked, chunked_grads) = results
    assert torch.allclose(chunked.logprobs[mask], full.logprobs[mask], atol=1e-5)
    assert torch.allclose(chunked.entropy[mask], full.entropy[mask], atol=1e-5)
    assert chunked.logprobs[~mask].abs().sum() == 0 and chunked.entropy[~mask].abs().sum() == 0
    assert torch.allclose(chunked.aux_loss, full.aux_loss)
    assert chunked_grads.keys() == full_grads.keys()  # the tied embedding carries the head's gradient
    for name, grad in full_grads.items():
        assert torch.allclose(chunked_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_chunked_output_layer_keeps_full_logits_for_families_that_transform_them(tiny_model):
    """Soft-capped logits (Gemma 2/3) are not ``head(hidden)``: those models keep the full path."""
    from rlreason.sequences import plain_output_head

    assert plain_output_head(tiny_model) is tiny_model.lm_head
    tiny_model.config.final_logit_softcapping = 30.0
    assert plain_output_head(tiny_model) is None


def test_token_budget_batches_group_similar_lengths_within_the_budget():
    lengths = [5, 30, 8, 28, 6, 70]
    batches = token_budget_batches(lengths, max_tokens=60, max_rows=2)
    assert batches == [[5], [1, 3], [2, 4], [0]]  # 70 alone (over budget); at most two rows each
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 60 or len(b) == 1 for b in batches)


def test_split_to_gives_every_process_as_many_micro_batches():
    assert split_to([[0, 1, 2, 3], [4]], 3) == [[0, 1], [2, 3], [4]]
    assert split_to([[0], [1]], 2) == [[0], [1]]
    with pytest.raises(ValueError, match="cannot make 3 micro-batches of 2 rows"):
        split_to([[0], [1]], 3)
