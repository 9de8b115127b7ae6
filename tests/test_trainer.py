import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlreason.session import open_session
from rlreason.sft import sft
from rlreason.trainer import grpo_step, train

# favours short completions: rewards differ within groups, so advantages are non-zero
SHORTNESS = [{"name": "tests.plugin_rewards:shortness"}]


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_one_grpo_step_changes_every_trainable_parameter(make_recipe):
    session = open_session(make_recipe(rewards=SHORTNESS, trainer={"prompts_per_step": 8}), "test")
    before = snapshot(session.policy)
    metrics = grpo_step(session, step=1)
    after = snapshot(session.policy)
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    for key in ("reward", "reward/tests.plugin_rewards:shortness", "loss", "grad_norm",
                "clip_ratio/low", "completion_length", "step_time", "time/generate"):
        assert key in metrics


def test_reference_kl_is_zero_on_the_first_step_and_logged(make_recipe):
    session = open_session(make_recipe(rewards=SHORTNESS, algo={"beta": 0.1}), "test", with_reference=True)
    assert session.reference is not None
    metrics = grpo_step(session, step=1)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference before any update
    second = grpo_step(session, step=2)
    assert second["kl"] > 0


def test_lora_trains_only_adapters_and_uses_the_base_as_reference(make_recipe):
    recipe = make_recipe(rewards=SHORTNESS, algo={"beta": 0.1}, model={"lora": {"r": 4, "alpha": 8}})
    session = open_session(recipe, "test", with_reference=True)
    assert session.reference is None  # no second copy: the adapter is disabled instead
    trainable = [n for n, p in session.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in session.policy.named_parameters() if not p.requires_grad}
    grpo_step(session, 1)
    assert grpo_step(session, 2)["kl"] > 0
    assert all(torch.equal(p, dict(session.policy.named_parameters())[n]) for n, p in frozen.items())


def test_sft_lowers_the_loss(make_recipe):
    recipe = make_recipe(trainer={"max_steps": 30, "prompts_per_step": 16, "micro_batch_size": 16,
                                  "learning_rate": 3e-3})
    result = sft(recipe)
    losses = [json.loads(line)["loss"] for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_train_writes_a_run_directory_that_loads(make_recipe):
    result = train(make_recipe(trainer={"log_samples_every": 1}))
    run = result.run_dir
    assert (run / "config.yaml").is_file()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "reward" in r] == [1, 2]
    assert [r["step"] for r in lines if "eval/accuracy" in r] == [0, 2]
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 4 * 4 and {"prompt", "completion", "reward"} <= set(samples[0])
    model = AutoModelForCausalLM.from_pretrained(result.checkpoint)
    assert model.config.model_type == "qwen3_moe"
    assert json.loads((result.checkpoint / "trainer_state.json").read_text())["step"] == 2
    assert not list(run.glob(".*tmp*"))  # nothing half-written left behind


def test_same_seed_same_run(make_recipe, tmp_path):
    first = train(make_recipe(output_dir=str(tmp_path / "a")))
    second = train(make_recipe(output_dir=str(tmp_path / "b")))
    read = lambda r: [json.loads(x).get("reward") for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert read(first) == read(second)
