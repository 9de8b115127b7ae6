"""Code rewards: run model-written programs in the sandbox, judged by tests they cannot reach.

- ``code_accuracy``: fraction of a row's tests passed; ``code_pass``: 1.0 only if all pass.
- The program is the last fenced code block of the completion (```python ... ```) that defines
  the function under test (else the last block), or the whole completion when there is none.
  With a ``prompt`` column that is Python (HumanEval), the prompt is put in front, so a
  completion may be just the function body; a prompt in prose (MBPP-sanitized) is not.
- Test styles, chosen per row by its columns:
  (a) calls: ``test`` (defining ``check(candidate)``) + ``entry_point`` (HumanEval), or
      ``test_list`` (MBPP: one assert per test, with ``test_setup_code``/``test_imports``);
      the tests run in a judge process of their own and reach the program's functions only
      through calls that carry plain data (``rewards.sandbox.plain_data``) both ways;
  (b) stdin/stdout: ``tests`` = [{"input": ..., "output": ...}], one execution per case, its
      stdout compared here word by word, an expected decimal within 1e-6 (``same_output``;
      Codeforces/APPS/LiveCodeBench).
- Rows without tests score None, and so do rows the sandbox itself failed on (counted as
  ``sandbox_errors``, one example logged); a program that misbehaves scores 0.0.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rewards import tally
from rewards.conversation import text_completions
from rewards.registry import reward
from rewards.sandbox.client import Limits, Sandbox, shared
from rewards.sandbox.judge import called_names
from rewards.sandbox.judge import syntax as parsed  # a shared tree: read, never changed

log = logging.getLogger(__name__)

# possessive runs: no backtracking over spaces (a completion of "```" and 100k spaces is linear)
# a fence may be indented (a list item), carry words after its language, use ~~~, or be left open
# at the end (a completion cut at its length limit)
_FENCE = re.compile(r"^([ \t]*+)(```|~~~)[ \t]*+([A-Za-z0-9_+-]*+)[^\n]*+\n(.*?)(?:^[ \t]*+\2|\Z)", re.S | re.M)


def extract_code(completion: str, entry_points: set[str] | frozenset[str] = frozenset()) -> str:
    """The last fenced code block that defines one of ``entry_points`` (a usage example or a
    test block after the solution is not the solution), with the earlier blocks that define
    what it uses (helpers), else the last fenced block, else the whole completion; Windows
    line ends read as Unix ones.

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1\\n'
    >>> extract_code("```python\\ndef f():\\n    return 1\\n```\\nUse it:\\n```python\\nprint(f())\\n```", {"f"})
    'def f():\\n    return 1\\n'
    >>> extract_code("    return x + 1")
    '    return x + 1'
    """
    completion = completion.replace("\r\n", "\n").lstrip("\ufeff")
    blocks = [textwrap.dedent(code) if indent else code for indent, _, _, code in _FENCE.findall(completion)]
    if not blocks:
        return completion
    defining = [i for i, code in enumerate(blocks) if defines(code, entry_points)]
    if not defining:  # a function's body (HumanEval) rather than the usage block after it
        bodies = [code for code in blocks if code[:1] in (" ", "\t")]
        return (bodies or blocks)[-1]
    chosen = blocks[defining[-1]]
    needed = free_names(chosen)
    helpers = [code for code in blocks[:defining[-1]] if is_definitions(code) and needed & defined_functions(code)]
    return "\n".join([*helpers, chosen])


def is_definitions(code: str) -> bool:
    """Whether ``code`` only defines (functions, classes, imports, constants): a helper block,
    not a usage example that runs something."""
    body = parsed(code).body
    return bool(body) and all(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                                ast.ImportFrom, ast.Assign, ast.AnnAssign)) for node in body)


def defined_functions(code: str) -> set[str]:
    return {node.name for node in parsed(code).body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def defines(code: str, names) -> bool:
    return any(re.search(rf"^\s*+(?:async\s++)?(?:def|class)\s++{re.escape(name)}\b", code, re.M) for name in names)


def top_level_names(code: str) -> set[str]:
    """Functions, classes and variables ``code`` defines at its top level."""
    names = set()
    for node in parsed(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def free_names(code: str) -> set[str]:
    """Names ``code`` reads that it binds nowhere (not at its top level, not as a parameter or
    a local)."""
    tree = parsed(code)
    bound = top_level_names(code) | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, *([n.vararg] if n.vararg else []), *([n.kwarg] if n.kwarg else [])]}
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound


def is_code(text: str) -> bool:
    """Whether a ``prompt`` is Python that defines or imports something (HumanEval's signature
    and docstring) rather than prose (MBPP-sanitized's task description, even one word that
    happens to parse), which is neither put before the program nor run."""
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
               for node in parsed(text.replace("\r\n", "\n")).body)


def assemble(code: str, prompt: str, entry_point: str | None) -> str:
    """Prompt (if any: Python, see ``is_code``) + code: a body completes the prompt's function,
    a full definition (or a program that is not a body) starts on a line of its own."""
    if not prompt:
        return code
    prompt = prompt.replace("\r\n", "\n")
    is_body = code[:1] in (" ", "\t") and not (entry_point and re.search(rf"^def {re.escape(entry_point)}\b", code, re.M))
    return prompt + ("" if is_body and prompt.endswith("\n") else "\n") + code


def called_in_every(tests: list[str]) -> set[str]:
    """Names every test calls (MBPP's function under test, and helpers such as ``abs``)."""
    found = [{name for name, _ in called_names(test)} for test in tests]
    return set.intersection(*found) if found else set()


def run_calls(program: str, prelude: str, tests: list[str], entry_point: str | None, budget: Budget,
              sandbox: Sandbox) -> float:
    """One execution serves the program's functions; the judge runs each test on its budget."""
    wall = min(budget.completion_seconds, budget.test_seconds * (len(tests) + 1))
    spec = {"prelude": prelude, "tests": tests, "entry_point": entry_point,
            "test_seconds": budget.test_seconds, "completion_seconds": wall}
    verdict = sandbox.run_calls(program, spec, budget.limits(wall))
    return min(verdict.passed, len(tests)) / len(tests)


def run_io(program: str, cases: list[dict], budget: Budget, sandbox: Sandbox) -> float:
    """One execution per case, each within the test budget and all within the completion's
    (budgets of time not spent waiting for a CPU, as each execution's supervisor measures it)."""
    passed, remaining = 0, budget.completion_seconds
    for case in cases:
        if remaining <= 0:
            break  # the completion's budget is spent: the remaining cases fail
        done = sandbox.run_main(program, str(case["input"]), budget.limits(min(budget.test_seconds, remaining)))
        remaining -= max(done.seconds, 0.001)
        passed += done.returncode == 0 and same_output(done.stdout, str(case["output"]))
    return passed / len(cases)


def same_output(got: str, expected: str) -> bool:
    """Equal line by line and word by word, ignoring spaces at line ends and blank lines at
    the ends; an expected decimal (``0.333333333``, ``1e-3``) matches a number within 1e-6 of
    it, relative to its size above 1 (contest checkers' "absolute or relative error"). An
    output with more line breaks than the expected one has lines is refused before it is split
    (a program that floods stdout with short lines costs a count, not millions of strings).

    >>> same_output("6  \\n\\n", "6"), same_output("1\\n2", "1 2"), same_output("x\\n" * 10**6, "x")
    (True, False, False)
    >>> same_output("0.3333333333333333", "0.333333333"), same_output("0.3334", "0.333333333"), same_output("3.0", "3")
    (True, False, False)
    """
    want = [line.rstrip() for line in expected.strip().splitlines()]
    got = got.strip()
    if got.count("\n") >= max(len(want), 1):
        return False
    lines = [line.rstrip() for line in got.splitlines()]
    if lines == want:
        return True
    return len(lines) == len(want) and all(same_words(a, b) for a, b in zip(lines, want))


_DECIMAL = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][-+]?\d+)")


def same_words(got: str, expected: str) -> bool:
    ours, theirs = got.split(), expected.split()
    return len(ours) == len(theirs) and all(a == b or close_decimal(a, b) for a, b in zip(ours, theirs))


def close_decimal(got: str, expected: str) -> bool:
    if len(got) > 64 or len(expected) > 64 or not _DECIMAL.fullmatch(expected):
        return False
    try:
        a, b = float(got), float(expected)
    except ValueError:
        return False
    return math.isfinite(a) and abs(a - b) <= 1e-6 * max(1.0, abs(b))


@dataclass(frozen=True)
class Budget:
    test_seconds: float  # wall clock for one test (one stdin/stdout case, or one assert test)
    completion_seconds: float  # wall clock for all tests of one completion together
    memory_mb: int

    def limits(self, wall: float) -> Limits:
        return Limits(wall_seconds=wall, cpu_seconds=max(1, int(wall + 0.999)), memory_bytes=self.memory_mb << 20)


class RowError(ValueError):
    """A dataset row the code rewards cannot run (not Python, malformed tests)."""


def io_cases(tests) -> list[dict]:
    try:
        cases = json.loads(tests) if isinstance(tests, str) else list(tests)
        return [{"input": str(case["input"]), "output": str(case["output"])} for case in cases]
    except (ValueError, TypeError, KeyError) as err:
        raise RowError(f"'tests' is not a list of {{input, output}} cases ({type(err).__name__}: {err})") from None


def score_row(completion: str, row: dict, budget: Budget, sandbox: Sandbox) -> float | None:
    language = str(row.get("language") or "python").lower()
    if language != "python":
        raise RowError(f"code rewards run Python only; row has language {language!r}")
    prompt = row.get("prompt") if row.get("prompt") and is_code(row["prompt"]) else ""
    if row.get("test") and row.get("entry_point"):
        program = assemble(extract_code(completion, {row["entry_point"]}), prompt, row["entry_point"])
        test = f"{row['test']}\ncheck({row['entry_point']})\n"
        return run_calls(program, prompt, [test], row["entry_point"], budget, sandbox)
    if row.get("test_list"):
        tests = [str(t) for t in row["test_list"]]
        imports = row.get("test_imports") or []
        prelude = "\n".join([*imports, row.get("test_setup_code") or ""]).replace("\r\n", "\n")
        return run_calls(assemble(extract_code(completion, called_in_every(tests)), prompt, None), prelude, tests,
                         None, budget, sandbox)
    if row.get("tests"):
        return run_io(extract_code(completion), io_cases(row["tests"]), budget, sandbox)
    return None


def score_all(completions: list[str], columns: dict, budget: Budget, workers: int) -> list[float | None]:
    """Score every row on ``workers`` threads. A row the sandbox failed on (``sandbox_errors``)
    or that cannot be run (``bad_rows``) scores None, is counted and one example logged."""
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(completions))]
    failures: dict[str, list[str]] = {"sandbox_errors": [], "bad_rows": []}

    def task(i: int) -> float | None:
        try:
            return score_row(completions[i], rows[i], budget, shared())
        except RowError as err:
            failures["bad_rows"].append(f"row {i}: {err}")
        except Exception as err:  # the sandbox itself (SandboxError, or anything unforeseen)
            failures["sandbox_errors"].append(f"row {i}: {type(err).__name__}: {err}")
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        scores = list(pool.map(task, range(len(completions))))
    for key, found in failures.items():
        if found:
            tally.count(key, len(found))
            log.warning("code rewards: %s on %d of %d rows (scored None), e.g. %s", key, len(found),
                        len(completions), found[0])
    return scores


@reward("code_accuracy")
@text_completions
def code_accuracy(completions: list[str], timeout: float = 10.0, completion_timeout: float = 30.0,
                  memory_mb: int = 1024, workers: int = 2, **columns) -> list[float | None]:
    """Fraction of the row's tests the completion's program passes (sandboxed).

    ``timeout``: wall seconds per test; ``completion_timeout``: wall seconds for all tests of
    one completion; ``memory_mb``: memory of one execution; ``workers``: parallel executions.
    """
    return score_all(completions, columns, Budget(timeout, completion_timeout, memory_mb), workers)


@reward("code_pass")
@text_completions
def code_pass(completions: list[str], timeout: float = 10.0, completion_timeout: float = 30.0,
              memory_mb: int = 1024, workers: int = 2, **columns) -> list[float | None]:
    """1.0 when the completion's program passes every test of its row, else 0.0 (sandboxed)."""
    scores = score_all(completions, columns, Budget(timeout, completion_timeout, memory_mb), workers)
    return [None if s is None else float(s == 1.0) for s in scores]
