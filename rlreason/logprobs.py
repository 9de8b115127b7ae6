"""Per-token logprobs and entropies of sampled tokens: logits (or hidden states and the output
layer) in, tensors out."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def token_logprobs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0,
                   chunk: int = 16) -> torch.Tensor:
    """Log-probability of each token under ``softmax(logits / temperature)``.

    Args:
        logits: (N, T, V) logits predicting each position of ``token_ids``.
        token_ids: (N, T).
    Returns:
        (N, T) float32 logprobs.
    """
    return token_logprobs_and_entropy(logits, token_ids, temperature, chunk, with_entropy=False)[0]


def token_logprobs_and_entropy(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0,
                               chunk: int = 16, with_entropy: bool = True, entropy_grad: bool = False
                               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs of ``token_ids`` and the entropy of each position's distribution.

    Computed ``chunk`` sequences at a time, so the float32 full-vocabulary log-softmax of the
    whole batch never exists at once. The entropy carries a gradient only with ``entropy_grad``
    (an entropy bonus trains it; otherwise it is only logged or used to select tokens).

    Returns:
        (logprobs, entropy): (N, T) float32 each; entropy is None when not asked for.
    """
    picked, entropies = [], []
    for lo in range(0, logits.shape[0], chunk):
        token, entropy = picked_and_entropy(logits[lo:lo + chunk], token_ids[lo:lo + chunk], temperature,
                                            with_entropy, entropy_grad)  # (n, T) each
        picked.append(token)
        entropies.append(entropy)
    return torch.cat(picked), torch.cat(entropies) if with_entropy else None


def picked_and_entropy(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0,
                       with_entropy: bool = True, entropy_grad: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(..., V) logits, (...) token ids -> float32 logprob of each token under
    ``softmax(logits / temperature)`` and, if asked, the distribution's entropy (with a gradient
    only with ``entropy_grad``).

    One fused log-softmax, whose backward is one pass too: a logsumexp subtracted from the
    gathered logit costs three more full-vocabulary passes in the backward (docs/speed.md)."""
    scaled = logits.float()
    if temperature != 1.0:
        scaled = scaled / temperature
    logprobs = torch.log_softmax(scaled, dim=-1)
    picked = logprobs.gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return picked, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        return picked, -(logprobs.exp() * logprobs).sum(dim=-1)


def head_logprobs_and_entropy(head: torch.nn.Module, hidden: torch.Tensor, token_ids: torch.Tensor,
                              temperature: float = 1.0, chunk_tokens: int = 1024, with_entropy: bool = True,
                              entropy_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs of ``token_ids`` (and entropies) from final hidden states through the output layer
    ``head``, ``chunk_tokens`` positions at a time.

    Only one chunk's logits (chunk x vocabulary) ever exist: each chunk's output layer and
    log-softmax run under activation checkpointing, so the backward pass keeps the chunk's hidden
    states rather than its logits and recomputes them. The entropy carries a gradient only with
    ``entropy_grad``.

    Args:
        head: the model's output layer (``get_output_embeddings()``).
        hidden: (K, H) hidden states, each predicting the token at the same index of ``token_ids``.
        token_ids: (K,).
    Returns:
        (logprobs, entropy): (K,) float32 each; entropy is None when not asked for.
    """
    def chunk_of(part: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        picked, entropy = picked_and_entropy(head(part), ids, temperature, with_entropy, entropy_grad)  # (k,)
        return picked, picked.new_zeros(()) if entropy is None else entropy

    recompute = torch.is_grad_enabled() and (hidden.requires_grad or any(p.requires_grad for p in head.parameters()))
    picked, entropies = [], []
    for lo in range(0, hidden.shape[0], chunk_tokens):
        part, ids = hidden[lo:lo + chunk_tokens], token_ids[lo:lo + chunk_tokens]
        token, entropy = (checkpoint(chunk_of, part, ids, use_reentrant=False) if recompute
                          else chunk_of(part, ids))
        picked.append(token)
        entropies.append(entropy)
    return torch.cat(picked), torch.cat(entropies) if with_entropy else None
