"""Recipe: YAML -> typed, validated dataclasses.

Each dataclass below is the single source of defaults and help text. YAML keys map 1:1
to fields; an unknown key, a wrong type or a bad value is a one-line ``RecipeError``
naming the key path (and, for typos, the closest valid key) before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rewards.suite import DEFAULT_TIMEOUT_S, TIMEOUTS_IN_A_ROW
from rlreason.loss_variants import VARIANTS


class RecipeError(ValueError):
    """A recipe (file or override) that cannot be used; the message names the key."""


def option(default: Any = None, help: str = "", check=None, must: str = "", factory=None):
    """A dataclass field with help text and an optional value check (``check(v) -> bool``)."""
    metadata = {"help": help, "check": check, "must": must}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def positive(v) -> bool:
    return v > 0


def non_negative(v) -> bool:
    return v >= 0


@dataclass
class TinyModelConfig:
    """A small random-init MoE built by the code (for the demo and tests)."""

    architecture: Literal["qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "deepseek_v2", "deepseek_v3",
                          "gpt_oss"] = option(
        "qwen3_moe", "MoE family: its transformers config at this size (deepseek_v2/v3: latent "
        "attention, shared experts; v3: grouped top-k; qwen2_moe: shared expert).")
    hidden_size: int = option(128, "Model width.", positive, "> 0")
    num_layers: int = option(2, "Decoder layers.", positive, "> 0")
    num_heads: int = option(4, "Attention heads.", positive, "> 0")
    num_kv_heads: int = option(2, "Key/value heads (grouped-query attention).", positive, "> 0")
    num_experts: int = option(4, "Routed experts per MoE layer.", positive, "> 0")
    experts_per_token: int = option(2, "Experts each token is routed to (top-k).", positive, "> 0")
    expert_intermediate_size: int = option(256, "Hidden size of each expert MLP.", positive, "> 0")
    max_position_embeddings: int = option(512, "Longest sequence the model supports.", positive, "> 0")
    seed: int = option(0, "Seed of the random initialisation.")
    tokenizer: Literal["characters", "chatml", "deepseek"] = option(
        "characters", "One token per character (the demo), or a byte-level BPE with a real chat "
        "template: chatml (Qwen's, with enable_thinking) or deepseek (DeepSeek-V3's).")


@dataclass
class LoraConfig:
    """LoRA adapters through peft."""

    r: int = option(16, "Adapter rank.", positive, "> 0")
    alpha: int = option(32, "Scaling numerator (lora_alpha).", positive, "> 0")
    dropout: float = option(0.0, "Dropout on the adapter input.", lambda v: 0 <= v < 1, "in [0, 1)")
    target_modules: list[str] = option(
        help="Module names to adapt; 'all-linear' adapts every linear layer but the output head.",
        factory=lambda: ["all-linear"],
    )
    target_parameters: list[str] = option(
        help="Parameters to adapt directly (peft's parameter targets), e.g. MoE experts stored as "
        "3-D tensors: [mlp.experts.gate_up_proj, mlp.experts.down_proj].", factory=list)


@dataclass
class ModelConfig:
    name_or_path: str | None = option(
        None, "Hub id or local directory of a causal LM; null builds the tiny model below."
    )
    tiny: TinyModelConfig = option(help="Shape of the tiny model built when name_or_path is null.",
                                   factory=TinyModelConfig)
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "Weights dtype.")
    lora: LoraConfig | None = option(None, "Train LoRA adapters instead of all weights.")
    trust_remote_code: bool = option(False, "Allow model code from the hub.")
    experts_implementation: Literal["auto", "eager", "grouped_mm", "batched_mm"] = option(
        "auto", "Kernel of the MoE experts in the policy's own forward passes (the update; the hf "
        "backend's decoding): transformers' experts_implementation. auto: transformers' pick, grouped_mm "
        "where it can use it, else eager (on CPU the two are within run-to-run noise of each other, "
        "docs/experts-kernels.md; batched_mm runs out of memory on long batches).")


@dataclass
class SyntheticConfig:
    """Deterministic arithmetic problems: 'a+b=' -> the exact integer.

    Rows have ``question``, ``answer`` (exact) and ``demonstration`` (a teacher's answer,
    wrong at ``teacher_error_rate`` where the problem needs a carry or borrow).
    """

    max_operand: int = option(99, "Operands are drawn from 0..max_operand.", positive, "> 0")
    operations: str = option("+-", "Operators to draw from (any of '+-*').",
                             lambda v: bool(v) and set(v) <= set("+-*"), "a non-empty subset of '+-*'")
    num_train: int = option(20000, "Training problems.", positive, "> 0")
    teacher_error_rate: float = option(
        0.0, "Share of 'demonstration' answers (the SFT targets) in which the teacher forgets "
        "to carry or borrow; 'answer' is always exact.", lambda v: 0 <= v <= 1, "in [0, 1]")
    zero_pad: bool = option(
        False, "Fixed-width problems: operands at max_operand's width and the teacher's answers at "
        "the widest result's, with leading zeros ('07+85=' -> '092'), so each digit of a place "
        "sits at the same position in every row ('answer' stays the plain integer).")
    seed: int = option(0, "Seed of the problem generator.")


@dataclass
class DataConfig:
    source: str = option(
        "synthetic", "'synthetic', a local .jsonl/.json/.parquet/.csv file, or a hub dataset name."
    )
    split: str = option("train", "Split of a hub dataset used for training.")
    subset: str | None = option(None, "Configuration of a hub source that has several (e.g. 'main' "
                                "for openai/gsm8k).")
    eval_source: str | None = option(
        None, "Held-out data; null holds out num_eval rows of source, never trained on."
    )
    eval_split: str = option("test", "Split of a hub eval_source.")
    eval_subset: str | None = option(None, "Configuration of a hub eval_source that has several.")
    num_eval: int = option(200, "Held-out problems used for evaluation.", positive, "> 0")
    prompt_column: str = option("question", "Column holding the problem text.")
    answer_column: str = option("answer", "Column holding the reference answer.")
    prompt_template: str = option("{prompt}", "Python format string over a plain-text prompt; {prompt} "
                                  "and any column.")
    chat_template: Literal["auto", True, False] = option(
        "auto", "Render prompts with the tokenizer's chat template: auto = prompts that are "
        "conversations (lists of {role, content} messages) are, plain text stays raw; true = a "
        "plain-text prompt becomes one user turn; false = never (conversations are an error).")
    system_prompt: str | None = option(None, "A system turn put first in every templated prompt that "
                                       "has none of its own.")
    chat_template_kwargs: dict = option(
        help="Switches the chat template reads, e.g. {enable_thinking: false} for Qwen3.", factory=dict)
    completion_template: str = option(
        "{answer}", "SFT target, a format string over the columns ({answer} = answer column); for a "
        "conversation, its answer turn when it does not end with assistant turns (those are learned).")
    shuffle_seed: int = option(0, "Seed of the training-order shuffle.")
    synthetic: SyntheticConfig = option(help="Settings of source: synthetic.", factory=SyntheticConfig)


@dataclass
class VLLMConfig:
    """Settings of the vLLM engine (rollout.backend: vllm)."""

    gpu_memory_utilization: float = option(
        0.3, "Share of accelerator memory (on CPU: of the KV-cache budget) the engine may take; "
        "the trainer needs the rest.", lambda v: 0 < v < 1, "in (0, 1)")
    tensor_parallel_size: int = option(1, "GPUs each engine shards the model over.", positive, "> 0")
    sleep_mode: bool = option(
        False, "GPU only: offload weights and drop the KV cache between rollouts, so the trainer "
        "gets the memory back.")
    max_model_len: int | None = option(
        None, "Longest prompt + completion; null = longest prompt of the data + max_new_tokens.",
        lambda v: v is None or v > 0, "> 0 or null")
    kv_cache_memory_gb: float | None = option(
        None, "KV cache size in GiB, exactly (overrides gpu_memory_utilization for the cache): on "
        "CPU, where the engine otherwise reserves gpu_memory_utilization of all RAM, size it to the "
        "batch (prompts x num_generations x max_model_len tokens).", lambda v: v is None or v > 0, "> 0 or null")


@dataclass
class HFGenerateConfig:
    """Settings of the hf backend (transformers ``generate`` on the policy)."""

    static_cache: bool = option(
        False, "Preallocated KV cache of fixed shape (prompts left-padded to a multiple of "
        "pad_prompts_to). On GPUs transformers then compiles the decoding step (torch.compile, CUDA "
        "graphs): the first batch of each shape pays the compilation, later ones decode several "
        "times faster. On CPU it is slower than the default dynamic cache.")
    pad_prompts_to: int = option(64, "With static_cache: prompt widths are rounded up to a multiple of "
                                 "this, so batches repeat the compiled shapes.", positive, "> 0")
    drop_finished_rows: bool = option(
        True, "Rows leave the decoding batch when their completion ends (as in vLLM), instead of "
        "decoding until the longest ends (transformers generate; used anyway with static_cache, "
        "rollout.stop strings, or FSDP).")


@dataclass
class RolloutServerConfig:
    """Where the rollout worker of ``rollout.mode: server`` answers, and how long to wait for it."""

    url: str = option("http://127.0.0.1:8300", "Address of the worker (`rlreason rollout-worker RECIPE "
                      "--host H --port P`).", lambda v: v.startswith(("http://", "https://")), "an http(s):// URL")
    answer_within_s: float = option(
        5.0, "Seconds the worker may leave /health unanswered (dead, hung, unreachable) before the run "
        "stops with an error naming it.", positive, "> 0")
    channel_timeout_s: float = option(
        120.0, "Seconds the weight channel waits for its other end (rendezvous, each broadcast).", positive,
        "> 0")


@dataclass
class RolloutConfig:
    mode: Literal["colocate", "server"] = option(
        "colocate", "Where generation runs: colocate (the engine in every training process, taking turns "
        "with the update) or server (a rollout worker process of its own, at rollout.server.url, started "
        "with `rlreason rollout-worker RECIPE`; vLLM only). See docs/rollouts.md.")
    server: RolloutServerConfig = option(help="The rollout worker of mode server.", factory=RolloutServerConfig)
    max_staleness: int = option(
        0, "Mode server: how many policy versions a trained sample may lag (0: on-policy, generation and "
        "update take turns). K > 0: the worker generates the batches of the next K steps while the trainer "
        "updates; needs algo.rollout_correction.", non_negative, ">= 0")
    backend: Literal["auto", "vllm", "hf"] = option(
        "auto", "Generation backend: vllm, hf (transformers generate), or auto (vllm when "
        "installed).")
    num_generations: int = option(8, "Completions per prompt (G).", lambda v: v >= 2, ">= 2")
    temperature: float = option(1.0, "Sampling temperature.", positive, "> 0")
    top_p: float = option(1.0, "Nucleus sampling mass.", lambda v: 0 < v <= 1, "in (0, 1]")
    top_k: int = option(0, "Keep the k most likely tokens; 0 keeps all.", non_negative, ">= 0")
    max_new_tokens: int = option(64, "Longest completion.", positive, "> 0")
    min_new_tokens: int = option(0, "Shortest completion: end-of-sequence is suppressed until then "
                                 "(= max_new_tokens gives fixed-length completions, for benchmarks).",
                                 non_negative, ">= 0")
    stop: list[str] = option(help="Strings that end a completion (kept in it).", factory=list)
    vllm: VLLMConfig = option(help="Settings of the vllm backend.", factory=VLLMConfig)
    hf: HFGenerateConfig = option(help="Settings of the hf backend.", factory=HFGenerateConfig)


@dataclass
class RewardSpec:
    name: str = option("", "Registered name or 'package.module:function'.", bool, "non-empty")
    weight: float = option(1.0, "Weight of this reward in the sum.")
    args: dict[str, Any] = option(help="Keyword arguments bound to the function.", factory=dict)
    timeout_s: float = option(
        DEFAULT_TIMEOUT_S, "Seconds one call of this reward may take. Past it the rows it held score None "
        "(left out, counted as reward/<name>/timeouts) and the call is abandoned; timing out on "
        f"{TIMEOUTS_IN_A_ROW} calls in a row stops the run, after saving a checkpoint.", positive, "> 0")


@dataclass
class AlgoConfig:
    loss_type: Literal[tuple(VARIANTS)] = option(  # the names loss_variants.VARIANTS defines
        "grpo",
        "Policy loss: grpo (token mean per sequence), bnpo (token mean over the batch), dapo (bnpo "
        "+ clip-higher), dr_grpo (token sum / constant), gspo / gspo_token (sequence-level ratio), "
        "luspo (gspo, each sequence weighted by its length), cispo (clipped stop-gradient weight), "
        "sapo (soft gate), vespo (gamma-weighted sequence ratio), clip_cov / kl_cov (covariance-selected "
        "tokens clipped or KL-penalised, against entropy collapse). See docs/algorithms.md.",
    )
    scale_rewards: Literal["group", "batch", "none"] = option(
        "group", "Divide advantages by the std of the group, of the batch, or not (Dr. GRPO)."
    )
    baseline: Literal["mean", "leave_one_out"] = option(
        "mean", "Subtract the group mean, or the mean of the other completions (RLOO)."
    )
    normalise_each_reward: bool = option(
        False, "Group-normalise each reward function before the weighted sum."
    )
    epsilon: float | None = option(
        None, "Lower clip range of the importance ratio; null = the loss_type's (0.2; gspo 3e-4).",
        lambda v: v is None or v > 0, "> 0 or null")
    epsilon_high: float | None = option(
        None, "Upper clip range; null = the loss_type's (0.2; dapo 0.28; gspo, luspo 4e-4). cispo: the "
        "cap of its importance weight (epsilon_max, default 5.0).",
        lambda v: v is None or v > 0, "> 0 or null")
    delta: float | None = option(
        None, "Two-sided clip: cap the unclipped ratio at delta (e.g. 4); null = off.",
        lambda v: v is None or v > 1, "> 1 or null")
    sapo_temperature_pos: float = option(
        1.0, "sapo: gate temperature of tokens with a positive advantage.", positive, "> 0")
    sapo_temperature_neg: float = option(
        1.05, "sapo: gate temperature of the other tokens.", positive, "> 0")
    vespo_k_pos: float = option(2.0, "vespo: power k of phi(w) for advantages >= 0.", non_negative, ">= 0")
    vespo_lambda_pos: float = option(3.0, "vespo: decay lambda of phi(w) for advantages >= 0.", positive, "> 0")
    vespo_k_neg: float = option(3.0, "vespo: power k of phi(w) for negative advantages.", non_negative, ">= 0")
    vespo_lambda_neg: float = option(2.0, "vespo: decay lambda of phi(w) for negative advantages.", positive,
                                     "> 0")
    clip_cov_ratio: float = option(
        2e-4, "clip_cov: share of the micro-batch's tokens taken out of the gradient.", lambda v: 0 < v <= 1,
        "in (0, 1]")
    clip_cov_lb: float = option(1.0, "clip_cov: lower bound of the covariance of the tokens it may drop.")
    clip_cov_ub: float = option(5.0, "clip_cov: upper bound of that covariance (above clip_cov_lb).")
    kl_cov_ratio: float = option(
        2e-4, "kl_cov: share of the micro-batch's tokens (highest covariance first) that get the KL "
        "penalty.", lambda v: 0 < v <= 1, "in (0, 1]")
    kl_cov_coef: float = option(1.0, "kl_cov: weight of |log pi - log pi_old| on those tokens (verl's "
                                "ppo_kl_coef).", non_negative, ">= 0")
    entropy_coef: float = option(
        0.0, "Entropy bonus: subtract this times the mean token entropy (of the top-entropy tokens "
        "when they are selected) from the loss; with use_adaptive_entropy, its starting value.",
        non_negative, ">= 0")
    use_adaptive_entropy: bool = option(
        False, "Skywork-OR1's adaptive entropy control (TRL's): after each optimizer step the "
        "coefficient rises by entropy_coef_delta while the mean entropy is at or below "
        "entropy_target and falls by it otherwise; it applies only while the entropy is at or below "
        "the target.")
    entropy_coef_min: float = option(0.0, "use_adaptive_entropy: lowest coefficient.", non_negative, ">= 0")
    entropy_coef_max: float = option(1.0, "use_adaptive_entropy: highest coefficient.", non_negative, ">= 0")
    entropy_coef_delta: float = option(0.005, "use_adaptive_entropy: step of the coefficient.", non_negative,
                                       ">= 0")
    entropy_target: float = option(0.2, "use_adaptive_entropy: target mean token entropy (nats).",
                                   non_negative, ">= 0")
    beta: float = option(0.0, "KL (k3) coefficient to the reference model; 0 loads no reference.",
                         non_negative, ">= 0")
    unbiased_kl: bool = option(
        False, "Weight the k3 KL term by the importance ratio (unbiased reverse-KL gradient, "
        "DeepSeek-V3.2).")
    num_iterations: int = option(
        1, "Policy updates per generation batch (mu); old logprobs are computed once.", positive, "> 0")
    dynamic_sampling: bool = option(
        False, "DAPO: drop groups whose rewards all tie and sample more prompts until the batch is full.")
    max_sampling_rounds: int = option(
        4, "Generation rounds per step at most with dynamic_sampling.", positive, "> 0")
    mask_truncated_completions: bool = option(
        False, "Leave completions cut at max_new_tokens out of the loss (DAPO overlong filtering).")
    rollout_correction: Literal["none", "token", "sequence", "sequence_mean"] = option(
        "none", "Importance weights against the rollout engine's logprobs: per token, per sequence "
        "(product of token ratios), or per sequence as their geometric mean.")
    rollout_correction_mode: Literal["truncate", "mask"] = option(
        "truncate", "truncate: clamp the weight into [rollout_correction_floor, rollout_correction_cap] "
        "(TIS); mask: zero the weights outside it (MIS; per token with both bounds: IcePop).")
    rollout_correction_cap: float | None = option(
        2.0, "Upper bound of the rollout-correction weight; null: none.", lambda v: v is None or v > 0,
        "> 0 or null")
    rollout_correction_floor: float | None = option(
        None, "Lower bound of the rollout-correction weight (IcePop: 0.5); null: none.",
        lambda v: v is None or v >= 0, ">= 0 or null")
    off_policy_mask_threshold: float | None = option(
        None, "DeepSeek-V3.2's off-policy sequence masking: drop sequences with a negative advantage "
        "whose mean log(pi_sampling / pi) is above this (e.g. 0.5); null: off.",
        lambda v: v is None or v >= 0, ">= 0 or null")
    top_entropy_quantile: float = option(
        1.0, "Keep in the policy loss only the tokens in this top quantile of entropy (the 80/20 "
        "rule: 0.2); 1 keeps all.", lambda v: 0 <= v <= 1, "in [0, 1]")

    @property
    def entropy_bonus_on(self) -> bool:
        """Whether the loss has an entropy bonus (adaptive control keeps it on at coefficient 0)."""
        return self.entropy_coef != 0 or self.use_adaptive_entropy


@dataclass
class MoEConfig:
    """Mixture-of-Experts controls (ignored by dense models)."""

    aux_loss_coef: float = option(
        0.0, "Weight of the model's own load-balancing loss in the RL loss (0: off, as usual in RL).",
        non_negative, ">= 0")
    router_z_loss_coef: float = option(
        0.0, "Weight of the router z-loss (mean squared logsumexp of router logits).", non_negative, ">= 0")
    freeze_router: bool = option(False, "Do not train the routers.")
    routing_replay: Literal["none", "old_policy", "rollout"] = option(
        "none", "Replay in the policy update the experts the old policy selected for each token "
        "(old_policy, R2), or those the rollout engine routed it to (rollout, R3: the hf and vllm backends and "
        "a rollout worker record them; the combine weights still come from the trainer's router, so it keeps its gradient).")
    replay_engine_weights: bool = option(
        False, "With routing_replay: rollout, also use the engine's combine weights of the replayed "
        "experts instead of recomputing them from the trainer's router logits: the forward then "
        "matches the engine's more closely, but no gradient reaches the routers through the "
        "combine (only through aux_loss_coef / router_z_loss_coef). hf and vllm-cpu engines.")

    @property
    def router_losses_on(self) -> bool:
        """Whether the update adds router terms to the loss (and so needs the router logits)."""
        return self.aux_loss_coef > 0 or self.router_z_loss_coef > 0


@dataclass
class TrainerConfig:
    max_steps: int = option(100, "Optimizer steps.", positive, "> 0")
    prompts_per_step: int = option(16, "Prompts per step (B); SFT: rows per step.", positive, "> 0")
    micro_batch_size: int = option(64, "Sequences per forward/backward; gradients accumulate.",
                                   positive, "> 0")
    max_tokens_per_micro_batch: int | None = option(
        4096, "Group sequences of similar length into micro-batches of at most this many padded "
        "tokens (and micro_batch_size sequences): padding and the logits' memory stay small however "
        "much completion lengths vary (docs/speed.md); null: micro_batch_size sequences in batch order.",
        lambda v: v is None or v > 0, "> 0 or null")
    logits_chunk_tokens: int = option(
        1024, "Compute the completion tokens' logits this many at a time from the final hidden states, "
        "recomputing each chunk in the backward pass: no batch x length x vocabulary tensor, and "
        "padding never reaches the output layer (docs/speed.md); 0: the model's own logits, as under "
        "FSDP2, whose output layer runs only inside the model's forward.",
        non_negative, ">= 0")
    learning_rate: float = option(1e-6, "AdamW learning rate.", positive, "> 0")
    weight_decay: float = option(0.0, "AdamW weight decay.", non_negative, ">= 0")
    adam_betas: list[float] = option(help="AdamW betas.", factory=lambda: [0.9, 0.999],
                                     check=lambda v: len(v) == 2, must="two numbers")
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this; 0 disables.", non_negative,
                                  ">= 0")
    lr_scheduler: str = option("constant_with_warmup", "A transformers scheduler name.")
    warmup_steps: int = option(0, "Learning-rate warmup steps.", non_negative, ">= 0")
    seed: int = option(0, "Seed of sampling, data order and dropout.")
    gradient_checkpointing: bool = option(False, "Recompute each layer's activations in the backward "
                                          "pass instead of keeping them: less memory, slower updates.")
    save_every: int = option(0, "Save a checkpoint every N steps; 0 saves only the final one.",
                             non_negative, ">= 0")
    keep_checkpoints: int = option(0, "Keep only the newest N checkpoint-N directories; 0 keeps all.",
                                   non_negative, ">= 0")
    log_samples_every: int = option(10, "Write samples.jsonl (and the sinks' samples table) every N "
                                    "steps; 0 never.", non_negative, ">= 0")
    report_to: list[str] = option(
        help="Metric sinks beside metrics.jsonl: tensorboard (RUN_DIR/tensorboard), wandb (its "
        "environment decides online/offline: WANDB_MODE=offline).", factory=list,
        check=lambda v: set(v) <= {"tensorboard", "wandb"}, must="a list of tensorboard, wandb")


@dataclass
class EvaluationConfig:
    every: int = option(0, "Evaluate every N steps; 0 = before the first and after the last step.",
                        non_negative, ">= 0")
    metric: str | None = option(None, "Reward reported as accuracy; null = the first reward.")
    batch_size: int = option(128, "Problems per generate call.", positive, "> 0")


@dataclass
class Recipe:
    name: str = option("run", "Run name; the run directory defaults to runs/<name>.")
    output_dir: str | None = option(None, "Run directory; null = runs/<name>.")
    model: ModelConfig = option(help="Policy model.", factory=ModelConfig)
    data: DataConfig = option(help="Prompts and answers.", factory=DataConfig)
    rollout: RolloutConfig = option(help="Sampling of completions.", factory=RolloutConfig)
    rewards: list[RewardSpec] = option(help="Reward functions and weights.",
                                       factory=lambda: [RewardSpec(name="math_accuracy")])
    moe: MoEConfig = option(help="Mixture-of-Experts controls.", factory=MoEConfig)
    algo: AlgoConfig = option(help="Advantages and loss.", factory=AlgoConfig)
    trainer: TrainerConfig = option(help="Optimisation.", factory=TrainerConfig)
    evaluation: EvaluationConfig = option(help="Held-out greedy evaluation.",
                                          factory=EvaluationConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")


# ---------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: typing.Sequence[str] = ()) -> Recipe:
    """Read a recipe file, apply ``key.path=value`` overrides, return a validated Recipe."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override)
    try:
        return build(Recipe, raw, "")
    except RecipeError as err:
        raise RecipeError(f"{path}: {err}") from None


def apply_override(raw: dict, override: str) -> None:
    """Set ``a.b.c=value`` (value parsed as YAML) in a raw recipe mapping, in place."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise RecipeError(f"--set {override!r}: expected key.path=value")
    *parents, leaf = key.strip().split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"--set {key}: {part} is not a section")
    node[leaf] = yaml.safe_load(value) if value.strip() else None


def build(cls, raw: Any, path: str):
    """Turn a raw mapping into dataclass ``cls``, checking keys, types and values."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path or 'recipe'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise RecipeError(unknown_key_message(join(path, str(key)), str(key), list(fields)))
    values = {}
    for name, value in raw.items():
        key_path = join(path, name)
        values[name] = coerce(hints[name], value, key_path)
        check = fields[name].metadata.get("check")
        if check is not None and values[name] is not None and not check(values[name]):
            raise RecipeError(f"{key_path}: must be {fields[name].metadata['must']}, got {value!r}")
    return cls(**values)


def unknown_key_message(key_path: str, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return f"{key_path}: unknown key{hint}"


def coerce(tp, value: Any, path: str):
    """Check ``value`` against type ``tp`` (a dataclass, Optional, list, dict, Literal, scalar)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(inner, value, path)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{path}: must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{path}: expected a list, got {value!r}")
        return [coerce(args[0], item, f"{path}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    return coerce_scalar(tp, value, path)


def coerce_scalar(tp, value: Any, path: str):
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads 1e-5 as a string
        except ValueError:
            pass
    elif isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise RecipeError(f"{path}: expected {tp.__name__}, got {value!r}")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def to_dict(recipe: Recipe) -> dict:
    """The resolved recipe as plain data (what a run writes to config.yaml)."""
    return dataclasses.asdict(recipe)
