"""Run by tests/test_distributed.py under torchrun: two GRPO updates on fixed batches.

Every process builds the same global batches (prompts, completions, rewards drawn from one
seed, as the rollout engine would have produced them), keeps its share of the groups, and
takes the update steps; rank 0 writes the losses and the final weights to ``OUT``.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlreason.batches import ScoredBatch  # noqa: E402
from rlreason.recipe import Recipe, build  # noqa: E402
from rlreason.session import open_session  # noqa: E402
from rewards.suite import RewardBatch  # noqa: E402
from rlreason.rollouts import Rollouts  # noqa: E402
from rlreason.advantages import group_advantages  # noqa: E402
from rlreason.update import update_policy  # noqa: E402
from tests.conftest import TINY  # noqa: E402

GROUPS, G = 4, 4


def global_batch(session, step: int) -> ScoredBatch:
    g = torch.Generator().manual_seed(step)
    examples = session.splits.train[step * GROUPS:(step + 1) * GROUPS]
    prompts = session.prompt_ids(examples)
    completions = [torch.randint(3, 60, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist()
                   for _ in range(GROUPS * G)]
    rewards = torch.rand(GROUPS * G, generator=g).round().tolist()
    rollouts = Rollouts(prompt_ids=[prompts[i // G] for i in range(GROUPS * G)], completion_ids=completions,
                        rollout_logprobs=None, finish_reason=["stop"] * (GROUPS * G),
                        group_index=[i // G for i in range(GROUPS * G)])
    return ScoredBatch(examples, rollouts, [""] * (GROUPS * G), RewardBatch({"r": rewards}, rewards),
                       torch.tensor(rewards), G)


def main(out: Path, loss_type: str, scale: str) -> None:
    recipe = build(Recipe, {
        "output_dir": str(out / "run"), "model": {"tiny": dict(TINY)},
        "data": {"num_eval": 4, "synthetic": {"num_train": 64}},
        "rollout": {"backend": "hf", "num_generations": G, "max_new_tokens": 6},
        "algo": {"loss_type": loss_type, "scale_rewards": scale, "num_iterations": 2},
        "trainer": {"prompts_per_step": GROUPS, "micro_batch_size": 3, "learning_rate": 1e-2},
    }, "")
    session = open_session(recipe, "distributed test")
    rank, world = session.accelerator.process_index, session.accelerator.num_processes
    share = list(range(rank * GROUPS // world, (rank + 1) * GROUPS // world))
    losses = []
    for step in range(2):
        full = global_batch(session, step)
        mine = full.take_groups(share)
        advantages = group_advantages(mine.trained_total, G, scale, batch_rewards=full.trained_total)
        losses.append(update_policy(session, mine, advantages)["loss"])
    if session.accelerator.is_main_process:
        state = {n: p.detach().clone() for n, p in session.policy.named_parameters()}
        torch.save({"losses": losses, "weights": state}, out / f"result-{world}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
