"""The maths does not change with the number of processes: one process vs two (DDP, gloo)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test runs 2 processes

TORCHRUN = Path(sys.executable).with_name("torchrun")


def run(out: Path, processes: int, loss_type: str, scale: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", str(processes),
                           str(ROOT / "tests" / "distributed_update.py"), str(out), loss_type, scale],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out / f"result-{processes}.pt")


@pytest.mark.parametrize("loss_type, scale", [("grpo", "group"), ("dapo", "batch"), ("dr_grpo", "none")])
def test_two_processes_take_the_same_steps_as_one(tmp_path, loss_type, scale):
    one = run(tmp_path, 1, loss_type, scale)
    two = run(tmp_path, 2, loss_type, scale)
    assert one["losses"][0] == pytest.approx(two["losses"][0], abs=1e-5)
    assert one["losses"][1] == pytest.approx(two["losses"][1], abs=1e-5)
    for name, weight in one["weights"].items():
        assert torch.allclose(weight, two["weights"][name], atol=1e-4), name
    moved = max((one["weights"][n] - w).abs().max().item() for n, w in two["weights"].items())
    assert moved < 1e-4
