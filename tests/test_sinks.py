"""TensorBoard and Weights & Biases (offline) get what metrics.jsonl gets, and the samples table."""

import json

import pytest

from rlreason.sinks import markdown, sample_table
from tests.helpers import TINY_SET, rlreason

RUN = [*TINY_SET, "--set", "model.name_or_path=null", "--set", "trainer.max_steps=3",
       "--set", "trainer.prompts_per_step=4", "--set", "data.num_eval=4", "--set", "rollout.backend=hf",
       "--set", "trainer.log_samples_every=2"]


def logged(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_holds_every_metric_and_the_samples_table(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    done = rlreason("train", "recipes/demo/grpo.yaml", *RUN, "--set", "trainer.report_to=[tensorboard]",
                    "--set", f"output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    steps = [row for row in logged(run_dir) if "reward" in row]
    assert [e.step for e in events.Scalars("reward")] == [row["step"] for row in steps] == [1, 2, 3]
    for event, row in zip(events.Scalars("reward/math_accuracy"), steps):
        assert event.value == pytest.approx(row["reward/math_accuracy"], rel=1e-6)
    assert [e.step for e in events.Scalars("eval/accuracy")] == [0, 3]
    tables = events.Tensors("samples/text_summary")
    assert [t.step for t in tables] == [1, 2]  # step 1, then every 2 steps
    text = tables[0].tensor_proto.string_val[0].decode()
    assert text.startswith("| prompt | completion | reward | math_accuracy |") and text.count("\n") == 1 + 4 * 8


def test_wandb_offline_run_is_written_under_the_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    done = rlreason("train", "recipes/demo/grpo.yaml", *RUN, "--set", "trainer.report_to=[wandb]",
                    "--set", f"output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path
    run_id = (run_dir / "wandb_run_id").read_text()
    [offline] = list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))
    history = wandb_history(next(offline.glob("run-*.wandb")))
    steps = [row for row in logged(run_dir) if "reward" in row]
    assert [h["reward"] for h in history if "reward" in h] == pytest.approx([row["reward"] for row in steps])
    assert sum(any(k.startswith("samples/") for k in h) for h in history) == 2  # steps 1 and 2
    tables = sorted((offline / "files" / "media" / "table").glob("samples_*.table.json"))
    assert len(tables) == 2
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["prompt", "completion", "reward", "math_accuracy"] and len(table["data"]) == 32


def wandb_history(path):
    """The history rows (step metrics) of an offline W&B run file: protobuf records in the
    LevelDB log format (32 KiB blocks; each chunk: crc32, length, type 1 full / 2 first / 3 middle
    / 4 last) after a 7-byte header."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pending, at = [], b"", 7
    while at + 7 <= len(data):
        if block - at % block < 7:  # a block's tail too short for a header is padding
            at += block - at % block
            continue
        length, kind = int.from_bytes(data[at + 4:at + 6], "little"), data[at + 6]
        pending += data[at + 7:at + 7 + length]
        at += 7 + length
        if kind in (1, 4):
            records.append(pending)
            pending = b""
        elif kind == 0:  # zero padding at the end
            break
    rows = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def test_report_to_names_the_bad_sink(tmp_path):
    done = rlreason("train", "recipes/demo/grpo.yaml", *RUN, "--set", "trainer.report_to=[mlflow]",
                    "--set", f"output_dir={tmp_path}")
    assert done.returncode != 0 and "trainer.report_to" in done.stderr and "tensorboard, wandb" in done.stderr


def test_samples_table_has_a_column_per_reward_function():
    rows = [{"prompt": "1+2=", "completion": "3", "reward": 1.5, "rewards": {"math_accuracy": 1.0, "format": 0.5}},
            {"prompt": "a|b", "completion": "x\ny", "reward": 0.0, "rewards": {"math_accuracy": 0.0, "format": None}}]
    columns, table = sample_table(rows)
    assert columns == ["prompt", "completion", "reward", "format", "math_accuracy"]
    assert table[1] == ["a|b", "x\ny", 0.0, None, 0.0]
    assert markdown(columns, table).splitlines()[3] == "| a\\|b | x<br>y | 0 |  | 0 |"
