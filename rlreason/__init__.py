"""rlreason: GRPO-style reinforcement learning with rule-based rewards."""

__version__ = "0.1.0"
