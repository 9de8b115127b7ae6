"""The experts the rollout engine routed each token to, as they travel with the rollouts and are
replayed in the trainer's forward (``moe.routing_replay: rollout``, "R3").

Per completion, one small integer tensor (layers, P + L - 1, k): for every MoE layer (in forward
order), the top-k experts of each token of the prompt (P) and of the completion (L) but the last,
which the engine never feeds back (its output predicts nothing the loss uses). Pure functions:
the engine's recording in its own layout in, per-completion tensors out; per-completion tensors
in, the trainer's replay tape (``moe.Tape``) for a right-padded micro-batch out.
"""

from __future__ import annotations

import base64

import torch

NO_ROUTING = -1  # a token the engine did not route: the trainer's router chooses


def compact(indices: torch.Tensor) -> torch.Tensor:
    """Expert ids in the smallest integer type that holds them (uint8 up to 256 experts, int16
    past that or with ``NO_ROUTING`` entries)."""
    fits = indices.numel() == 0 or (indices.min() >= 0 and indices.max() < 256)
    return indices.to(torch.uint8 if fits else torch.int16)


def combine_weights(weights: torch.Tensor) -> torch.Tensor:
    """The engine's combine weights as they travel (bfloat16: 2 bytes per token, layer and expert)."""
    return weights.to(torch.bfloat16)


def per_completion(tape: dict[str, list[torch.Tensor]], forward_rows: list[torch.Tensor], prompt_width: int,
                   prompt_lengths: list[int], completion_lengths: list[int], finish=compact) -> list[torch.Tensor]:
    """Each row's routing from a decoding run's recording.

    Args:
        tape: router name -> one (tokens, k) selection per forward: first the prefill of the
            (B, prompt_width) left-padded prompts, then one decoding forward per step.
        forward_rows: for each decoding forward, the batch rows it ran on (in its order).
        prompt_width: P of the prefill; prompt_lengths, completion_lengths: each row's.
        finish: what each row's tensor is stored as (``compact`` ids, ``combine_weights``).
    Returns:
        one (layers, prompt + completion - 1, k) tensor per row.
    """
    layers = list(tape.values())
    batch = len(prompt_lengths)
    prefill = [selections[0].reshape(batch, prompt_width, -1) for selections in layers]
    where = [{row: i for i, row in enumerate(rows.tolist())} for rows in forward_rows]
    out = []
    for row, (prompt, length) in enumerate(zip(prompt_lengths, completion_lengths)):
        per_layer = []
        for selections, first in zip(layers, prefill):
            # completion token t is fed at decoding forward t (0-based), so tokens 0..length-2
            fed = [selections[1 + t][where[t][row]] for t in range(length - 1)]
            per_layer.append(torch.cat([first[row, prompt_width - prompt:], *[f.unsqueeze(0) for f in fed]]))
        out.append(finish(torch.stack(per_layer)).cpu())
    return out


def replay_tape(routings: list[torch.Tensor], names: list[str], width: int, weights: bool = False
                ) -> dict[str, list[torch.Tensor]]:
    """The replay tape of a right-padded micro-batch of ``width`` tokens per row: for each router
    (``names``, forward order), one (rows * width, k) selection; tokens without a recorded routing
    (each row's last token, padding) hold ``NO_ROUTING``. ``weights``: ``routings`` are combine
    weights (float32 out, 0 where none)."""
    layers, _, k = routings[0].shape
    if len(names) != layers:
        raise ValueError(f"the rollouts carry routing of {layers} MoE layers; the policy has {len(names)}")
    dtype, fill = (torch.float32, 0.0) if weights else (torch.long, NO_ROUTING)
    tape = {}
    for layer, name in enumerate(names):
        table = torch.full((len(routings), width, k), fill, dtype=dtype)
        for row, routing in enumerate(routings):
            table[row, :routing.shape[1]] = routing[layer].to(dtype)
        tape[name] = [table.reshape(-1, k)]
    return tape


def to_wire(routing: torch.Tensor) -> dict:
    """One completion's routing as JSON can carry it: dtype, shape and the raw bytes in base64."""
    return {"dtype": str(routing.dtype).removeprefix("torch."), "shape": list(routing.shape),
            "data": base64.b64encode(raw_bytes(routing)).decode("ascii")}


def raw_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's memory (numpy has no bfloat16: its bits go out as int16)."""
    tensor = tensor.contiguous()
    return (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy().tobytes()


def from_wire(message: dict) -> torch.Tensor:
    """The inverse of ``to_wire``."""
    dtype = {"uint8": torch.uint8, "int16": torch.int16, "bfloat16": torch.bfloat16}[message["dtype"]]
    raw = bytearray(base64.b64decode(message["data"]))
    return torch.frombuffer(raw, dtype=dtype).reshape(message["shape"]) if raw else \
        torch.zeros(message["shape"], dtype=dtype)
