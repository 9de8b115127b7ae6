"""The experts an in-process vLLM engine routed each token to (``moe.routing_replay: rollout``).

vLLM returns routed experts only from its GPU model runner (``enable_return_routed_experts``); the
CPU runner has no such output. Here the engine's own routers report their choice through vLLM's
capture hook (``bind_routed_experts_capturer``, the hook its GPU capturer uses), and each forward's
rows are filed by the request and position they belong to, read off the model runner's batch.

Tokens are filed under their prefix (the token ids up to and including them), not under the
request: a request whose prompt the prefix cache served never runs those tokens through the
model, and the routing that made their keys and values is the one of the request that did.
"""

from __future__ import annotations

import torch

from rlreason.rollout_routing import NO_ROUTING, combine_weights, compact


class EngineRoutingRecorder:
    """Attached to an in-process engine's model runner: every token the engine runs through the
    model is filed with its top-k experts per MoE layer (and, with ``weights``, their combine
    weights), until ``clear`` (the engine's prefix cache lives as long: both end when new weights
    load)."""

    def __init__(self, runner, weights: bool = False):
        from vllm.model_executor.layers.fused_moe.layer import MoERunner
        from vllm.model_executor.layers.fused_moe.routed_experts_capturer import bind_routed_experts_capturer

        self.runner = runner
        # this forward: decoder layer index -> (tokens, k) expert ids, and their combine weights
        self.layers: dict[int, torch.Tensor] = {}
        self.layer_weights: dict[int, torch.Tensor] = {}
        self.by_prefix: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}  # prefix key -> (layers, k) each
        self.last_key: dict[str, tuple[int, int]] = {}  # request -> (position, prefix key there)
        self.shape: tuple[int, int] | None = None  # (MoE layers, k), once a forward is filed
        bind_routed_experts_capturer(runner.model, self)
        if weights:  # the weights are not in vLLM's hook: the router's own answer carries them
            for module in runner.model.modules():
                if isinstance(module, MoERunner):
                    self.keep_weights(module.router, module.layer_id)
        forward = runner._model_forward

        def recording_forward(*args, **kwargs):
            out = forward(*args, **kwargs)
            if self.layers:
                self.file(kwargs["positions"])
            self.layers, self.layer_weights = {}, {}
            return out

        runner._model_forward = recording_forward

    def capture(self, layer_id: int, topk_ids: torch.Tensor) -> None:
        """vLLM's capture hook: one MoE layer's (tokens, k) expert ids of this forward."""
        self.layers[layer_id] = topk_ids.to("cpu", torch.int16, copy=True)

    def keep_weights(self, router, layer_id: int) -> None:
        select = router.select_experts

        def selecting(*args, **kwargs):
            weights, ids = select(*args, **kwargs)
            self.layer_weights[layer_id] = weights.to("cpu", torch.float32, copy=True)
            return weights, ids

        router.select_experts = selecting

    def clear(self) -> None:
        """Forget every filed prefix: with new weights, as the engine's prefix cache does."""
        self.by_prefix, self.last_key = {}, {}

    def file(self, positions: torch.Tensor) -> None:
        """File this forward's rows by request and position (the runner's batch, as it ran)."""
        batch = self.runner.input_batch
        count = batch.num_reqs
        starts = self.runner.query_start_loc.cpu[:count + 1].tolist()
        positions = positions[:starts[-1]].cpu().tolist()
        order = sorted(self.layers)
        routed = torch.stack([self.layers[layer] for layer in order], dim=1)  # (tokens, layers, k)
        weights = torch.stack([self.layer_weights[layer] for layer in order], dim=1) if self.layer_weights else None
        self.shape = routed.shape[1:]
        for row, request in enumerate(batch.req_ids[:count]):
            first, end = starts[row], starts[row + 1]
            if first == end:
                continue
            tokens = batch.token_ids_cpu[row]
            keys = self.prefix_keys(request, tokens, positions[first], positions[end - 1])
            for key, token in zip(keys, range(first, end)):
                self.by_prefix[key] = (routed[token], None if weights is None else weights[token])

    def prefix_keys(self, request: str, tokens, first: int, last: int) -> list[int]:
        """The prefix keys of positions ``first..last`` of ``request`` (continuing from the key
        its previous forward ended on, when it ended just before ``first``)."""
        position, key = self.last_key.get(request, (-1, 0))
        if position != first - 1:
            position, key = -1, 0
        keys = []
        for p in range(position + 1, last + 1):
            key = hash((key, int(tokens[p])))
            if p >= first:
                keys.append(key)
        self.last_key[request] = (last, key)
        return keys

    def routing_of(self, prompt: list[int], completion: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(MoE layers, P + L - 1, k) expert ids for a finished completion, its prompt's tokens and
        every completion token but the last (never fed back), ``NO_ROUTING`` where none was filed;
        and their combine weights (bfloat16, 0 where none), if recorded."""
        if self.shape is None:
            raise RuntimeError("the engine's MoE routers reported no routing (is the model a MoE?)")
        missing = (torch.full(self.shape, NO_ROUTING, dtype=torch.int16), torch.zeros(self.shape))
        rows, key = [], 0
        for token in (prompt + completion)[:-1]:
            key = hash((key, token))
            rows.append(self.by_prefix.get(key, missing))
        ids = compact(torch.stack([r[0] for r in rows], dim=1))
        if rows and rows[0][1] is None:
            return ids, None
        return ids, combine_weights(torch.stack([r[1] for r in rows], dim=1))
