"""Held-out evaluation: greedy completions scored by the recipe's rewards, or k sampled
completions per problem with pass@k and maj@k."""

from __future__ import annotations

from dataclasses import dataclass

from rewards import RewardSuite
from rewards.math_extract import extract_answer
from rlreason.chat import PromptRenderer
from rlreason.data import Example, load_eval_examples, score_completions
from rlreason.models import load_policy, load_tokenizer
from rlreason.pass_at_k import k_values, majority_correct, pass_at_k
from rlreason.preflight import check_recipe
from rlreason.recipe import Recipe
from rlreason.rollout import RolloutEngine, make_engine


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    metrics: dict[str, float]
    samples: list[dict]


def evaluate(engine: RolloutEngine, prompts: PromptRenderer, examples: list[Example], suite: RewardSuite,
             metric: str | None, batch_size: int, max_new_tokens: int) -> EvalResult:
    """Greedy-decode every example; ``accuracy`` is the mean of reward ``metric``."""
    metric = checked_metric(suite, metric)
    texts, completion_ids = completions(engine, prompts, examples, 1, batch_size, max_new_tokens)
    scores = score_completions(suite, examples, texts, 1, completion_ids)
    metrics = reward_and_length_means(scores, completion_ids)
    metrics["accuracy"] = metrics[f"reward/{metric}"]
    samples = [{"prompt": prompts.text(e.prompt), "completion": t, "score": s}
               for e, t, s in zip(examples, texts, scores.per_function[metric])]
    return EvalResult(accuracy=metrics["accuracy"], metrics=metrics, samples=samples)


def evaluate_sampled(engine: RolloutEngine, prompts: PromptRenderer, examples: list[Example], suite: RewardSuite,
                     metric: str | None, k: int, batch_size: int, max_new_tokens: int, seed: int) -> EvalResult:
    """``k`` sampled completions per example (the recipe's rollout temperature, each problem
    seeded from ``seed`` and its index). A sample solves its problem when reward ``metric``
    gives it full marks (1.0). Reports pass@j for j = 1, 2, 4 ... k (unbiased estimator over
    the k samples), maj@k when the metric is ``math_accuracy`` (vote over extracted answers),
    the mean of every reward over all samples and the mean completion length."""
    metric = checked_metric(suite, metric)
    texts, completion_ids = completions(engine, prompts, examples, k, max(1, batch_size // k),
                                        max_new_tokens, seed)
    scores = score_completions(suite, examples, texts, k, completion_ids)
    solved = [score is not None and score >= 1.0 for score in scores.per_function[metric]]
    voting = metric == "math_accuracy"
    answers = [extract_answer(text) for text in texts] if voting else [None] * len(texts)
    metrics = {f"pass@{j}": sum(pass_at_k(k, sum(solved[i * k:(i + 1) * k]), j) for i in range(len(examples)))
               / len(examples) for j in k_values(k)}
    if voting:
        metrics[f"maj@{k}"] = sum(majority_correct(answers[i * k:(i + 1) * k], solved[i * k:(i + 1) * k])
                                  for i in range(len(examples))) / len(examples)
    metrics.update(reward_and_length_means(scores, completion_ids))
    samples = [{"problem": i // k, "prompt": prompts.text(examples[i // k].prompt), "completion": text,
                "scores": {name: values[i] for name, values in scores.per_function.items()},
                **({"answer": answers[i]} if voting else {})}
               for i, text in enumerate(texts)]
    return EvalResult(accuracy=metrics["pass@1"], metrics=metrics, samples=samples)


def checked_metric(suite: RewardSuite, metric: str | None) -> str:
    """The reward reported as accuracy: ``evaluation.metric``, or the first reward."""
    metric = metric or suite.names[0]
    if metric not in suite.names:
        raise ValueError(f"evaluation.metric: {metric!r} is not one of the rewards "
                         f"({', '.join(suite.names)})")
    return metric


def completions(engine: RolloutEngine, prompts: PromptRenderer, examples: list[Example], n: int, per_call: int,
                max_new_tokens: int, seed: int | None = None) -> tuple[list[str], list[list[int]]]:
    """``n`` completions per example, ``per_call`` examples per generate call, grouped example by
    example: greedy without ``seed``, else sampled with each example seeded from ``seed`` and its
    index (the same samples on every rerun)."""
    texts, completion_ids = [], []
    for lo in range(0, len(examples), per_call):
        chunk = examples[lo:lo + per_call]
        prompt_ids = prompts.ids([e.prompt for e in chunk])
        seeds = None if seed is None else [seed * 1_000_003 + lo + i for i in range(len(chunk))]
        rollouts = engine.generate(prompt_ids, n=n, greedy=seed is None, max_new_tokens=max_new_tokens, seeds=seeds)
        texts += prompts.tokenizer.batch_decode(rollouts.completion_ids, skip_special_tokens=True)
        completion_ids += rollouts.completion_ids
    return texts, completion_ids


def reward_and_length_means(scores, completion_ids: list[list[int]]) -> dict[str, float]:
    """The mean of every reward (over the completions it applies to) and the mean length."""
    means = {f"reward/{name}": mean(values) for name, values in scores.per_function.items()}
    means["completion_length"] = sum(map(len, completion_ids)) / len(completion_ids)
    return means


def evaluate_recipe(recipe: Recipe, k: int | None = None) -> EvalResult:
    """The recipe's model on its evaluation data: greedy accuracy, or with ``k`` samples per
    problem pass@k and maj@k (see ``evaluate_sampled``); writes nothing."""
    checked = check_recipe(recipe)
    suite, examples = checked.suite, load_eval_examples(recipe.data)
    tokenizer = load_tokenizer(recipe.model)
    prompts = PromptRenderer(tokenizer, recipe.data)
    prompt_ids = prompts.ids([e.prompt for e in examples])  # a template error: before the weights load
    loaded = load_policy(recipe.model, tokenizer)
    engine = make_engine(recipe, checked.backend, loaded.model, tokenizer, prompt_ids)
    if k is not None:
        return evaluate_sampled(engine, prompts, examples, suite, recipe.evaluation.metric, k,
                                recipe.evaluation.batch_size, recipe.rollout.max_new_tokens, recipe.trainer.seed)
    return evaluate(engine, prompts, examples, suite, recipe.evaluation.metric,
                    recipe.evaluation.batch_size, recipe.rollout.max_new_tokens)


def mean(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")
