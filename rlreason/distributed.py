"""The accelerator for however the run was launched: one process, or many under ``accelerate launch``.

accelerate picks the strategy from its launch config (DDP, FSDP2 or DeepSpeed ZeRO; see
``recipes/accelerate/``). Two gaps are filled here. accelerate only turns FSDP on for accelerator
devices, and runs CPU processes as plain DDP even when FSDP was asked for; torch's FSDP2 works on
CPU over gloo, so on CPU the FSDP plugin is switched on explicitly and the run takes the same
accelerate FSDP2 code path it takes on GPUs. Likewise DeepSpeed runs on CPU (its CPU accelerator,
gloo) once accelerate is asked for gloo instead of forcing its CPU mode. Under DeepSpeed the
engine owns clipping and the optimizer step, taken in the backward pass of an optimizer step's
last micro-batch (``micro_batch``); rlreason's recipe sets its micro-batch size and clipping.
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, InitProcessGroupKwargs, gather_object
from torch.distributed.tensor import DTensor

from rlreason.launch import CPU_LAUNCH_HINT, LaunchError, single_process_cpu_launch

log = logging.getLogger(__name__)


def make_accelerator(micro_batch_size: int = 1, max_grad_norm: float = 0.0) -> Accelerator:
    """``micro_batch_size`` and ``max_grad_norm`` (0: no clipping) go into a DeepSpeed config,
    whose engine clips and batches; other strategies ignore them."""
    if single_process_cpu_launch(os.environ):  # the command line relaunches it; a library call cannot
        raise LaunchError("accelerate launch --cpu with several processes started only one. " + CPU_LAUNCH_HINT)
    on_cpu = not torch.cuda.is_available()
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    plugin = FullyShardedDataParallelPlugin() if on_cpu and fsdp else None  # read from the launch env
    if deepspeed and on_cpu:
        accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")])
    else:
        accelerator = Accelerator(cpu=on_cpu, fsdp_plugin=plugin)
    if plugin is not None and accelerator.num_processes > 1:
        if plugin.fsdp_version != 2:
            raise LaunchError("accelerate launch: FSDP on CPU needs --fsdp_version 2")
        # what accelerate's AcceleratorState sets for FSDP on GPUs (it re-reads PartialState)
        PartialState().distributed_type = accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
        log.info("FSDP2 on CPU over gloo, %d processes", accelerator.num_processes)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        deepspeed_plugin = accelerator.state.deepspeed_plugin
        configure_deepspeed(deepspeed_plugin.deepspeed_config, micro_batch_size, max_grad_norm)
        if not deepspeed_plugin.zero3_init_flag:
            # accelerate registers the config with transformers whatever the flag says, and
            # transformers then builds every model partitioned (zero.Init, which also draws a
            # random init differently): with the flag off, models load whole and prepare() shards
            from transformers.integrations import unset_hf_deepspeed_config
            unset_hf_deepspeed_config()
        log.info("DeepSpeed ZeRO-%d, %d processes", zero_stage(accelerator), accelerator.num_processes)
    return accelerator


def configure_deepspeed(config: dict, micro_batch_size: int, max_grad_norm: float) -> None:
    """Fill a DeepSpeed config from the recipe: rlreason accumulates micro-batches itself (the
    engine's own accumulation must be 1), clips as the recipe says, and under ZeRO-3 gathers the
    full weights when saving."""
    accumulation = config.get("gradient_accumulation_steps", "auto")
    if accumulation not in ("auto", 1):
        raise LaunchError(f"DeepSpeed config: gradient_accumulation_steps is {accumulation}; rlreason "
                          "accumulates over trainer.micro_batch_size itself, so set it to 1 (or auto)")
    config["gradient_accumulation_steps"] = 1
    config["train_micro_batch_size_per_gpu"] = micro_batch_size
    config["train_batch_size"] = "auto"
    config["gradient_clipping"] = max_grad_norm
    config.setdefault("zero_optimization", {})["stage3_gather_16bit_weights_on_model_save"] = True


def zero_stage(accelerator: Accelerator) -> int:
    """The DeepSpeed ZeRO stage, 0 when not under DeepSpeed."""
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return 0
    return accelerator.state.deepspeed_plugin.zero_stage


@contextlib.contextmanager
def micro_batch(accelerator: Accelerator, model: torch.nn.Module, last: bool):
    """Run one micro-batch's forward and backward pass inside this: gradients are reduced over
    processes after an optimizer step's ``last`` micro-batch only. Under DeepSpeed the engine
    also clips and steps the optimizer in that last backward pass (accelerate's gradient state
    tells it which one is last, as ``accelerator.accumulate`` does)."""
    accelerator.gradient_state._set_sync_gradients(last)
    try:
        if last:
            yield
        else:
            with accelerator.no_sync(model):
                yield
    finally:
        accelerator.gradient_state._set_sync_gradients(True)  # accelerate skips optimizer steps otherwise


def parameters_sharded(accelerator: Accelerator) -> bool:
    """Whether each process holds only a shard of the parameters (FSDP, ZeRO-3): then every
    forward pass is collective, and the full weights must be gathered to be read."""
    return accelerator.distributed_type == DistributedType.FSDP or zero_stage(accelerator) == 3


def backward_share(accelerator: Accelerator, loss: torch.Tensor) -> None:
    """Backpropagate this process's share of a loss normalised over the global batch: DDP and
    FSDP average gradients over processes, so the share is scaled back up by their number, which
    leaves the gradient of the global loss."""
    accelerator.backward(loss * accelerator.num_processes)


def gathered_zero3(model: torch.nn.Module):
    """A context in which a ZeRO-3 model's parameters are whole on every process (DeepSpeed
    gathers them on entry and frees the copies on exit; every process must enter together);
    for any other model, a context that does nothing."""
    params = [p for p in model.parameters() if hasattr(p, "ds_id")]  # ZeRO-3 marks what it partitions
    if not params:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params)


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
