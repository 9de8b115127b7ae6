"""A tiny random-init MoE (Qwen3-MoE by default) and its tokenizer, both defined here.

The tokenizer is one token per character (the demo), or a byte-level BPE trained here with
``tokenizers`` that carries a real chat template: ChatML as the Qwen family writes it (with
Qwen3's ``enable_thinking`` switch) or DeepSeek-V3's format. Used by the demo, the dry-run
stand-ins and the tests: no download needed. Both are saved with ``save_pretrained`` so any
Hugging Face compatible loader reads them back.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
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


@dataclass(frozen=True)
class ChatFormat:
    """A model family's special tokens and chat template (Jinja, as ``tokenizer_config.json`` holds it)."""

    eos: str  # also the padding token, as the families' base tokenizers have it
    turn_tokens: tuple[str, ...]  # the other special tokens the template writes
    template: str
    bos: str | None = None


CHAT_FORMATS = {
    # Qwen3's ChatML: <|im_end|> ends a turn, <|endoftext|> is EOS; after the last user turn an
    # assistant turn's reasoning (<think>...</think> in its content) is written as a block of its
    # own, and the last turn always has one (empty when it had none); before it, reasoning is
    # dropped; enable_thinking=false opens the answer with an empty reasoning block
    "chatml": ChatFormat(
        eos="<|endoftext|>", turn_tokens=("<|im_start|>", "<|im_end|>"),
        template=("{%- set ns = namespace(last_query=-1) %}"
                  "{%- for message in messages %}{%- if message['role'] == 'user' %}"
                  "{%- set ns.last_query = loop.index0 %}{%- endif %}{%- endfor %}"
                  "{%- for message in messages %}"
                  "{%- set content = message['content'] %}{%- set reasoning = '' %}"
                  "{%- if message['role'] == 'assistant' %}"
                  "{%- if '</think>' in content %}"
                  "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}"
                  "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
                  "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
                  "{%- set content = '<think>\\n' + reasoning + '\\n</think>\\n\\n' + content %}"
                  "{%- endif %}{%- endif %}"
                  "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
                  "{%- endfor %}"
                  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
                  "{%- if enable_thinking is defined and enable_thinking is false %}"
                  "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}")),
    # DeepSeek-V3/R1: the system prompt first, bare; an assistant turn ends with EOS itself
    "deepseek": ChatFormat(
        eos="<｜end▁of▁sentence｜>", bos="<｜begin▁of▁sentence｜>", turn_tokens=("<｜User｜>", "<｜Assistant｜>"),
        template=("{{- bos_token }}"
                  "{%- for message in messages %}"
                  "{%- if message['role'] == 'system' %}{{- message['content'] }}"
                  "{%- elif message['role'] == 'user' %}{{- '<｜User｜>' + message['content'] }}"
                  "{%- elif message['role'] == 'assistant' %}{{- '<｜Assistant｜>' + message['content'] + eos_token }}"
                  "{%- endif %}{%- endfor %}"
                  "{%- if add_generation_prompt %}{{- '<｜Assistant｜>' }}{%- endif %}")),
}


def build_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """The tiny model's tokenizer: ``characters``, or a chat tokenizer of ``CHAT_FORMATS``."""
    return build_char_tokenizer() if kind == "characters" else build_chat_tokenizer(CHAT_FORMATS[kind])


def build_chat_tokenizer(chat: ChatFormat, vocab_size: int = 1024,
                         corpus: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE (every string encodes) trained on ``corpus`` (default ``bpe_corpus()``),
    with ``chat``'s special tokens and template; deterministic."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    special = [chat.eos, *([chat.bos] if chat.bos else []), *chat.turn_tokens]
    backend.train_from_iterator(corpus or bpe_corpus(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=chat.eos, pad_token=chat.eos, bos_token=chat.bos,
        extra_special_tokens=list(chat.turn_tokens), model_max_length=1 << 16)
    tokenizer.chat_template = chat.template
    return tokenizer


def bpe_corpus() -> list[str]:
    """Short math-flavoured sentences to learn merges from (any text encodes, byte by byte)."""
    words = ("question answer the is of and to a in step by reason final total each how many what "
             "then so we have left more than less times half twice per cost costs dollars".split())
    return [f"Question: what is {a} + {b}? {words[a % len(words)]} {words[b % len(words)]} "
            f"step by step, the answer is \\boxed{{{a + b}}}." for a in range(0, 200, 3) for b in range(0, 100, 7)]


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
