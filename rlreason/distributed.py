"""The accelerator for however the run was launched: one process, or many under ``accelerate launch``.

accelerate picks the strategy from its launch config (DDP or FSDP2; see ``recipes/accelerate/``).
DeepSpeed is refused: it owns gradient accumulation and the optimizer step, which rlreason's
update loop drives itself. One gap is filled here: accelerate only turns FSDP on for accelerator
devices, and runs CPU processes as plain DDP even when FSDP was asked for. torch's FSDP2 works
on CPU over gloo, so on CPU the FSDP plugin is switched on explicitly and the run takes the same
accelerate FSDP2 code path it takes on GPUs.
"""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, gather_object
from torch.distributed.tensor import DTensor

from rlreason.launch import CPU_LAUNCH_HINT, LaunchError, single_process_cpu_launch

log = logging.getLogger(__name__)


def make_accelerator() -> Accelerator:
    if single_process_cpu_launch(os.environ):  # the command line relaunches it; a library call cannot
        raise LaunchError("accelerate launch --cpu with several processes started only one. " + CPU_LAUNCH_HINT)
    on_cpu = not torch.cuda.is_available()
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    plugin = FullyShardedDataParallelPlugin() if on_cpu and fsdp else None  # read from the launch env
    accelerator = Accelerator(cpu=on_cpu, fsdp_plugin=plugin)
    if plugin is not None and accelerator.num_processes > 1:
        if plugin.fsdp_version != 2:
            raise LaunchError("accelerate launch: FSDP on CPU needs --fsdp_version 2")
        # what accelerate's AcceleratorState sets for FSDP on GPUs (it re-reads PartialState)
        PartialState().distributed_type = accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
        log.info("FSDP2 on CPU over gloo, %d processes", accelerator.num_processes)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise LaunchError("accelerate launch: DeepSpeed is not supported (it steps the optimizer inside "
                          "backward; rlreason accumulates micro-batches itself). For sharded parameters, "
                          "gradients and optimizer states use recipes/accelerate/fsdp2.yaml")
    return accelerator


def parameters_sharded(accelerator: Accelerator) -> bool:
    """Whether each process holds only a shard of the parameters (FSDP): then every forward
    pass is collective, and the full weights must be gathered to be read."""
    return accelerator.distributed_type == DistributedType.FSDP


def backward_share(accelerator: Accelerator, loss: torch.Tensor) -> None:
    """Backpropagate this process's share of a loss normalised over the global batch: DDP and
    FSDP average gradients over processes, so the share is scaled back up by their number, which
    leaves the gradient of the global loss."""
    accelerator.backward(loss * accelerator.num_processes)


def unsharded(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP2 shard (a DTensor; every process must call this together);
    any other tensor as it is."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def scalar(value: torch.Tensor) -> float:
    """A Python float from a tensor that may be a DTensor (FSDP2 gradient norms are)."""
    return float(unsharded(value))


def summed(accelerator: Accelerator, values: list[float]) -> list[float]:
    """Each value summed over all processes (as given, with one process)."""
    if accelerator.num_processes == 1:
        return values
    total = accelerator.reduce(torch.tensor(values, dtype=torch.float64, device=accelerator.device),
                               reduction="sum")
    return total.tolist()


def gathered(accelerator: Accelerator, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor concatenated over all processes, in process order (equal shapes required)."""
    if accelerator.num_processes == 1:
        return tensor
    return accelerator.gather(tensor.to(accelerator.device)).cpu()


def gathered_objects(accelerator: Accelerator, obj) -> list:
    """``obj`` of every process (pickled), in process order."""
    if accelerator.num_processes == 1:
        return [obj]
    return gather_object([obj])
