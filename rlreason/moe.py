"""Mixture-of-Experts controls for RL: find routers, freeze them, record and replay routing,
measure expert load and routing drift.

Everything works by hooking transformers' own router modules (``*TopKRouter``/``*TopkRouter``,
which return ``(router_logits, expert_weights, expert_indices)``); no model code is forked.

Routing replay (``moe.routing_replay: old_policy``): the old-policy pass records each token's
selected experts; the policy update then uses the same selection. The router's logits are still
recomputed, and the weights of the recorded experts are taken from them with the family's own
formula, so the router keeps its gradient. It removes the importance-ratio noise that comes from
tokens switching experts between the old and the new policy.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch


def routers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The router modules of ``model``, in forward order."""
    return [(name, module) for name, module in model.named_modules()
            if type(module).__name__.lower().endswith("topkrouter")]


def freeze_routers(model: torch.nn.Module) -> int:
    """Stop training the routers (their adapters too); returns how many tensors were frozen."""
    frozen = 0
    for _, router in routers(model):
        for param in router.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen += 1
    return frozen


def weights_of_selected(router: torch.nn.Module, logits: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The expert weights ``router`` gives the experts ``indices`` from ``logits`` (tokens, E).

    The same formula as the router's forward, only with the selection given.
    """
    family = type(router).__name__
    if family.startswith("GptOss"):  # softmax over the selected logits
        return torch.softmax(logits.gather(-1, indices), dim=-1)
    if family.startswith("DeepseekV3"):  # sigmoid scores, optionally normalised, then scaled
        weights = logits.float().sigmoid().gather(-1, indices)
        if router.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return weights * router.routed_scaling_factor
    probs = torch.softmax(logits.float(), dim=-1).gather(-1, indices)
    if family.startswith("DeepseekV2"):
        return probs * router.routed_scaling_factor
    if getattr(router, "norm_topk_prob", family.startswith("Mixtral")):
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


@dataclass
class RoutingStats:
    """Token counts over one or more forward passes (only tokens the mask marks as real)."""

    changed: int = 0  # of which the experts used differ from the recorded ones
    compared: int = 0  # token-layer pairs that had a recorded selection to compare with
    load: dict[str, torch.Tensor] = field(default_factory=dict)  # router -> tokens per expert
    # per router: tokens whose top-k set the router itself chose differs from the rollout engine's,
    # and tokens the engine routed (moe.routing_replay: rollout)
    engine_differs: dict[str, int] = field(default_factory=dict)
    engine_compared: dict[str, int] = field(default_factory=dict)
    # per router: tokens the forward sent to other experts than the engine's (after any replay)
    engine_routed_differs: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        out = {}
        if self.compared:
            out["moe/topk_changed"] = self.changed / self.compared
        if self.engine_compared:
            for i, name in enumerate(self.engine_compared):
                compared = max(self.engine_compared[name], 1)
                out[f"moe/layer{i}/engine_topk_differs"] = self.engine_differs[name] / compared
                out[f"moe/layer{i}/engine_routed_differs"] = self.engine_routed_differs.get(name, 0) / compared
            compared = max(sum(self.engine_compared.values()), 1)
            out["moe/engine_topk_differs"] = sum(self.engine_differs.values()) / compared
            out["moe/engine_routed_differs"] = sum(self.engine_routed_differs.values()) / compared
        imbalances = []
        for i, counts in enumerate(self.load.values()):
            share = counts / counts.sum().clamp(min=1)
            imbalance = (share.max() / share.mean()).item()
            out[f"moe/layer{i}/max_load"] = share.max().item()
            out[f"moe/layer{i}/imbalance"] = imbalance
            imbalances.append(imbalance)
        if imbalances:
            out["moe/imbalance"] = sum(imbalances) / len(imbalances)
        return out


Tape = dict  # router name -> list of recorded (tokens, k) expert indices, one per forward


@contextlib.contextmanager
def routing(model: torch.nn.Module, token_mask: torch.Tensor, *, record: Tape | None = None,
            replay: Tape | None = None, compare: Tape | None = None, engine: Tape | None = None,
            stats: RoutingStats | None = None, replay_weights: Tape | None = None,
            record_weights: Tape | None = None) -> Iterator[None]:
    """Hook every router for the forward passes inside the block.

    Args:
        token_mask: (tokens,) True for real tokens, in the order routers see them (batch-major).
        record: append each router's selection to ``record[name]``.
        replay: use the selections in ``replay[name]`` (consumed in order) instead of the router's;
            a token whose entry is negative keeps the router's own.
        compare: count tokens whose used selection differs from the one in ``compare[name]``.
        engine: the rollout engine's selections (negative: none); count, per router, the tokens
            whose own top-k set (before any replay) differs from the engine's, and those the
            forward routed elsewhere than the engine (after replay).
        stats: where counts and per-expert load accumulate.
        replay_weights: the combine weights of the selections in ``replay`` (same order), used as
            given for the tokens replayed (``moe.replay_engine_weights``: no gradient reaches the
            router through them); without it they come from the router's own logits.
        record_weights: append each router's combine weights to ``record_weights[name]``.
    """
    cursors: dict[str, int] = defaultdict(int)
    mask = token_mask.bool()

    def hook_for(name: str):
        def hook(router, args, output):
            logits, weights, indices = output
            position = cursors[name]
            cursors[name] += 1
            # past the tapes' end: gradient checkpointing recomputing a layer in the backward pass;
            # it must route as the forward did, and count nothing twice
            taped = [len(tape[name]) for tape in (replay, compare, engine) if tape is not None]
            recomputed = bool(taped) and position >= taped[0]
            position = position % taped[0] if recomputed else position
            if stats is not None and engine is not None and not recomputed:
                theirs = engine[name][position].to(indices.device)
                routed = mask & (theirs[:, 0] >= 0)
                engine_set = theirs[routed].sort(dim=-1).values
                differs = (indices[routed].sort(dim=-1).values != engine_set).any(dim=-1)
                stats.engine_differs[name] = stats.engine_differs.get(name, 0) + int(differs.sum())
                stats.engine_compared[name] = stats.engine_compared.get(name, 0) + int(routed.sum())
            if replay is not None:
                replayed = replay[name][position].to(indices.device)
                indices = torch.where(replayed >= 0, replayed, indices)
                weights = weights_of_selected(router, logits, indices).to(weights.dtype)
                if replay_weights is not None:
                    given = replay_weights[name][position].to(weights.device, weights.dtype)
                    weights = torch.where(replayed[:, :1] >= 0, given, weights)
            if stats is not None and engine is not None and not recomputed:  # what the forward used
                routed_differs = (indices[routed].sort(dim=-1).values != engine_set).any(dim=-1)
                stats.engine_routed_differs[name] = stats.engine_routed_differs.get(name, 0) + int(routed_differs.sum())
            if record is not None and not recomputed:
                record.setdefault(name, []).append(indices.detach().clone())
            if record_weights is not None and not recomputed:
                record_weights.setdefault(name, []).append(weights.detach().float())
            if stats is not None and not recomputed:
                real = indices[mask]
                counts = torch.bincount(real.flatten(), minlength=logits.shape[-1]).float()
                stats.load[name] = stats.load.get(name, 0) + counts.cpu()
                if compare is not None:
                    before = compare[name][position].to(indices.device)[mask]
                    differs = (real.sort(dim=-1).values != before.sort(dim=-1).values).any(dim=-1)
                    stats.changed += int(differs.sum())
                    stats.compared += real.shape[0]
            return logits, weights, indices
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in routers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def router_z_loss(router_logits: tuple[torch.Tensor, ...], token_mask: torch.Tensor) -> torch.Tensor:
    """ST-MoE's router z-loss: mean over real tokens and layers of ``logsumexp(logits)^2``."""
    mask = token_mask.bool()
    per_layer = [torch.logsumexp(logits.float()[mask], dim=-1).pow(2).mean() for logits in router_logits]
    return torch.stack(per_layer).mean()
