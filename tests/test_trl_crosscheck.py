"""rlreason's policy losses against TRL's on identical inputs.

TRL's ``GRPOTrainer`` is built on the same tiny MoE checkpoint and its own ``compute_loss``
scores one batch (prompt and completion ids, masks, advantages, old and reference logprobs);
rlreason scores the same batch through its own path (``right_padded`` ->
``policy_forward`` -> ``policy_loss``) on the very same module. Losses, gradients and the
entropy TRL logs must agree. TRL's version is pinned in pyproject's ``dev`` extra.
"""

import pytest
import torch
from datasets import Dataset

from rlreason.losses import BatchTotals, LossConfig, policy_loss
from rlreason.sequences import policy_forward, right_padded
from rlreason.tiny import build_char_tokenizer, build_tiny_moe
from rlreason.recipe import TinyModelConfig
from tests.conftest import TINY

import trl
from trl import GRPOConfig, GRPOTrainer

PROMPT_LEN, MAX_LEN, ROWS, GROUP, TEMPERATURE = 5, 7, 8, 4, 0.7

# rlreason loss_type -> TRL settings giving the same loss (epsilons are rlreason's defaults)
CASES = {
    "grpo": dict(loss_type="grpo", epsilon=0.2, epsilon_high=0.2),
    "bnpo": dict(loss_type="bnpo", epsilon=0.2, epsilon_high=0.2),
    "dapo": dict(loss_type="dapo", epsilon=0.2, epsilon_high=0.28),
    "dr_grpo": dict(loss_type="dr_grpo", epsilon=0.2, epsilon_high=0.2),
    "gspo": dict(loss_type="grpo", importance_sampling_level="sequence", epsilon=3e-4,
                 epsilon_high=4e-4),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tokenizer = build_char_tokenizer()
    model = build_tiny_moe(TinyModelConfig(**TINY), tokenizer)
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, tokenizer


def trl_trainer(path, tokenizer, tmp_path, beta: float, delta: float | None, **settings) -> GRPOTrainer:
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), beta=beta, delta=delta,
                      max_completion_length=MAX_LEN, per_device_train_batch_size=ROWS,
                      num_generations=GROUP, temperature=TEMPERATURE, use_cpu=True, bf16=False, report_to=[],
                      router_aux_loss_coef=0.0,  # policy losses only; MoE balancing is not compared
                      **settings)
    trainer = GRPOTrainer(model=str(path), reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                          args=args, train_dataset=Dataset.from_dict({"prompt": ["1+2="] * ROWS}),
                          processing_class=tokenizer)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's loop sets for one micro-batch
    return trainer


def random_batch(vocab: int, pad: int, seed: int, log_ratio_scale: float):
    """Equal-length prompts (no prompt padding, so positions agree), ragged completions."""
    g = torch.Generator().manual_seed(seed)
    prompts = torch.randint(3, vocab, (ROWS, PROMPT_LEN), generator=g).tolist()
    lengths = torch.randint(1, MAX_LEN + 1, (ROWS,), generator=g).tolist()
    lengths[0] = MAX_LEN
    completions = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]
    advantages = torch.randn(ROWS, generator=g)
    # per-sequence spread of old/ref logprobs, so some sequences clip and some do not
    spread = log_ratio_scale * torch.rand(ROWS, 1, generator=g) * 2
    old_shift = torch.randn(ROWS, MAX_LEN, generator=g) * spread
    ref_shift = torch.randn(ROWS, MAX_LEN, generator=g) * 0.3
    return prompts, completions, advantages, old_shift, ref_shift


def trl_inputs(prompts, completions, advantages, old, ref, pad):
    completion_ids = torch.full((ROWS, MAX_LEN), pad)
    completion_mask = torch.zeros(ROWS, MAX_LEN, dtype=torch.long)
    for i, c in enumerate(completions):
        completion_ids[i, :len(c)] = torch.tensor(c)
        completion_mask[i, :len(c)] = 1
    return {"prompt_ids": torch.tensor(prompts), "prompt_mask": torch.ones(ROWS, PROMPT_LEN, dtype=torch.long),
            "completion_ids": completion_ids, "completion_mask": completion_mask,
            "advantages": advantages, "old_per_token_logps": old, "ref_per_token_logps": ref,
            "num_items_in_batch": completion_mask.sum()}


def to_rlreason_layout(per_completion_token: torch.Tensor) -> torch.Tensor:
    """TRL's (N, T) completion columns -> rlreason's (N, L-1) next-token positions."""
    out = torch.zeros(ROWS, PROMPT_LEN + MAX_LEN - 1)
    out[:, PROMPT_LEN - 1:] = per_completion_token
    return out


def gradients(model) -> torch.Tensor:
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("beta, unbiased_kl, delta", [
    (0.0, False, None), (0.04, False, None), (0.04, True, None), (0.04, True, 1.5)],
    ids=["no-kl", "kl", "unbiased-kl", "unbiased-kl-two-sided-clip"])
@pytest.mark.parametrize("loss_type", list(CASES))
def test_loss_and_gradient_equal_trls(checkpoint, tmp_path, loss_type, beta, unbiased_kl, delta):
    path, tokenizer = checkpoint
    trainer = trl_trainer(path, tokenizer, tmp_path, beta, delta, use_bias_correction_kl=unbiased_kl,
                          **CASES[loss_type])
    model, pad = trainer.model, tokenizer.pad_token_id
    prompts, completions, advantages, old_shift, ref_shift = random_batch(
        len(tokenizer), pad, seed=7, log_ratio_scale=0.002 if loss_type == "gspo" else 0.3)

    tokens = right_padded(prompts, completions, pad)
    scored = policy_forward(model, tokens, TEMPERATURE)
    logprobs, entropy = scored.logprobs, scored.entropy
    mask = tokens.completion_mask
    current = logprobs.detach()[:, PROMPT_LEN - 1:]  # (N, T) completion columns
    old, ref = current + old_shift, current + ref_shift
    cfg = LossConfig(loss_type=loss_type, delta=delta, beta=beta, unbiased_kl=unbiased_kl,
                     max_completion_length=MAX_LEN)
    ours, stats = policy_loss(logprobs, to_rlreason_layout(old), advantages, mask, cfg,
                              BatchTotals(ROWS, int(mask.sum())), to_rlreason_layout(ref))
    ours.backward()
    our_grads = gradients(model)

    theirs = trainer.compute_loss(model, trl_inputs(prompts, completions, advantages, old, ref, pad))
    theirs.backward()
    their_grads = gradients(model)

    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(our_grads, their_grads, atol=1e-6, rtol=1e-5)
    clipped = (stats["clipped_low"] + stats["clipped_high"]).item()
    assert 0 < clipped < mask.sum().item(), "the batch must exercise both clipped and unclipped tokens"
    our_entropy = ((entropy * mask).sum() / mask.sum()).item()
    assert our_entropy == pytest.approx(trainer._metrics["train"]["entropy"][-1], abs=1e-5)
    if beta:
        assert (stats["kl"] / mask.sum()).item() == pytest.approx(trainer._metrics["train"]["kl"][-1], abs=1e-6)


def test_trl_version_is_the_pinned_one():
    import importlib.metadata as md

    from packaging.requirements import Requirement

    dev = [Requirement(r) for r in md.requires("rlreason") if "extra == \"dev\"" in r]
    pinned = next(r for r in dev if r.name == "trl")
    assert trl.__version__ in pinned.specifier
