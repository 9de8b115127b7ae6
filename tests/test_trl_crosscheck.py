"""rlreason's policy losses against TRL's on identical inputs.

TRL's ``GRPOTrainer`` is built on the same tiny MoE checkpoint and its own ``compute_loss``
scores one batch (prompt and completion ids, masks, advantages, old and reference logprobs);
rlreason scores the same batch through its own path (``right_padded`` ->
``policy_forward`` -> ``policy_loss``) on the very same module. Losses, gradients and the
entropy TRL logs must agree. TRL's version is pinned in pyproject's ``dev`` extra.
"""

import math

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
    "luspo": dict(loss_type="luspo", importance_sampling_level="sequence", epsilon=3e-4, epsilon_high=4e-4),
    "cispo": dict(loss_type="cispo", epsilon_high=5.0),
    "sapo": dict(loss_type="sapo"),  # TRL's default temperatures, rlreason's too
    "vespo": dict(loss_type="vespo"),  # TRL's default k and lambda, rlreason's too
}
# spread of the old policy's log-ratios: small where the clip range is (GSPO's 3e-4), large enough for
# cispo's weight to pass its cap of 5 on some tokens
LOG_RATIO_SCALE = {"gspo": 0.002, "luspo": 0.002, "cispo": 1.2}
NO_HARD_CLIP = {"sapo", "vespo"}


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


def assert_equals_trls(model, ours: torch.Tensor, trainer: GRPOTrainer, inputs: dict) -> torch.Tensor:
    """Our loss and its gradient equal TRL's ``compute_loss`` on ``inputs`` (the same model);
    returns our gradient."""
    ours.backward()
    our_grads = gradients(model)
    theirs = trainer.compute_loss(model, inputs)
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(our_grads, gradients(model), atol=1e-6, rtol=1e-5)
    return our_grads


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
        len(tokenizer), pad, seed=7, log_ratio_scale=LOG_RATIO_SCALE.get(loss_type, 0.3))

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
    assert_equals_trls(model, ours, trainer, trl_inputs(prompts, completions, advantages, old, ref, pad))
    clipped = (stats["clipped_low"] + stats["clipped_high"]).item()
    if loss_type in NO_HARD_CLIP:
        assert clipped == 0
    else:
        assert 0 < clipped < mask.sum().item(), "the batch must exercise both clipped and unclipped tokens"
    if loss_type == "cispo":  # TRL logs the share of tokens whose weight was capped
        share = trainer._metrics["train"]["cispo_clip_ratio"][-1]
        assert stats["clipped_high"].item() / mask.sum().item() == pytest.approx(share, abs=1e-6)
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


def trl_importance_ratio(old, sampling, mask, mode: str, cap: float | None, floor: float | None) -> torch.Tensor:
    """TRL 1.16's ``importance_sampling_ratio`` (``_generate_and_score_completions``), transcribed."""
    diff = (old - sampling) * mask
    ratio = torch.exp(diff.sum(dim=-1, keepdim=True) if mode.startswith("sequence") else diff)
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=floor, max=cap)
    low = floor if floor is not None else -math.inf
    high = cap if cap is not None else math.inf
    return ratio.masked_fill((ratio < low) | (ratio > high), 0.0)


# selection -> (rlreason settings, TRL settings); corrections as TRL's vllm_importance_sampling_mode
SELECTIONS = {
    "token_truncate": ({"correction": ("token", "truncate", 3.0, 0.5)}, {}),
    "token_mask_icepop": ({"correction": ("token", "mask", 2.0, 0.5)}, {}),
    "sequence_truncate": ({"correction": ("sequence", "truncate", 3.0, None)}, {}),
    "sequence_mask": ({"correction": ("sequence", "mask", 3.0, 0.2)}, {}),
    "opsm": ({"off_policy_mask_threshold": 0.5}, {"off_policy_mask_threshold": 0.5}),
    "top_entropy": ({"top_entropy_quantile": 0.2}, {"top_entropy_quantile": 0.2}),
}


@pytest.mark.parametrize("beta", [0.0, 0.04], ids=["no-kl", "kl"])
@pytest.mark.parametrize("loss_type, selection", [(loss, sel) for loss in ("grpo", "dapo") for sel in SELECTIONS]
                         + [("vespo", "token_truncate"), ("vespo", "token_mask_icepop"), ("vespo", "opsm"),
                            ("cispo", "top_entropy"), ("sapo", "sequence_mask")])
def test_corrections_and_selections_equal_trls(checkpoint, tmp_path, loss_type, selection, beta):
    """Rollout corrections (TIS/MIS per token and per sequence, with both bounds), the off-policy
    sequence mask and top-entropy token selection: the loss and every gradient within 1e-6 of TRL's
    ``compute_loss`` fed the same rollout-engine logprobs."""
    from rlreason.losses import high_entropy_tokens, off_policy_sequences, rollout_correction

    ours_settings, trl_settings = SELECTIONS[selection]
    path, tokenizer = checkpoint
    trainer = trl_trainer(path, tokenizer, tmp_path, beta, None, use_bias_correction_kl=False, **CASES[loss_type],
                          **trl_settings)
    model, pad = trainer.model, tokenizer.pad_token_id
    prompts, completions, advantages, old_shift, ref_shift = random_batch(
        len(tokenizer), pad, seed=11, log_ratio_scale=LOG_RATIO_SCALE.get(loss_type, 0.3))
    g = torch.Generator().manual_seed(5)
    # the rollout engine's logprobs: each sequence off by its own offset (some far, some near)
    sampling_shift = (torch.rand(ROWS, 1, generator=g) * 2 - 0.6) + torch.randn(ROWS, MAX_LEN, generator=g) * 0.3

    tokens = right_padded(prompts, completions, pad)
    scored = policy_forward(model, tokens, TEMPERATURE)
    logprobs, mask = scored.logprobs, tokens.completion_mask
    current = logprobs.detach()[:, PROMPT_LEN - 1:]
    old, ref, sampling = current + old_shift, current + ref_shift, current + old_shift + sampling_shift
    completion_mask = mask[:, PROMPT_LEN - 1:]
    inputs = trl_inputs(prompts, completions, advantages, old, ref, pad)
    inputs["sampling_per_token_logps"] = sampling
    correction = keep = None
    if "correction" in ours_settings:
        level, mode, cap, floor = ours_settings["correction"]
        weights, bounded = rollout_correction(to_rlreason_layout(old), to_rlreason_layout(sampling), mask,
                                              level, cap, floor, mode)
        assert 0 < (bounded.expand_as(mask) * mask).sum() < mask.sum(), "some weights must hit a bound"
        trainer.use_vllm = trainer.vllm_importance_sampling_correction = True
        theirs_ratio = trl_importance_ratio(old, sampling, completion_mask, f"{level}_{mode}", cap, floor)
        assert torch.allclose(weights.expand_as(mask)[:, PROMPT_LEN - 1:] * completion_mask,
                              theirs_ratio.expand_as(completion_mask) * completion_mask, atol=1e-6)
        inputs["importance_sampling_ratio"] = theirs_ratio
        correction = weights
    if "off_policy_mask_threshold" in ours_settings:
        keep = off_policy_sequences(advantages, logprobs, to_rlreason_layout(sampling), mask,
                                    ours_settings["off_policy_mask_threshold"])
        assert 0 < keep.sum() < ROWS, "some sequences must be dropped and some kept"
    if "top_entropy_quantile" in ours_settings:
        keep = high_entropy_tokens(scored.entropy, mask, ours_settings["top_entropy_quantile"])
    cfg = LossConfig(loss_type=loss_type, beta=beta, max_completion_length=MAX_LEN)
    ours, _ = policy_loss(logprobs, to_rlreason_layout(old), advantages, mask, cfg,
                          BatchTotals(ROWS, int(mask.sum())), to_rlreason_layout(ref), correction, keep)
    assert_equals_trls(model, ours, trainer, inputs)


@pytest.mark.parametrize("loss_type, top_entropy", [("grpo", False), ("dapo", True), ("cispo", False),
                                                    ("vespo", True)])
def test_entropy_bonus_equals_trls(checkpoint, tmp_path, loss_type, top_entropy):
    """A fixed entropy coefficient: the loss minus coef x mean entropy (over the top-entropy tokens
    when they are selected), its gradient through the entropy included, within 1e-6 of TRL's."""
    from rlreason.losses import entropy_bonus, high_entropy_tokens

    coef, quantile = 0.3, 0.2
    path, tokenizer = checkpoint
    trainer = trl_trainer(path, tokenizer, tmp_path, 0.0, None, entropy_coef=coef,
                          top_entropy_quantile=quantile if top_entropy else 1.0, **CASES[loss_type])
    model, pad = trainer.model, tokenizer.pad_token_id
    prompts, completions, advantages, old_shift, ref_shift = random_batch(
        len(tokenizer), pad, seed=3, log_ratio_scale=LOG_RATIO_SCALE.get(loss_type, 0.3))
    tokens = right_padded(prompts, completions, pad)
    scored = policy_forward(model, tokens, TEMPERATURE, entropy_grad=True)
    logprobs, entropy, mask = scored.logprobs, scored.entropy, tokens.completion_mask
    assert entropy.requires_grad
    current = logprobs.detach()[:, PROMPT_LEN - 1:]
    old, ref = current + old_shift, current + ref_shift
    chosen = high_entropy_tokens(entropy.detach(), mask, quantile) if top_entropy else None
    cfg = LossConfig(loss_type=loss_type, max_completion_length=MAX_LEN)
    policy, _ = policy_loss(logprobs, to_rlreason_layout(old), advantages, mask, cfg,
                            BatchTotals(ROWS, int(mask.sum())), keep=chosen)
    ours = policy - coef * entropy_bonus(entropy, mask, int(mask.sum()), 1, chosen)
    our_grads = assert_equals_trls(model, ours, trainer, trl_inputs(prompts, completions, advantages, old, ref, pad))
    # the bonus moves the gradient: it is not the policy loss's alone
    policy_only = policy_loss(policy_forward(model, tokens, TEMPERATURE).logprobs, to_rlreason_layout(old),
                              advantages, mask, cfg, BatchTotals(ROWS, int(mask.sum())), keep=chosen)[0]
    policy_only.backward()
    assert not torch.allclose(our_grads, gradients(model), atol=1e-6)


def test_adaptive_entropy_control_steps_as_trls(checkpoint, tmp_path):
    """Adaptive control (Skywork-OR1, TRL's use_adaptive_entropy): no bonus on the first step (no
    entropy measured yet); after each step the coefficient moves by its delta towards the target,
    and the next step applies it only while the entropy is at or below the target."""
    from rlreason.losses import adapted_entropy_coef, entropy_bonus

    settings = dict(entropy_coef=0.1, entropy_coef_delta=0.02, entropy_coef_min=0.0, entropy_coef_max=0.11,
                    entropy_target=50.0)  # above any entropy of this vocabulary: the coefficient rises
    path, tokenizer = checkpoint
    trainer = trl_trainer(path, tokenizer, tmp_path, 0.0, None, use_adaptive_entropy=True, **settings,
                          **CASES["grpo"])
    model, pad = trainer.model, tokenizer.pad_token_id
    prompts, completions, advantages, old_shift, ref_shift = random_batch(len(tokenizer), pad, seed=9,
                                                                          log_ratio_scale=0.3)
    tokens = right_padded(prompts, completions, pad)
    cfg = LossConfig(loss_type="grpo", max_completion_length=MAX_LEN)
    coef, last_entropy = settings["entropy_coef"], math.inf
    for _ in range(3):
        scored = policy_forward(model, tokens, TEMPERATURE, entropy_grad=True)
        mask = tokens.completion_mask
        current = scored.logprobs.detach()[:, PROMPT_LEN - 1:]
        old, ref = current + old_shift, current + ref_shift
        applied = coef if last_entropy <= settings["entropy_target"] else 0.0
        policy, _ = policy_loss(scored.logprobs, to_rlreason_layout(old), advantages, mask, cfg,
                                BatchTotals(ROWS, int(mask.sum())))
        ours = policy - applied * entropy_bonus(scored.entropy, mask, int(mask.sum()), 1)
        assert_equals_trls(model, ours, trainer, trl_inputs(prompts, completions, advantages, old, ref, pad))
        last_entropy = entropy_bonus(scored.entropy.detach(), mask, int(mask.sum()), 1).item()
        coef = adapted_entropy_coef(coef, last_entropy, settings["entropy_target"], settings["entropy_coef_delta"],
                                    settings["entropy_coef_min"], settings["entropy_coef_max"])
        assert trainer.entropy_coef == pytest.approx(coef, abs=1e-12)
        assert trainer._last_world_entropy == pytest.approx(last_entropy, abs=1e-5)
    assert coef == settings["entropy_coef_max"]  # 0.1 -> 0.11 (capped) -> 0.11
