"""The experts an in-process vLLM engine routed each token to (``moe.routing_replay: rollout``).

vLLM returns routed experts only from its GPU model runner (``enable_return_routed_experts``); the
CPU runner has no such output. Here the engine's own routers report their choice through vLLM's
capture hook (``bind_routed_experts_capturer``, the hook its GPU capturer uses), and each forward's
rows are filed by the request and position they belong to, read off the model runner's batch.

A completion gets the rows its own request computed. Tokens it did not compute (a prompt the
prefix cache served) get the rows of the first forward that ran the same prefix of token ids,
which is the one whose keys and values the cache holds. Requests are matched to completions by
the prefix key of their last fed token.
"""

from __future__ import annotations

import torch

from rlreason.rollout_routing import NO_ROUTING, combine_weights, compact


class EngineRoutingRecorder:
    """Attached to an in-process engine's model runner: while ``active``, every token the engine
    runs through the model is filed with its top-k experts per MoE layer (and, with ``weights``,
    their combine weights). ``clear`` forgets everything (with new weights, as the engine's prefix
    cache does); ``finish_call`` forgets the finished requests but keeps the prefixes."""

    def __init__(self, runner, weights: bool = False):
        from vllm.model_executor.layers.fused_moe.layer import MoERunner
        from vllm.model_executor.layers.fused_moe.routed_experts_capturer import bind_routed_experts_capturer

        if not hasattr(runner, "_model_forward") or not hasattr(runner, "input_batch"):
            raise RuntimeError(f"moe.routing_replay: rollout: recording inside vLLM needs its V1 model runner, "
                               f"not {type(runner).__name__}")
        self.runner = runner
        self.active = False  # the engine turns it on for the calls it records
        self.unrecorded = False  # a forward ran while inactive: its prefixes may be cached unrecorded
        # this forward: decoder layer index -> (tokens, k) expert ids, and their combine weights
        self.layers: dict[int, torch.Tensor] = {}
        self.layer_weights: dict[int, torch.Tensor] = {}
        self.shape: tuple[int, int] | None = None  # (MoE layers, k), once a forward is filed
        self.clear()
        bind_routed_experts_capturer(runner.model, self)
        self.weights = weights
        if weights:  # the weights are not in vLLM's hook: the router's own answer carries them
            for module in runner.model.modules():
                if isinstance(module, MoERunner):
                    # models whose scaling factor vLLM applies to the experts' output (DeepSeek's)
                    self.keep_weights(module.router, module.layer_id, float(module.routed_scaling_factor))
        forward = runner._model_forward

        def recording_forward(*args, **kwargs):
            out = forward(*args, **kwargs)
            if self.active and self.layers:
                self.file()
            elif not self.active:
                self.unrecorded = True
            self.layers, self.layer_weights = {}, {}
            return out

        runner._model_forward = recording_forward

    def capture(self, layer_id: int, topk_ids: torch.Tensor) -> None:
        """vLLM's capture hook: one MoE layer's (tokens, k) expert ids of this forward."""
        if self.active:
            self.layers[layer_id] = topk_ids.to("cpu", torch.int16, copy=True)

    def keep_weights(self, router, layer_id: int, scale: float) -> None:
        select = router.select_experts

        def selecting(*args, **kwargs):
            weights, ids = select(*args, **kwargs)
            if self.active:
                self.layer_weights[layer_id] = weights.to("cpu", torch.float32, copy=True) * scale
            return weights, ids

        router.select_experts = selecting

    def clear(self) -> None:
        """Forget every filed prefix and request."""
        self.by_prefix: dict[int, tuple] = {}  # prefix key -> (ids, weights) of its first forward
        self.unrecorded = False
        self.finish_call()

    def finish_call(self) -> None:
        """Forget the requests of a finished ``generate`` call (the prefixes stay, for the cache)."""
        self.by_request: dict[str, dict[int, tuple]] = {}  # request -> position -> (ids, weights)
        self.last_key: dict[str, tuple[int, int]] = {}  # request -> (position, prefix key there)
        self.ended_at: dict[int, str] = {}  # prefix key of a request's last filed token -> request

    def file(self) -> None:
        """File this forward's rows by request and position (the runner's batch, as it ran)."""
        batch = self.runner.input_batch
        count = batch.num_reqs
        starts = self.runner.query_start_loc.cpu[:count + 1].tolist()
        order = sorted(self.layers)
        routed = torch.stack([self.layers[layer] for layer in order], dim=1)  # (tokens, layers, k)
        weights = torch.stack([self.layer_weights[layer] for layer in order], dim=1) if self.layer_weights else None
        self.shape = routed.shape[1:]
        for row, request in enumerate(batch.req_ids[:count]):
            first, end = starts[row], starts[row + 1]
            if first == end:
                continue
            start = int(batch.num_computed_tokens_cpu[row])  # this forward's first position of the request
            keys = self.prefix_keys(request, batch.token_ids_cpu[row], start, start + end - first - 1)
            own = self.by_request.setdefault(request, {})
            for offset, key in enumerate(keys):
                filed = (routed[first + offset], None if weights is None else weights[first + offset])
                own[start + offset] = filed
                self.by_prefix.setdefault(key, filed)
            self.ended_at[keys[-1]] = request

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
        keys, key = [], 0
        for token in (prompt + completion)[:-1]:
            key = hash((key, token))
            keys.append(key)
        own = self.by_request.get(self.ended_at.get(keys[-1]) if keys else None, {})
        missing = (torch.full(self.shape, NO_ROUTING, dtype=torch.int16),
                   torch.zeros(self.shape) if self.weights else None)
        rows = [own.get(p) or self.by_prefix.get(k, missing) for p, k in enumerate(keys)]
        ids = compact(torch.stack([r[0] for r in rows], dim=1))
        if not self.weights:
            return ids, None
        return ids, combine_weights(torch.stack([r[1] for r in rows], dim=1))
