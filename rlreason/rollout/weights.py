"""The policy's current weights under the names and shapes a checkpoint (and vLLM's loader) uses.

Parameters sharded by FSDP2 (DTensors) or ZeRO-3 are gathered: every process must read them together.
Two conversions, both done by the libraries that own the formats:
- LoRA: peft merges the adapters into the base weights for the duration of the read and
  unmerges them afterwards; adapter tensors themselves are never pushed.
- MoE experts: transformers keeps experts fused in memory (``mlp.experts.gate_up_proj`` as one
  3-D tensor); ``revert_weight_conversion`` (what ``save_pretrained`` uses) splits them back
  into the per-expert ``mlp.experts.{e}.gate_proj.weight`` ... tensors checkpoints hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel
from transformers.core_model_loading import revert_weight_conversion

from rlreason.distributed import gathered_zero3, unsharded


@contextlib.contextmanager
def checkpoint_weights(policy: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{checkpoint name: tensor}`` of the policy as it is now (LoRA merged).

    The tensors are views of the live parameters: read them inside the ``with`` block.
    """
    adapted = hasattr(policy, "merge_adapter")  # a peft model
    with gathered_zero3(policy):
        if adapted:
            policy.merge_adapter()
        try:
            base: PreTrainedModel = policy.get_base_model() if adapted else policy
            state = {name.replace(".base_layer", ""): unsharded(tensor.detach())
                     for name, tensor in base.state_dict().items() if "lora_" not in name}
            yield revert_weight_conversion(base, state)
        finally:
            if adapted:
                policy.unmerge_adapter()

