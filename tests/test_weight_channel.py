"""The weight channel of rollout.mode: server (rlreason/rollout/channel.py): a real gloo group of
two members, the worker's end and the trainer's end in two threads here, apart from any default
process group."""

import threading

import torch
import torch.distributed as dist

from rlreason.rollout import channel
from rlreason.rollout.channel import TensorSpec


def test_tensors_arrive_exactly_in_every_dtype_and_shape():
    sent = {"embed.weight": torch.randn(50, 8), "norm.weight": torch.randn(8).to(torch.bfloat16),
            "experts.gate_up": torch.randn(4, 16, 8).to(torch.float16), "steps": torch.arange(5),
            "view": torch.randn(8, 6).T}  # not contiguous: sent as a contiguous copy
    store = channel.host_store(timeout_s=30)
    received = {}

    def worker_end():
        group = channel.join(store, channel.RECEIVER, "gloo", 30, "test")
        received.update(channel.receive(group, [TensorSpec.of(n, t) for n, t in sent.items()], "cpu"))

    worker = threading.Thread(target=worker_end)
    worker.start()
    trainer = channel.connect("127.0.0.1", store.port, "gloo", 30, "test")
    channel.send(trainer, list(sent.values()))
    worker.join(timeout=30)
    assert not dist.is_initialized(), "the channel must leave the default process group alone"
    assert list(received) == list(sent)
    for name, tensor in sent.items():
        assert received[name].dtype == tensor.dtype and torch.equal(received[name], tensor), name


def test_specs_round_trip_through_their_wire_form():
    spec = TensorSpec.of("w", torch.zeros(3, 2, dtype=torch.bfloat16))
    assert spec == TensorSpec("w", "bfloat16", [3, 2])
    assert spec.empty("cpu").shape == (3, 2) and spec.empty("cpu").dtype == torch.bfloat16
