"""The weight channel between a trainer and a rollout worker: a two-member torch.distributed
process group of its own (gloo on CPU, NCCL between GPUs), apart from the trainer's default group.

The worker hosts the rendezvous store (its address is the one the trainer already knows) and
is rank 1; the trainer is rank 0 and broadcasts. Tensors go one by one in an order both sides
agreed on over HTTP (``specs``: name, dtype, shape), so the receiver allocates each exactly.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist

SENDER, RECEIVER = 0, 1


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # e.g. "float32", as torch names it after "torch."
    shape: list[int]

    @staticmethod
    def of(name: str, tensor: torch.Tensor) -> TensorSpec:
        return TensorSpec(name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape))

    def empty(self, device: torch.device | str) -> torch.Tensor:
        return torch.empty(self.shape, dtype=getattr(torch, self.dtype), device=device)


def host_store(timeout_s: float) -> dist.TCPStore:
    """The rendezvous store, on a free port of every interface of this host (the worker's)."""
    return dist.TCPStore("0.0.0.0", 0, world_size=2, is_master=True, wait_for_workers=False,
                         timeout=datetime.timedelta(seconds=timeout_s))


def join(store: dist.TCPStore, rank: int, backend: str, timeout_s: float, name: str) -> dist.ProcessGroup:
    """This side's end of the channel ``name`` (blocks until the other side joins too)."""
    prefixed = dist.PrefixStore(f"rlreason-weights/{name}", store)
    timeout = datetime.timedelta(seconds=timeout_s)
    if backend == "nccl":
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return dist.ProcessGroupNCCL(prefixed, rank, 2, options)
    if backend != "gloo":
        raise ValueError(f"weight channel backend {backend!r}: use gloo (CPU) or nccl (GPUs)")
    return dist.ProcessGroupGloo(prefixed, rank, 2, timeout)


def connect(host: str, port: int, backend: str, timeout_s: float, name: str) -> dist.ProcessGroup:
    """The trainer's end: connect to the worker's store and join as the sender."""
    store = dist.TCPStore(host, port, world_size=2, is_master=False,
                          timeout=datetime.timedelta(seconds=timeout_s))
    return join(store, SENDER, backend, timeout_s, name)


def send(group: dist.ProcessGroup, tensors: list[torch.Tensor]) -> None:
    """Broadcast ``tensors``, in order, to the receiver (contiguous copies where needed)."""
    for tensor in tensors:
        group.broadcast([tensor.detach().contiguous()], dist.BroadcastOptions()).wait()


def receive(group: dist.ProcessGroup, specs: list[TensorSpec], device: torch.device | str) -> dict[str, torch.Tensor]:
    """What the sender broadcasts for ``specs``, as ``{name: tensor}`` on ``device``."""
    received = {}
    options = dist.BroadcastOptions()
    options.rootRank = SENDER
    for spec in specs:
        tensor = spec.empty(device)
        group.broadcast([tensor], options).wait()
        received[spec.name] = tensor
    return received
