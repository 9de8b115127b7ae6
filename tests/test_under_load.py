"""What must hold on a loaded machine, checked on one: whole test files rerun with four spinning
processes per core beside them (``RLREASON_TEST_LOAD``, see conftest), asserting the same exact
verdicts as on a quiet machine (every attack 0.0, every honest program 1.0, nothing unscored;
MBPP's 974 references included, whose task 123 needs about 5 s of CPU against its 10 s budget)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_sandbox_gives_the_same_verdicts_under_4x_oversubscription():
    files = ["tests/test_code_sandbox.py", "tests/test_code_honest.py"]
    env = {**os.environ, "RLREASON_TEST_LOAD": "4"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],  # MBPP's references too
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:]
