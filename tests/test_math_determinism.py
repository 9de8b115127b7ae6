"""The same (completion, gold) gets the same math_accuracy verdict at any load.

Every row of the peers' suites and of the attack sets is scored by a freshly started process
(new worker pool, nothing warm but what the reward warms itself) on a quiet machine, then again
under four busy processes per core. The verdicts must be identical, row for row: a reward whose
verdict flips with load teaches noise.
"""

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.load import busy_cpus
from tests.test_math_peer_suites import MINIMUM_AGREEMENT, suite_rows

SCORE = """
import json, sys
from rewards.math_answer import math_accuracy
rows = [json.loads(line) for line in open(sys.argv[1])]
print(json.dumps(math_accuracy([r["completion"] for r in rows], answer=[r["answer"] for r in rows])))
"""


def fresh_verdicts(path) -> list:
    done = subprocess.run([sys.executable, "-c", SCORE, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_verdict_is_the_same_under_four_busy_processes_per_core(shared_data, tmp_path):
    rows = [json.loads(line) for line in (ROOT / "benchmarks" / "math_attack_cases.jsonl").read_text().splitlines()]
    rows += [row for suite in sorted(MINIMUM_AGREEMENT) for row in suite_rows(shared_data, suite)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({"completion": r["completion"], "answer": r["answer"]}) for r in rows))
    quiet = fresh_verdicts(path)
    with busy_cpus(per_core=4):
        loaded = fresh_verdicts(path)
    assert len(quiet) == len(rows) > 3100
    changed = [(rows[i]["completion"][-100:], rows[i]["answer"], quiet[i], loaded[i])
               for i in range(len(rows)) if quiet[i] != loaded[i]]
    assert not changed, changed
    assert None not in quiet  # no row of these sets reaches a limit
