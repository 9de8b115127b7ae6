"""Where a measurement ran: the commit and the machine, for the tables in docs/."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """HEAD, marked when tracked files differ from it; the measurements' own outputs (docs/ and
    benchmarks/*results*.json, which a run rewrites as it goes) do not count."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True).stdout.splitlines()
    dirty = [line[3:] for line in changed if not is_output(line[3:])]
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def is_output(path: str) -> bool:
    return path.startswith("docs/") or (path.startswith("benchmarks/") and "results" in path
                                        and path.endswith(".json"))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def measured_apart(command: list[str]) -> dict:
    """Run one measurement in a process of its own (its memory and warm-up its own); its result is
    the JSON object on the last line it prints."""
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_outputs(out: Path | None, doc: Path | None, provenance: dict, results: list[dict], document: str) -> None:
    """The run's results with where they ran to ``out`` (JSON), and its markdown to ``doc``."""
    if out:
        out.write_text(json.dumps({**provenance, "results": results}, indent=2) + "\n")
    if doc:
        doc.write_text(document)
