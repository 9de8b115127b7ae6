"""Prompt + completion token lists -> right-padded tensors, and their completion logprobs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributed.fsdp import FSDPModule

from rlreason.logprobs import head_logprobs_and_entropy, token_logprobs_and_entropy


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded prompt+completion sequences.

    Attributes:
        input_ids: (N, L) token ids, padded on the right.
        attention_mask: (N, L) 1 on real tokens.
        completion_mask: (N, L-1) 1 where target ``input_ids[:, 1:]`` is a completion token.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor


def right_padded(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                 device: torch.device | str = "cpu") -> TokenBatch:
    """Concatenate each prompt with its completion and pad on the right.

    Right padding keeps every real token at its natural position, so causal attention never
    sees padding and no position ids are needed.
    """
    return masked_right_padded([p + c for p, c in zip(prompt_ids, completion_ids)],
                               [[0] * len(p) + [1] * len(c) for p, c in zip(prompt_ids, completion_ids)],
                               pad_id, device)


def masked_right_padded(sequences: list[list[int]], learned: list[list[int]], pad_id: int,
                        device: torch.device | str = "cpu") -> TokenBatch:
    """Sequences padded on the right, with ``completion_mask`` 1 at the tokens ``learned``
    marks (1 per token: e.g. every assistant turn of a conversation); the first token of a
    sequence is never learned (nothing predicts it)."""
    lengths = list(map(len, sequences))
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(lengths), width), dtype=torch.long)
    completion_mask = torch.zeros((len(lengths), width - 1), dtype=torch.float32)
    for i, (ids, marks) in enumerate(zip(sequences, learned)):
        input_ids[i, :lengths[i]] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, :lengths[i]] = 1
        # target position t predicts token t+1
        completion_mask[i, :lengths[i] - 1] = torch.tensor(marks[1:], dtype=torch.float32)
    return TokenBatch(input_ids.to(device), attention_mask.to(device), completion_mask.to(device))


def sequence_logprobs(model: torch.nn.Module, batch: TokenBatch, temperature: float = 1.0,
                      logits_chunk_tokens: int = 0) -> torch.Tensor:
    """(N, L-1) logprob of each completion token under ``model`` (temperature-scaled); zero at
    positions before the batch's first completion token."""
    return policy_forward(model, batch, temperature, with_entropy=False,
                          logits_chunk_tokens=logits_chunk_tokens).logprobs


@dataclass(frozen=True)
class Forward:
    """What one forward pass of the policy gives the loss.

    Attributes:
        logprobs: (N, L-1) next-token logprobs (with grad).
        entropy: (N, L-1) entropies (with grad only if asked for), or None.
        aux_loss: the model's own MoE load-balancing loss, when router outputs were asked for.
        router_logits: per MoE layer, (N*L, experts), when router outputs were asked for.
    """

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    aux_loss: torch.Tensor | None = None
    router_logits: tuple[torch.Tensor, ...] | None = None


def policy_forward(model: torch.nn.Module, batch: TokenBatch, temperature: float = 1.0,
                   with_entropy: bool = True, router_outputs: bool = False,
                   logits_chunk_tokens: int = 0, entropy_grad: bool = False) -> Forward:
    """Forward the batch; logprobs (and entropies) of the completion tokens, router outputs if asked.

    Logits are computed only from the first position that predicts a completion token on
    (``logits_to_keep``): the prompt's positions never reach the output layer. Logprobs and
    entropies before that position are zero, like padding.

    With ``logits_chunk_tokens`` > 0 (and an output layer whose logits are plain
    ``head(hidden)``, see ``plain_output_head``), the model returns its final hidden states
    instead and only the completion tokens' positions go through the output layer, that many at
    a time (``head_logprobs_and_entropy``): no (N, L, vocabulary) tensor exists, and padding never
    reaches the output layer. Positions that are not completion targets are then zero."""
    start = first_completion_target(batch.completion_mask)
    targets = batch.input_ids[:, start + 1:]
    extra = {"output_router_logits": True} if router_outputs else {}
    head = plain_output_head(model) if logits_chunk_tokens > 0 else None
    if head is None or not batch.completion_mask.any():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                    logits_to_keep=batch.input_ids.shape[1] - start, **extra)  # (N, L - start, V)
        logprobs, entropy = token_logprobs_and_entropy(out.logits[:, :-1], targets, temperature,
                                                       with_entropy=with_entropy, entropy_grad=entropy_grad)
    else:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                    logits_to_keep=1, output_hidden_states=True, **extra)
        kept = batch.completion_mask[:, start:].bool()  # (N, L-1-start)
        hidden = out.hidden_states[-1][:, start:-1][kept]  # (K, H): the completion targets' states
        picked, entropies = head_logprobs_and_entropy(head, hidden, targets[kept], temperature,
                                                      logits_chunk_tokens, with_entropy, entropy_grad)
        logprobs = torch.zeros(kept.shape, dtype=picked.dtype, device=picked.device).masked_scatter(kept, picked)
        entropy = None if entropies is None else torch.zeros_like(logprobs).masked_scatter(kept, entropies)
    logprobs = torch.nn.functional.pad(logprobs, (start, 0))  # (N, L-1)
    entropy = None if entropy is None else torch.nn.functional.pad(entropy, (start, 0))
    if not router_outputs:
        return Forward(logprobs, entropy)
    return Forward(logprobs, entropy, out.aux_loss, out.router_logits)


# config attributes of families whose logits are more than ``output_layer(final hidden state)``
# (Gemma 2/3's soft-capping, Cohere's logit scale, Granite's logit scaling): they keep full logits
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def plain_output_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's output layer when its logits are exactly that layer applied to the final hidden
    state (what ``hidden_states[-1]`` holds) and it can be called on its own; None when the family
    transforms the logits further, or when the model is sharded by FSDP2: its root's parameters
    (the output layer's among them) are gathered only inside the model's forward, so the layer
    cannot run after it."""
    inner = getattr(model, "module", model)  # under DDP, the wrapped model
    config = getattr(inner, "config", None)
    if config is None or any(getattr(config, name, None) for name in LOGIT_TRANSFORMS):
        return None
    if isinstance(inner, FSDPModule):
        return None
    return inner.get_output_embeddings()


def first_completion_target(completion_mask: torch.Tensor) -> int:
    """The first target position that is a completion token in any row (0 when none is)."""
    columns = completion_mask.any(dim=0).nonzero()
    return int(columns[0]) if len(columns) else 0


def completion_values(values: list[list[float]], mask: torch.Tensor) -> torch.Tensor:
    """Place per-completion-token values (e.g. rollout logprobs) at the mask's positions.

    Args:
        values: one list per row, as long as that row's completion.
        mask: (N, L-1) completion mask of a right-padded batch.
    Returns:
        (N, L-1) float32, zero outside the completions.
    """
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    out[mask.bool()] = torch.tensor([v for row in values for v in row], dtype=torch.float32,
                                    device=mask.device)
    return out


def micro_batches(count: int, size: int) -> list[list[int]]:
    """Indices ``0..count-1`` in consecutive chunks of at most ``size``."""
    return [list(range(lo, min(lo + size, count))) for lo in range(0, count, size)]


def token_budget_batches(lengths: list[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Row indices grouped into micro-batches of similar length: longest first, each filled while
    its padded size (rows x its longest row) stays within ``max_tokens`` and it has at most
    ``max_rows`` rows; a row longer than the budget goes alone. Padding then costs little
    however much the lengths vary.

    >>> token_budget_batches([5, 30, 8, 28, 6], max_tokens=60, max_rows=8)
    [[1, 3], [2, 4, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < max_rows and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def split_to(batches: list[list[int]], count: int) -> list[list[int]]:
    """``batches`` with the largest split in two until there are ``count`` of them (every process
    must run as many forward passes when parameters are sharded).

    >>> split_to([[0, 1, 2, 3], [4]], 3)
    [[0, 1], [2, 3], [4]]
    """
    batches = [list(b) for b in batches]
    while len(batches) < count:
        largest = max(range(len(batches)), key=lambda k: len(batches[k]))
        rows = batches[largest]
        if len(rows) < 2:
            raise ValueError(f"cannot make {count} micro-batches of {sum(map(len, batches))} rows")
        batches[largest:largest + 1] = [rows[:len(rows) // 2], rows[len(rows) // 2:]]
    return batches
