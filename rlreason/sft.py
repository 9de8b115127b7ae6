"""Supervised fine-tuning on (prompt, target) pairs: the cold start before RL.

Cross-entropy on the target tokens only (prompt and padding masked), averaged over all
target tokens of the step, across processes; the target ends with EOS so the model learns to stop.
"""

from __future__ import annotations

from pathlib import Path

from rlreason.data import render_completion
from rlreason.distributed import backward_share, micro_batch, summed
from rlreason.recipe import Recipe
from rlreason.sequences import micro_batches, right_padded, sequence_logprobs
from rlreason.optimizer import optimizer_step
from rlreason.session import Session, open_session
from rlreason.trainer import RunResult, run_steps


def sft(recipe: Recipe, resume: Path | None = None) -> RunResult:
    """Fine-tune the recipe's model on its data's completion template (from checkpoint
    ``resume`` of the run, if given)."""
    return run_steps(open_session(recipe, "sft", resume=resume), sft_step)


def sft_step(session: Session, step: int) -> dict[str, float]:
    examples = session.sampler.next_batch()
    tokenizer, accelerator = session.tokenizer, session.accelerator
    prompt_ids = session.prompt_ids(examples)
    targets = [render_completion(e, session.recipe.data) for e in examples]
    target_ids = [ids + [tokenizer.eos_token_id]
                  for ids in tokenizer(targets, add_special_tokens=False).input_ids]
    num_tokens, = summed(accelerator, [sum(map(len, target_ids))])  # of the global batch
    chunks = micro_batches(len(examples), session.recipe.trainer.micro_batch_size)
    total = 0.0
    session.model.train()
    for k, idx in enumerate(chunks):
        batch = right_padded([prompt_ids[i] for i in idx], [target_ids[i] for i in idx],
                             tokenizer.pad_token_id, accelerator.device)
        with micro_batch(accelerator, session.model, last=k == len(chunks) - 1):
            logprobs = sequence_logprobs(session.model, batch)  # (n, L-1)
            loss = -(logprobs * batch.completion_mask).sum() / num_tokens
            backward_share(accelerator, loss)
        total += loss.item()
    grad_norm = optimizer_step(session)
    total, = summed(accelerator, [total])
    metrics = {"loss": total, "grad_norm": grad_norm, "lr": session.scheduler.get_last_lr()[0]}
    session.log.metrics(step, metrics)
    return metrics
