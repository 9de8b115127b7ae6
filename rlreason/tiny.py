"""A tiny random-init MoE (Qwen3-MoE by default) and a character tokenizer, both defined here.

Used by the demo and the tests: no download needed. Both are saved with
``save_pretrained`` so any Hugging Face compatible loader reads them back.
"""

from __future__ import annotations

import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from rlreason.recipe import TinyModelConfig

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n"


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character, plus pad, EOS and unknown."""
    vocab = {token: i for i, token in enumerate([PAD, EOS, UNK, *CHARACTERS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        model_max_length=1 << 16,
    )


def build_tiny_moe(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """A random-init MoE causal LM of ``cfg.architecture`` shaped by ``cfg``, seeded by ``cfg.seed``."""
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    config = AutoConfig.for_model(cfg.architecture, **{**settings, **family_settings(cfg)})
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def family_settings(cfg: TinyModelConfig) -> dict:
    """Each family's names for experts, top-k and expert width (and its own parts, at tiny size)."""
    experts, top_k, width = cfg.num_experts, cfg.experts_per_token, cfg.expert_intermediate_size
    head_dim = cfg.hidden_size // cfg.num_heads
    if cfg.architecture == "qwen3_moe":
        return dict(num_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=width,
                    intermediate_size=2 * width, head_dim=head_dim, decoder_sparse_step=1,
                    norm_topk_prob=True)
    if cfg.architecture == "qwen2_moe":
        return dict(num_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=width,
                    shared_expert_intermediate_size=width, intermediate_size=2 * width,
                    decoder_sparse_step=1, norm_topk_prob=True)
    if cfg.architecture in ("mixtral", "gpt_oss"):
        extra = {"head_dim": head_dim} if cfg.architecture == "gpt_oss" else {}
        return dict(num_local_experts=experts, num_experts_per_tok=top_k, intermediate_size=width, **extra)
    if cfg.architecture == "olmoe":
        return dict(num_experts=experts, num_experts_per_tok=top_k, intermediate_size=width)
    if cfg.architecture == "deepseek_v2":  # latent attention, shared experts, plain softmax top-k
        return dict(n_routed_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=width,
                    intermediate_size=2 * width, n_shared_experts=1, first_k_dense_replace=0,
                    q_lora_rank=None, kv_lora_rank=head_dim, qk_rope_head_dim=head_dim // 2,
                    qk_nope_head_dim=head_dim, v_head_dim=head_dim, head_dim=head_dim // 2,
                    topk_method="greedy", num_key_value_heads=cfg.num_heads)
    # deepseek_v3: multi-head latent attention, one shared expert, top-k within the best group
    return dict(n_routed_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=width,
                intermediate_size=2 * width, n_shared_experts=1, n_group=2, topk_group=1,
                first_k_dense_replace=0, q_lora_rank=head_dim, kv_lora_rank=head_dim,
                qk_rope_head_dim=head_dim // 2, qk_nope_head_dim=head_dim, v_head_dim=head_dim,
                head_dim=head_dim // 2, norm_topk_prob=True, topk_method="noaux_tc", scoring_func="sigmoid",
                num_key_value_heads=cfg.num_heads)  # latent attention has no grouped key/value heads
