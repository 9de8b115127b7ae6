"""Sampling that drops finished rows from the decoding batch, as vLLM's scheduler does.

transformers ``generate`` keeps every row of a batch decoding until the longest is done: with
completion lengths that vary tenfold inside a group (every real RL batch), most of its forward
passes are spent on rows that already ended. Here a row leaves the batch when it ends: its key /
value cache rows and attention-mask row are dropped (once at least ``COMPACT_SHARE`` of the rows
still decoding have ended, so the cache is not copied for every single row), and later steps run
on the rows still going. Tokens are drawn exactly as in the ``generate`` path (the same seeded
uniforms, the same processors), with the positions ``generate`` gives left-padded rows.
"""

from __future__ import annotations

import torch

COMPACT_SHARE = 0.125


def greedy_draw(logits: torch.Tensor, rows: torch.Tensor, step: int, banned: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely token of each row (no logprobs: zeros)."""
    return without(logits, banned).argmax(dim=-1), torch.zeros(len(logits))


def without(logits: torch.Tensor, banned: torch.Tensor | None) -> torch.Tensor:
    """(N, V) logits with the ``banned`` token ids at ``-inf`` (a copy; ``logits`` itself when
    none are)."""
    if banned is None:
        return logits
    masked = logits.clone()
    masked[:, banned] = float("-inf")
    return masked


@torch.no_grad()
def shrinking_decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache, draw,
                     max_new_tokens: int, stop_ids: list[int], min_new_tokens: int = 0,
                     forward_rows: list[torch.Tensor] | None = None) -> tuple[list[list[int]], list[list[float]]]:
    """Decode up to ``max_new_tokens`` for each left-padded row, each row until one of
    ``stop_ids`` (included) or the limit; returns each row's tokens and their logprobs.

    Args:
        input_ids, attention_mask: (B, P) left-padded prompts.
        cache: an empty key/value cache for the model (e.g. ``kv_cache.preallocated_cache``).
        draw: ``draw(logits, rows, step, banned) -> (tokens, logprobs)``: (A, V) raw next-token
            logits of batch rows ``rows`` (A,) at completion position ``step``, token ids that may
            not be drawn yet (the stop tokens before ``min_new_tokens``) or None -> (A,) tokens
            and their logprobs.
        forward_rows: if given, the batch rows each decoding forward runs on are appended to it
            (what a recording of the forwards, e.g. the MoE routing, needs to tell rows apart).
    """
    batch, device = input_ids.shape[0], input_ids.device
    stops = torch.tensor(stop_ids, device=device)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    rows = torch.arange(batch, device=device)  # the batch row of each row still in the cache
    running = torch.ones(batch, dtype=torch.bool, device=device)  # per cache row: not yet ended
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # what generate gives left-padded rows
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]  # (B, V)
    for step in range(max_new_tokens):
        active = running.nonzero().flatten()
        drawn, drawn_logprobs = draw(logits[active], rows[active], step, stops if step < min_new_tokens else None)
        for row, token, logprob in zip(rows[active].tolist(), drawn.tolist(), drawn_logprobs.tolist()):
            tokens[row].append(token)
            logprobs[row].append(logprob)
        ended = torch.isin(drawn, stops)
        step_tokens = torch.zeros(len(rows), dtype=torch.long, device=device)
        step_tokens[active] = drawn
        running[active] = ~ended
        if step == max_new_tokens - 1 or not running.any():
            break
        if (~running).sum() >= max(1, COMPACT_SHARE * len(rows)):  # drop the ended rows from the cache
            keep = running.nonzero().flatten()
            cache.batch_select_indices(keep)
            rows, attention_mask, step_tokens = rows[keep], attention_mask[keep], step_tokens[keep]
            running = running[keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1)
        position = attention_mask.sum(-1, keepdim=True) - 1  # (A, 1)
        if forward_rows is not None:
            forward_rows.append(rows.cpu())
        logits = model(input_ids=step_tokens.unsqueeze(1), attention_mask=attention_mask, position_ids=position,
                       past_key_values=cache, use_cache=True).logits[:, -1]
    return tokens, logprobs
