"""Per-token logprobs and entropies of sampled tokens: logits in, tensors out."""

from __future__ import annotations

import torch


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
                               chunk: int = 16, with_entropy: bool = True
                               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs of ``token_ids`` and the entropy of each position's distribution.

    Computed ``chunk`` sequences at a time, so the float32 full-vocabulary log-softmax of the
    whole batch never exists at once. The entropy carries no gradient (it is logged, not trained).

    Returns:
        (logprobs, entropy): (N, T) float32 each; entropy is None when not asked for.
    """
    picked, entropies = [], []
    for lo in range(0, logits.shape[0], chunk):
        part = logits[lo:lo + chunk].float() / temperature  # (n, T, V)
        normaliser = torch.logsumexp(part, dim=-1)  # (n, T)
        token = part.gather(-1, token_ids[lo:lo + chunk].unsqueeze(-1)).squeeze(-1)  # (n, T)
        picked.append(token - normaliser)
        if with_entropy:
            with torch.no_grad():
                probs = torch.softmax(part, dim=-1)  # (n, T, V)
                entropies.append(normaliser - (probs * part).sum(dim=-1))
    return torch.cat(picked), torch.cat(entropies) if with_entropy else None
