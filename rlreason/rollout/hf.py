"""Rollouts with transformers ``generate`` on the policy itself (no weight copy to sync)."""

from __future__ import annotations

import torch

from rlreason.logprobs import token_logprobs
from rlreason.recipe import RolloutConfig
from rlreason.types import Rollouts


class HFRollout:
    def __init__(self, model, tokenizer, cfg: RolloutConfig):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg

    def sync_weights(self) -> None:
        """Nothing to do: generation runs on the policy's own parameters."""

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], n: int, greedy: bool = False,
                 max_new_tokens: int | None = None) -> Rollouts:
        """``n`` completions per prompt, grouped prompt by prompt."""
        cfg, pad = self.cfg, self.tokenizer.pad_token_id
        input_ids, attention_mask = left_padded(prompt_ids, pad, self.model.device)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask,
                do_sample=not greedy, temperature=cfg.temperature if not greedy else None,
                top_p=cfg.top_p if not greedy else None, top_k=(cfg.top_k or None) if not greedy else None,
                max_new_tokens=max_new_tokens or cfg.max_new_tokens, num_return_sequences=n,
                stop_strings=cfg.stop or None, tokenizer=self.tokenizer if cfg.stop else None,
                pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
                return_dict_in_generate=True, output_logits=not greedy,
            )
        finally:
            self.model.train(was_training)
        generated = out.sequences[:, input_ids.shape[1]:]  # (B*n, T)
        logprobs = None
        if not greedy:
            logits = torch.stack(out.logits, dim=1)  # (B*n, T, V) raw, before sampling filters
            logprobs = token_logprobs(logits, generated, cfg.temperature).tolist()
        return self.trim(prompt_ids, generated.tolist(), logprobs, n)

    def trim(self, prompt_ids, generated, logprobs, n) -> Rollouts:
        """Cut each completion after its EOS or stop string; record why it ended."""
        completions, kept_logprobs, reasons = [], [], []
        for i, ids in enumerate(generated):
            length, reason = self.completion_length(ids)
            completions.append(ids[:length])
            reasons.append(reason)
            if logprobs is not None:
                kept_logprobs.append(logprobs[i][:length])
        return Rollouts(
            prompt_ids=[list(p) for p in prompt_ids for _ in range(n)],
            completion_ids=completions,
            rollout_logprobs=kept_logprobs if logprobs is not None else None,
            finish_reason=reasons,
            group_index=[i // n for i in range(len(completions))],
        )

    def completion_length(self, ids: list[int]) -> tuple[int, str]:
        eos = self.tokenizer.eos_token_id
        if eos in ids:
            return ids.index(eos) + 1, "stop"
        for length in range(1, len(ids) + 1) if self.cfg.stop else ():
            text = self.tokenizer.decode(ids[:length])
            if any(s in text for s in self.cfg.stop):
                return length, "stop"
        return len(ids), "length"


def left_padded(prompt_ids: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for i, p in enumerate(prompt_ids):
        input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attention_mask[i, width - len(p):] = 1
    return input_ids.to(device), attention_mask.to(device)
