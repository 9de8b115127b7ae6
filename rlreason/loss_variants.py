"""The policy-loss variants by name (``algo.loss_type``): what each aggregates, the level of its
importance ratio, its default clip range. The one list of loss names: the recipe's choices and
``losses.py`` both read it (kept apart from ``losses.py`` so reading a recipe needs no torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    aggregation: str  # "sequence_mean" | "token_mean" | "constant" | "sequence_sum"
    ratio_level: str  # "token" | "sequence" | "sequence_token"
    epsilon: float
    epsilon_high: float  # cispo: the cap of its stop-gradient ratio (epsilon_max), not 1 + epsilon
    objective: str = "clip"  # "clip" | "cispo" | "sapo" | "vespo" | "clip_cov" | "kl_cov"


VARIANTS = {
    "grpo": Variant("sequence_mean", "token", 0.2, 0.2),
    "bnpo": Variant("token_mean", "token", 0.2, 0.2),
    "dapo": Variant("token_mean", "token", 0.2, 0.28),
    "dr_grpo": Variant("constant", "token", 0.2, 0.2),
    "gspo": Variant("sequence_mean", "sequence", 3e-4, 4e-4),
    "gspo_token": Variant("sequence_mean", "sequence_token", 3e-4, 4e-4),
    "cispo": Variant("token_mean", "token", 0.2, 5.0, "cispo"),
    "sapo": Variant("sequence_mean", "token", 0.2, 0.2, "sapo"),
    "luspo": Variant("sequence_sum", "sequence", 3e-4, 4e-4),
    "vespo": Variant("token_mean", "token", 0.2, 0.2, "vespo"),
    "clip_cov": Variant("token_mean", "token", 0.2, 0.2, "clip_cov"),
    "kl_cov": Variant("token_mean", "token", 0.2, 0.2, "kl_cov"),
}
