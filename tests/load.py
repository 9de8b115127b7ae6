"""A loaded machine for tests of what must hold under load: busy processes beside the code under
test (a trainer's machine always has them). Never a timing: the tests assert verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

SPIN = "import os\nos.setsid()  # a session (and scheduler autogroup) of its own, as a separate job would have\nwhile True:\n    pass\n"


@contextmanager
def busy_cpus(per_core: int = 4):
    """``per_core`` spinning processes for every CPU core while the block runs (4x oversubscribed
    by default), all killed when it ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(per_core * (os.cpu_count() or 1))]
    try:
        yield len(spinners)
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
