import dataclasses
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlreason.advantages import group_advantages
from rlreason.checkpoint import latest_checkpoint
from rlreason.loss_variants import VARIANTS
from rlreason.session import open_session
from rlreason.sft import sft
from rlreason.trainer import collect_batch, grpo_step, train
from rlreason.update import micro_batch_rows, prepare_micro_batch, update_policy

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


def test_what_a_reward_counts_is_logged_with_the_step(make_recipe):
    counting = [{"name": "tests.plugin_rewards:shortness_counting_calls"}]
    session = open_session(make_recipe(rewards=counting, trainer={"prompts_per_step": 4}), "test")
    metrics = grpo_step(session, step=1)
    completions = 4 * session.recipe.rollout.num_generations
    assert metrics["reward/tests.plugin_rewards:shortness_counting_calls/seen"] == completions


def test_an_unscored_completion_is_counted_and_never_trained_on(make_recipe):
    """Its tokens can be anything, of any length: the loss (DAPO's, over every trained token) and
    the update are the same. The log counts it and its sample record has no total."""
    gaps = [{"name": "tests.plugin_rewards:shortness_but_every_fourth_unscored"}]
    recipe = make_recipe(rewards=gaps, algo={"loss_type": "dapo"}, trainer={"log_samples_every": 1})
    sessions = [open_session(recipe, "test") for _ in range(2)]
    batch, _, _ = collect_batch(sessions[0], step=1)
    unscored = batch.trained_total.isnan().nonzero().flatten().tolist()
    assert unscored == list(range(1, len(batch.texts), 4))
    other = [[(t + 1) % 100 for t in ids] * 3 if i in unscored else ids
             for i, ids in enumerate(batch.rollouts.completion_ids)]
    changed = dataclasses.replace(batch, rollouts=dataclasses.replace(batch.rollouts, completion_ids=other))
    advantages = group_advantages(batch.trained_total, batch.group_size)
    assert advantages[unscored].eq(0).all() and advantages.ne(0).any()
    updates = [update_policy(session, which, advantages) for session, which in zip(sessions, (batch, changed))]
    for key in ("loss", "grad_norm"):  # (Adam's first step is about +-lr wherever a gradient is, even rounding's)
        assert updates[0][key] == pytest.approx(updates[1][key], rel=1e-5), key
    metrics = grpo_step(sessions[0], step=2)
    assert metrics["unscored_completions"] == len(unscored)
    records = [json.loads(line) for line in sessions[0].log.samples_path.read_text().splitlines()]
    assert [i for i, r in enumerate(records) if r["reward"] is None] == unscored


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
    assert all(row["reward"] == sum(row["rewards"].values()) for row in samples)  # per function, weight 1
    model = AutoModelForCausalLM.from_pretrained(result.checkpoint)
    assert model.config.model_type == "qwen3_moe"
    assert json.loads((result.checkpoint / "trainer_state.json").read_text())["step"] == 2
    assert not list(run.glob(".*tmp*"))  # nothing half-written left behind


def test_same_seed_same_run(make_recipe, tmp_path):
    first = train(make_recipe(output_dir=str(tmp_path / "a")))
    second = train(make_recipe(output_dir=str(tmp_path / "b")))
    read = lambda r: [json.loads(x).get("reward") for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert read(first) == read(second)


def test_mu_iterations_take_that_many_optimizer_steps_per_generation(make_recipe):
    algo = {"num_iterations": 3, "loss_type": "dapo", "epsilon": 1e-4, "epsilon_high": 1e-4}
    session = open_session(make_recipe(rewards=SHORTNESS, algo=algo), "test")
    metrics = grpo_step(session, step=1)
    steps = {int(state["step"]) for state in session.optimizer.state.values()}
    assert steps == {3}
    assert session.scheduler.last_epoch == 3
    # old logprobs stay those of the sampling policy, so iterations 2 and 3 see ratios != 1
    assert metrics["clip_ratio/region"] > 0
    single = open_session(make_recipe(rewards=SHORTNESS, algo={**algo, "num_iterations": 1}), "test")
    assert grpo_step(single, step=1)["clip_ratio/region"] == 0  # ratio is exactly 1 on-policy


def test_dynamic_sampling_keeps_only_groups_whose_rewards_differ(make_recipe):
    recipe = make_recipe(rewards=[{"name": "tests.plugin_rewards:ties_on_even_prompts"}],
                         trainer={"prompts_per_step": 4},
                         algo={"dynamic_sampling": True, "max_sampling_rounds": 8})
    session = open_session(recipe, "test")
    batch, sampled, _ = collect_batch(session, step=1)
    assert batch.num_groups == 4
    assert batch.varied_groups() == [0, 1, 2, 3]
    tied = sampled.num_groups - len(sampled.varied_groups())
    assert tied > 0, "the synthetic prompts should include even digit sums"
    for example in batch.examples:
        assert sum(int(ch) for ch in example.prompt if ch.isdigit()) % 2 == 1
    metrics = grpo_step(session, step=1)
    assert metrics["dynamic_sampling/groups_kept"] == 1.0
    assert metrics["dynamic_sampling/rounds"] >= 1


def test_dynamic_sampling_gives_up_after_the_round_limit(make_recipe):
    recipe = make_recipe(rewards=[{"name": "tests.plugin_rewards:as_constant"}],
                         algo={"dynamic_sampling": True, "max_sampling_rounds": 2})
    session = open_session(recipe, "test")
    before = snapshot(session.policy)
    metrics = grpo_step(session, step=1)
    assert metrics["dynamic_sampling/rounds"] == 2
    assert metrics["dynamic_sampling/groups_kept"] == 0
    assert "loss" not in metrics  # nothing to learn from: no update
    assert all(torch.equal(before[n], p) for n, p in snapshot(session.policy).items())


def test_truncated_completions_are_left_out_of_the_loss(make_recipe):
    recipe = make_recipe(rewards=SHORTNESS, rollout={"max_new_tokens": 3},
                         algo={"mask_truncated_completions": True})
    session = open_session(recipe, "test")
    batch, _, _ = collect_batch(session, step=1)
    rows = list(range(len(batch.rollouts)))
    part = prepare_micro_batch(session, batch, rows)
    reasons = batch.rollouts.finish_reason
    assert "length" in reasons
    for i in rows:
        expected = 0 if reasons[i] == "length" else len(batch.rollouts.completion_ids[i])
        assert part.tokens.completion_mask[i].sum().item() == expected


def test_rollout_correction_logs_a_small_mismatch_between_generate_and_forward(make_recipe):
    recipe = make_recipe(rewards=SHORTNESS, algo={"rollout_correction": "token", "rollout_correction_cap": 2.0})
    metrics = grpo_step(open_session(recipe, "test"), step=1)
    # same weights, different kernels (cached, left-padded decoding vs one padded forward)
    assert 0 <= metrics["rollout/mismatch_kl"] < 1e-4
    assert metrics["rollout/correction_weight"] == pytest.approx(1.0, abs=1e-2)


def test_mismatch_masking_off_policy_mask_and_top_entropy_selection_run_from_a_recipe(make_recipe):
    """IcePop-style token masking, DeepSeek-V3.2's off-policy sequence mask and the 80/20 token
    selection, all on, two policy iterations: each logs what it did, and the step trains."""
    recipe = make_recipe(rewards=SHORTNESS, algo={
        "rollout_correction": "token", "rollout_correction_mode": "mask", "rollout_correction_floor": 0.5,
        "rollout_correction_cap": 5.0, "off_policy_mask_threshold": 0.5, "top_entropy_quantile": 0.2,
        "num_iterations": 2})
    session = open_session(recipe, "test")
    before = snapshot(session.policy)
    metrics = grpo_step(session, step=1)
    assert metrics["rollout/correction_bounded"] == 0  # generate and forward agree far inside [0.5, 5]
    assert metrics["off_policy/masked_share"] == 0  # nothing is that far off-policy after one update
    assert 0.2 <= metrics["entropy/kept_share"] < 0.3  # the top fifth (ties at the threshold stay)
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert any(not torch.equal(before[n], p) for n, p in snapshot(session.policy).items())


@pytest.mark.parametrize("algo", [
    {"loss_type": "clip_cov", "clip_cov_ratio": 0.1, "clip_cov_lb": 0.0, "clip_cov_ub": 100.0},
    {"loss_type": "kl_cov", "kl_cov_ratio": 0.1}], ids=["clip_cov", "kl_cov"])
def test_covariance_losses_run_from_a_recipe_and_log_the_share_they_select(make_recipe, algo):
    session = open_session(make_recipe(rewards=SHORTNESS, algo={**algo, "num_iterations": 2}), "test")
    before = snapshot(session.policy)
    metrics = grpo_step(session, step=1)
    assert 0 < metrics["covariance/selected_share"] <= 0.2  # a tenth of each micro-batch's tokens, at least one
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert any(not torch.equal(before[n], p) for n, p in snapshot(session.policy).items())


def test_entropy_bonus_alone_trains_when_every_group_ties(make_recipe):
    """Tied rewards give zero advantages and no policy gradient; the entropy bonus still moves the
    weights, and its coefficient is logged."""
    tied = [{"name": "tests.plugin_rewards:as_constant"}]
    plain = grpo_step(open_session(make_recipe(rewards=tied), "test"), step=1)
    assert plain["grad_norm"] == 0 and "entropy/coef" not in plain
    session = open_session(make_recipe(rewards=tied, algo={"entropy_coef": 0.5}), "test")
    before = snapshot(session.policy)
    metrics = grpo_step(session, step=1)
    assert metrics["grad_norm"] > 0 and metrics["entropy/coef"] == 0.5
    assert any(not torch.equal(before[n], p) for n, p in snapshot(session.policy).items())


def test_adaptive_entropy_control_waits_for_a_measurement_then_steps_the_coefficient(make_recipe):
    """Step 1 applies no bonus (no entropy measured yet) and raises the coefficient by its delta
    per optimizer step while the entropy is under the target; step 2 applies it."""
    tied = [{"name": "tests.plugin_rewards:as_constant"}]
    session = open_session(make_recipe(rewards=tied, algo={
        "use_adaptive_entropy": True, "entropy_coef": 0.1, "entropy_coef_delta": 0.01, "entropy_target": 100.0,
        "num_iterations": 2}), "test")
    first = grpo_step(session, step=1)
    assert first["grad_norm"] > 0  # the second optimizer step of the batch already applies 0.11
    assert first["entropy/coef"] == pytest.approx(0.12)  # two optimizer steps, each +0.01
    assert 0 < session.last_world_entropy < 100.0
    session.recipe.algo.entropy_target = session.last_world_entropy / 2  # now above the target: it falls
    second = grpo_step(session, step=2)
    assert second["entropy/coef"] == pytest.approx(0.10)


def test_entropy_is_logged_per_token(make_recipe):
    session = open_session(make_recipe(rewards=SHORTNESS), "test")
    metrics = grpo_step(session, step=1)
    vocab = len(session.tokenizer)
    assert 0 < metrics["entropy"] <= math.log(vocab)


@pytest.mark.parametrize("loss_type", list(VARIANTS))
def test_every_loss_type_trains_from_a_recipe(make_recipe, loss_type):
    recipe = make_recipe(rewards=SHORTNESS, algo={"loss_type": loss_type, "baseline": "leave_one_out",
                                                  "normalise_each_reward": True})
    session = open_session(recipe, "test")
    before = snapshot(session.policy)
    metrics = grpo_step(session, step=1)
    assert math.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
    assert any(not torch.equal(before[n], p) for n, p in snapshot(session.policy).items())


@pytest.mark.parametrize("iterations, forwards_per_micro_batch", [(1, 1), (2, 3)])
def test_old_logprobs_cost_a_forward_only_when_they_must_stay_fixed(make_recipe, iterations,
                                                                    forwards_per_micro_batch):
    recipe = make_recipe(rewards=SHORTNESS, algo={"num_iterations": iterations},
                         trainer={"prompts_per_step": 4, "micro_batch_size": 8})
    session = open_session(recipe, "test")
    batch, _, _ = collect_batch(session, step=1)
    calls = []
    hook = session.policy.register_forward_hook(lambda *args: calls.append(1))
    update_policy(session, batch, torch.randn(len(batch.rollouts)))
    hook.remove()
    assert len(calls) == forwards_per_micro_batch * 2  # 16 completions in micro-batches of 8


def test_beta_zero_loads_no_reference(make_recipe):
    session = open_session(make_recipe(rewards=SHORTNESS, algo={"beta": 0.0}), "test", with_reference=True)
    assert session.reference is None
    assert "kl" not in grpo_step(session, step=1)


@pytest.mark.parametrize("model, moe", [({}, {}), ({"lora": {"r": 4, "alpha": 8}}, {}),
                                        ({}, {"routing_replay": "old_policy"}), ({}, {"routing_replay": "rollout"})],
                         ids=["full", "lora", "replay-old-policy", "replay-rollout"])
def test_gradient_checkpointing_takes_the_same_steps(make_recipe, model, moe):
    """Recomputing activations changes memory, not the maths: the same losses and weights (with
    routing replay too: the recomputed routers replay what the forward did)."""
    runs = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        session = open_session(make_recipe(rewards=SHORTNESS, model=model, algo={"num_iterations": 2}, moe=moe,
                                           trainer={"gradient_checkpointing": checkpointing}), "test")
        assert session.policy.is_gradient_checkpointing == checkpointing
        losses = [grpo_step(session, step)["loss"] for step in (1, 2)]
        runs.append((losses, {n: p.detach().clone() for n, p in session.policy.named_parameters()}))
    (plain_losses, plain), (checkpointed_losses, checkpointed) = runs
    assert checkpointed_losses == pytest.approx(plain_losses, abs=1e-6)
    for name, weight in plain.items():
        assert torch.allclose(weight, checkpointed[name], atol=1e-6), name


def test_only_the_newest_checkpoints_are_kept(make_recipe):
    result = train(make_recipe(rewards=SHORTNESS, trainer={"max_steps": 4, "save_every": 1, "keep_checkpoints": 2}))
    kept = sorted(p.name for p in result.run_dir.glob("checkpoint-*"))
    assert kept == ["checkpoint-3", "checkpoint-4"] and (result.run_dir / "final").exists()
    assert latest_checkpoint(result.run_dir) == result.run_dir / "checkpoint-4"


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "gspo"])
def test_token_budget_micro_batches_take_the_same_step_as_consecutive_ones(make_recipe, loss_type):
    """Sorting rows by length into micro-batches of at most 40 padded tokens changes what is padded,
    not the loss: the update equals the one on consecutive micro-batches of 8."""
    sessions = [open_session(make_recipe(algo={"loss_type": loss_type},
                                         trainer={"micro_batch_size": 8, "max_tokens_per_micro_batch": budget}),
                             "test") for budget in (None, 40)]
    batch, _, _ = collect_batch(sessions[0], step=1)
    advantages = group_advantages(batch.trained_total, batch.group_size, "group", "mean")
    consecutive, budgeted = (update_policy(s, batch, advantages) for s in sessions)
    assert len(micro_batch_rows(sessions[1], batch)) > len(micro_batch_rows(sessions[0], batch))
    assert consecutive["loss"] == pytest.approx(budgeted["loss"], abs=1e-6)
    for a, b in zip(sessions[0].policy.parameters(), sessions[1].policy.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
