"""The verdict: a dataset's tests run here, in a process the judged program cannot reach.

The tests see the program's functions only as proxies: a call sends its arguments to the
program's execution as plain data and gets back a fresh plain value (or the name of the
exception the function raised). No frame, global, builtin or object of the program exists
in this process, so nothing the program does can change how a test compares or counts.
"""

from __future__ import annotations

import ast
import builtins
import os
import signal
import time

from rewards.sandbox import plain_data

MAX_MESSAGE = 16 << 20  # one answer of the program, encoded
LOAD_GRACE = 0.5  # seconds beyond one call's budget for the program to load and say so


class TestTimeout(BaseException):
    """A test ran past its budget."""


class CandidateError(Exception):
    """A call to the program failed: it raised, ran out of time, ended or sent no plain data."""


class Channel:
    """Lines of plain data to and from the program's execution."""

    def __init__(self, requests_fd: int, responses_fd: int):
        self.requests_fd, self.responses_fd = requests_fd, responses_fd
        self.pending, self.last_id = bytearray(), 0

    def receive(self):
        while b"\n" not in self.pending:
            if len(self.pending) > MAX_MESSAGE:
                raise CandidateError("an answer over the size cap")
            chunk = os.read(self.responses_fd, 1 << 16)
            if not chunk:
                raise CandidateError("the program's execution ended")
            self.pending += chunk
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending = bytearray(rest)
        try:
            return plain_data.decode(line)
        except plain_data.NotPlainData as err:
            raise CandidateError(f"not plain data: {err}") from None

    def call(self, name: str, args: tuple, kwargs: dict):
        self.last_id += 1
        data = plain_data.encode({"id": self.last_id, "name": name, "args": list(args), "kwargs": kwargs}) + b"\n"
        while data:
            data = data[os.write(self.requests_fd, data):]
        while True:  # answers to calls that already timed out are skipped
            message = self.receive()
            if type(message) is dict and message.get("id") == self.last_id:
                break
        if "value" in message:
            return message["value"]
        raise exception_named(message.get("raised"))


class Proxy:
    """Stands for one of the program's functions in the tests."""

    def __init__(self, channel: Channel, name: str):
        self.channel, self.__name__ = channel, name

    def __call__(self, *args, **kwargs):
        return self.channel.call(self.__name__, args, kwargs)


def exception_named(name) -> Exception:
    """A built-in exception of that name (tests may expect ``ValueError``), else CandidateError."""
    cls = getattr(builtins, name, None) if type(name) is str else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls("raised by the program")
    return CandidateError(f"the program's call failed ({str(name)[:40]})")


def referenced_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def proxies_for(test: str, offered: set[str], trusted: dict, entry_point: str | None, channel: Channel) -> dict:
    """The program's functions this test may call: its entry point, and names the test uses
    that neither the trusted prelude nor the builtins define (a program's ``abs`` stays its own)."""
    wanted = {name for name in referenced_names(test) & offered
              if name not in trusted and not hasattr(builtins, name)}
    if entry_point in offered:
        wanted.add(entry_point)
    return {name: Proxy(channel, name) for name in wanted}


def judge(spec: dict, channel: Channel, report) -> None:
    """Run ``spec["tests"]`` against the program behind ``channel``, calling ``report(passed)``
    after each test (tests left when the completion's budget runs out are not reported).

    ``spec``: ``prelude`` (trusted code run first, e.g. HumanEval's prompt with its helpers),
    ``tests`` (sources, one test each), ``entry_point`` (always a proxy, e.g. the HumanEval
    function), ``test_seconds`` (budget of each test) and ``completion_seconds`` (of all).
    """
    tests, test_seconds = spec["tests"], spec["test_seconds"]
    deadline = time.monotonic() + spec["completion_seconds"]
    signal.signal(signal.SIGALRM, on_alarm)
    # no answer, a broken one, or one too big to hold (MemoryError): nothing passes
    loaded, hello = bounded(min(test_seconds + LOAD_GRACE, deadline - time.monotonic()), channel.receive)
    names = hello.get("names") if loaded and type(hello) is dict and hello.get("loaded") is True else None
    offered = {name for name in names if type(name) is str} if type(names) is list else None
    trusted = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(spec.get("prelude") or "", "prelude.py", "exec"), trusted)
    for test in tests:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break  # the completion's budget is spent: the remaining tests fail
        if offered is None:
            report(False)
            continue
        namespace = {**trusted, **proxies_for(test, offered, trusted, spec.get("entry_point"), channel)}
        passed, _ = bounded(min(test_seconds, remaining), lambda: exec(compile(test, "test.py", "exec"), namespace))
        report(passed)


_armed = False  # whether an alarm may interrupt what runs now


def on_alarm(signum, frame):
    if _armed:
        raise TestTimeout()


def bounded(seconds: float, step) -> tuple[bool, object]:
    """``(True, step())`` if it returns within ``seconds``, else ``(False, None)``: on any
    exception, and on an alarm that lands late (after a long C call that checks for no
    signals, say), which must not escape into the judge."""
    global _armed
    try:
        try:
            _armed = True
            signal.setitimer(signal.ITIMER_REAL, max(0.001, seconds))
            return True, step()
        finally:
            _armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:
        return False, None
