"""Supervised fine-tuning on (prompt, target) pairs: the cold start before RL.

Cross-entropy on the target tokens only (prompt and padding masked), averaged over all
target tokens of the step, across processes; the target ends with EOS so the model learns to stop.
A conversation (``chat.py``) is learned on its assistant turns only, each through the end-of-turn
token its chat template closes it with; one that does not end with an assistant turn gets the
completion template as its last.
"""

from __future__ import annotations

from pathlib import Path

from rlreason.chat import is_conversation
from rlreason.data import Example, render_completion
from rlreason.distributed import backward_share, micro_batch, summed
from rlreason.optimizer import optimizer_step
from rlreason.recipe import Recipe
from rlreason.sequences import masked_right_padded, micro_batches, sequence_logprobs
from rlreason.session import Session, open_session
from rlreason.trainer import RunResult, run_steps


def sft(recipe: Recipe, resume: Path | None = None) -> RunResult:
    """Fine-tune the recipe's model on its data's completion template (from checkpoint
    ``resume`` of the run, if given)."""
    return run_steps(open_session(recipe, "sft", resume=resume), sft_step)


def sft_step(session: Session, step: int) -> dict[str, float]:
    examples = session.sampler.next_batch()
    accelerator = session.accelerator
    sequences, learned = zip(*(training_tokens(session, e) for e in examples))
    num_tokens, = summed(accelerator, [sum(map(sum, learned))])  # of the global batch
    chunks = micro_batches(len(examples), session.recipe.trainer.micro_batch_size)
    total = 0.0
    session.model.train()
    for k, idx in enumerate(chunks):
        batch = masked_right_padded([sequences[i] for i in idx], [learned[i] for i in idx],
                                    session.tokenizer.pad_token_id, accelerator.device)
        with micro_batch(accelerator, session.model, last=k == len(chunks) - 1):
            logprobs = sequence_logprobs(session.model, batch,  # (n, L-1)
                                         logits_chunk_tokens=session.recipe.trainer.logits_chunk_tokens)
            loss = -(logprobs * batch.completion_mask).sum() / num_tokens
            backward_share(accelerator, loss)
        total += loss.item()
    grad_norm = optimizer_step(session)
    total, = summed(accelerator, [total])
    metrics = {"loss": total, "grad_norm": grad_norm, "lr": session.scheduler.get_last_lr()[0]}
    session.log.metrics(step, metrics)
    return metrics


def training_tokens(session: Session, example: Example) -> tuple[list[int], list[int]]:
    """An example's token ids and 1 on each token SFT learns: the target (then EOS) after a
    plain-text prompt, or a conversation's assistant turns."""
    data, tokenizer = session.recipe.data, session.tokenizer
    if not is_conversation(example.prompt):
        prompt, = session.prompt_ids([example])
        target = tokenizer(render_completion(example, data), add_special_tokens=False).input_ids
        target.append(tokenizer.eos_token_id)
        return prompt + target, [0] * len(prompt) + [1] * len(target)
    conversation = example.prompt
    if conversation[-1]["role"] != "assistant":
        conversation = [*conversation, {"role": "assistant", "content": render_completion(example, data)}]
    return session.prompts.assistant_tokens(conversation, session.engine.stop_ids)  # the tokens generation stops at
