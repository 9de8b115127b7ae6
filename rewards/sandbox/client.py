"""The trainer's side of the sandbox: run a program, or judge its functions, on warm zygotes.

Each process (each rank) starts two zygotes of its own on first use (``zygote.py``): one forks
isolated executions of untrusted programs, the other forks judges that run the dataset's
tests. Programs, inputs and outputs travel on descriptors made here before anything starts
(memfds and pipes), so nothing in an execution's working directory is ever read. Every wait
has a hard wall clock on this side too. A failure of the sandbox itself raises
:class:`SandboxError`; whatever the program does is only ever a result.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rewards.sandbox.judge import WALL_CEILING

log = logging.getLogger(__name__)

ZYGOTE = Path(__file__).with_name("zygote.py")
GRACE_SECONDS = 2.0  # beyond an execution's own wall clock, for its supervisor to clean up
START_SECONDS = 60.0
MAX_REPLY = 1 << 16


class SandboxError(RuntimeError):
    """The sandbox failed (not the program): the row cannot be scored."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30  # the execution's cgroup (address space where there is none)
    disk_bytes: int = 16 << 20  # its private /tmp, and any one file it writes (stdout too)
    files: int = 1024  # inodes of its /tmp
    open_files: int = 64
    processes: int = 32  # the execution's cgroup, and its uid's process count
    cpus: float = 1.0


@dataclass(frozen=True)
class Execution:
    returncode: int | None  # None when stopped at its budget
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float = 0.0  # of its budget used: wall time less time spent waiting for a CPU


@dataclass(frozen=True)
class Verdict:
    passed: int
    total: int


class Zygote:
    """One zygote process and the socket its requests go through."""

    def __init__(self, role: str, without: tuple[str, ...] = (), candidate_zygote: int = 0):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.role, self.socket, self.lock = role, ours, threading.Lock()
        self.log = tempfile.TemporaryFile()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(ZYGOTE), role, str(theirs.fileno()), ",".join(without), str(candidate_zygote)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, env=env, cwd="/")
        theirs.close()
        hello = self.receive(START_SECONDS)
        self.missing: list[str] = hello["missing"]

    def receive(self, seconds: float) -> dict:
        message = self.socket.recv(MAX_REPLY) if readable(self.socket.fileno(), seconds) else b""
        if not message:
            self.log.seek(0)
            raise SandboxError(f"the {self.role} zygote did not answer: {self.log.read()[-2000:].decode(errors='replace')}")
        return json.loads(message)

    def fork(self, request: dict, fds: dict[str, int]) -> int:
        """Hand the zygote a request and its descriptors; the pid of the process it forked."""
        with self.lock:
            try:
                socket.send_fds(self.socket, [json.dumps({**request, "fds": list(fds)}).encode()], list(fds.values()))
                return self.receive(START_SECONDS)["pid"]
            except OSError as err:
                raise SandboxError(f"the {self.role} zygote is gone: {err}") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Sandbox:
    """Runs programs and judges their functions; thread-safe, one per process (``shared()``)."""

    LAYERS = ("root", "namespaces", "cgroups", "seccomp", "minimal_root")

    def __init__(self, without: tuple[str, ...] = ()):
        """``without``: layers not to set up (of ``LAYERS``), e.g. where a kernel misbehaves."""
        unknown = set(without) - set(self.LAYERS)
        if unknown:
            raise ValueError(f"unknown sandbox layers {sorted(unknown)}; known: {', '.join(self.LAYERS)}")
        self.pid = os.getpid()
        self.candidates = Zygote("candidate", without)
        self.judges = Zygote("judge", without, candidate_zygote=self.candidates.process.pid)
        self.missing = self.candidates.missing + self.judges.missing
        if self.missing:
            log.warning("code sandbox without: %s", "; ".join(self.missing))

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.candidates.alive() and self.judges.alive()

    def close(self) -> None:
        self.judges.close()  # first: its cgroup is the candidate zygote's to remove
        self.candidates.close()

    def run_main(self, program: str, stdin: str, limits: Limits) -> Execution:
        """Run ``program`` as a script on ``stdin``; its exit status, stdout and stderr."""
        with Descriptors() as own:
            stdout, stderr = own.memfd(), own.memfd()
            reply_read, reply_write = own.pipe()
            pid = self.candidates.fork({"mode": "main", "limits": asdict(limits)}, {
                "program": own.memfd(program), "stdin": own.memfd(stdin), "stdout": stdout,
                "stderr": stderr, "reply": reply_write})
            own.close(reply_write)
            data, closed = read_until_closed(reply_read, limits.wall_seconds * WALL_CEILING + GRACE_SECONDS)
            if not closed:  # its time is up and no report yet (a loaded machine): the program's 0
                kill(pid)
                return Execution(returncode=None, stdout="", stderr="", timed_out=True, seconds=limits.wall_seconds)
            reply = parsed_message(data)
            if reply is None:  # the supervisor ended without a report: the sandbox failed
                raise SandboxError("the execution's supervisor failed without a report")
            return Execution(returncode=reply["exit"], stdout=read_output(stdout, limits.disk_bytes),
                             stderr=read_output(stderr, limits.disk_bytes), timed_out=reply["timed_out"],
                             seconds=float(reply.get("seconds") or 0.0))

    def run_calls(self, program: str, spec: dict, limits: Limits) -> Verdict:
        """Load ``program`` in an execution and run ``spec``'s tests against its functions in a
        judge (see ``judge.judge`` for ``spec``); the judge's count of passed tests."""
        with Descriptors() as own:
            requests_read, requests_write = own.pipe()
            responses_read, responses_write = own.pipe()
            stop_read, stop_write = own.pipe()
            reply_read, reply_write = own.pipe()
            verdict_read, verdict_write = own.pipe()
            clock = own.memfd("\0" * 8)  # the budget the execution used, written by its supervisor, read by the judge
            execution = self.candidates.fork(
                {"mode": "call", "limits": asdict(limits), "call_seconds": spec["test_seconds"]},
                {"program": own.memfd(program), "requests": requests_read, "responses": responses_write,
                 "stop": stop_read, "reply": reply_write, "clock": clock})
            judge = self.judges.fork({}, {"tests": own.memfd(json.dumps(spec)), "requests": requests_write,
                                          "responses": responses_read, "verdict": verdict_write, "clock": clock})
            for fd in (requests_read, requests_write, responses_read, responses_write, stop_read,
                       reply_write, verdict_write):
                own.close(fd)
            lines, ended = read_lines(verdict_read, limits.wall_seconds * WALL_CEILING + GRACE_SECONDS)
            own.close(stop_write)  # the execution's supervisor ends it now
            if read_message(reply_read, GRACE_SECONDS) is None:
                kill(execution)  # its program dies with it (a parent-death signal)
            if not ended:
                kill(judge)  # still judging at the wall clock: the tests it did not finish fail
            elif lines and lines[-1].startswith("error"):
                raise SandboxError(f"the judge failed: {lines[-1]}")
            # (a judge that ended without a word was killed at its CPU limit, kept busy by the
            # program's data: the tests it did not finish fail)
            return Verdict(passed=lines.count("1"), total=len(spec["tests"]))


class Descriptors:
    """Descriptors made for one execution, all closed on leaving."""

    def __init__(self):
        self.open: list[int] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for fd in self.open:
            os.close(fd)

    def keep(self, fd: int) -> int:
        self.open.append(fd)
        return fd

    def memfd(self, content: str | None = None) -> int:
        fd = self.keep(os.memfd_create("rlreason", os.MFD_CLOEXEC))
        if content:  # lone surrogates (from a decoder's errors) pass; the reader replaces them
            os.write(fd, content.encode("utf-8", "surrogatepass"))
            os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def pipe(self) -> tuple[int, int]:
        read, write = os.pipe()
        return self.keep(read), self.keep(write)

    def close(self, fd: int) -> None:
        self.open.remove(fd)
        os.close(fd)


def read_until_closed(fd: int, seconds: float) -> tuple[bytes, bool]:
    """What is written to ``fd`` within ``seconds`` (capped), and whether the writer closed it."""
    deadline, data = time.monotonic() + seconds, b""
    while len(data) < MAX_REPLY:
        if not readable(fd, deadline - time.monotonic()):
            return data, False
        chunk = os.read(fd, MAX_REPLY)
        if not chunk:
            break
        data += chunk
    return data, True


def read_message(fd: int, seconds: float) -> dict | None:
    """The JSON a supervisor writes before closing ``fd``; None if none in time."""
    data, closed = read_until_closed(fd, seconds)
    return parsed_message(data) if closed else None


def parsed_message(data: bytes) -> dict | None:
    try:
        message = json.loads(data)
    except ValueError:
        return None
    return message if isinstance(message, dict) and {"exit", "timed_out"} <= message.keys() else None


def read_lines(fd: int, seconds: float) -> tuple[list[str], bool]:
    """Lines written to ``fd`` within ``seconds``, and whether the writer closed it by then."""
    data, closed = read_until_closed(fd, seconds)
    return data.decode(errors="replace").splitlines(), closed


def readable(fd: int, seconds: float) -> bool:
    """Whether ``fd`` has data (or its end) within ``seconds`` (poll: descriptors may be > 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, seconds) * 1000))


def read_output(fd: int, cap: int) -> str:
    return os.pread(fd, cap, 0).decode("utf-8", errors="replace")


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def shared() -> Sandbox:
    """This process's sandbox, started on first use and again if a zygote died.

    Env ``RLREASON_SANDBOX_WITHOUT``: comma-separated layers not to set up (``Sandbox.LAYERS``).
    """
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive():
            if _shared is not None and _shared.pid == os.getpid():
                _shared.close()
            _shared = Sandbox(tuple(filter(None, os.environ.get("RLREASON_SANDBOX_WITHOUT", "").split(","))))
        return _shared
