"""Run one untrusted program in a sandbox and collect what it did.

Each execution gets:
- a fresh working directory (removed afterwards) and a scrubbed environment;
- resource limits: CPU seconds, address space, file size, open files, processes;
- a wall-clock timeout after which the whole process tree is killed;
- stdout/stderr written to capped files (infinite output hits the file-size limit);
- where the kernel allows it (root and ``unshare``): new network, mount and PID namespaces
  (no network at all, private tmpfs over every world-writable directory, and every process
  the program starts dies with it), and an unprivileged user id per parallel slot.

Without namespaces (not root) the same limits, session and timeout still apply and a warning
says what is missing.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

BOOT = Path(__file__).with_name("sandbox_boot.py")
SANDBOX_UID_BASE = 61000  # slot k runs as uid/gid SANDBOX_UID_BASE + k
WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 1 << 20  # caps every file it writes, stdout and stderr included
    open_files: int = 64
    processes: int = 16


@dataclass(frozen=True)
class Execution:
    returncode: int | None  # None when killed at the wall-clock limit
    stdout: str
    stderr: str
    timed_out: bool
    report: str  # what the program wrote to the report pipe (the harness's verdicts)


@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """True when we can create network/mount/PID namespaces and drop to another uid."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        log.warning("code sandbox without namespaces (needs root and unshare): programs can reach "
                    "the network and write where this user can")
        return False
    probe = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "true"], capture_output=True)
    return probe.returncode == 0


@lru_cache(maxsize=1)
def sandbox_python() -> str:
    """An interpreter the unprivileged sandbox user can read entirely (its binary and stdlib).

    A virtual environment under a private home (e.g. pyenv in /root) is not; the system
    python3 usually is.
    """
    candidates = [os.environ.get("RLREASON_SANDBOX_PYTHON"), sys.executable, "/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")]
    for candidate in filter(None, candidates):
        real = Path(os.path.realpath(candidate))
        if real.is_file() and world_readable(real) and world_readable(real.parent.parent / "lib"):
            return str(real)
    raise RuntimeError("no Python interpreter is readable by the sandbox user; set "
                       "RLREASON_SANDBOX_PYTHON to one installed outside private home directories")


def world_readable(path: Path) -> bool:
    """Every ancestor directory is traversable by others and ``path`` itself is readable."""
    if not path.exists():
        return False
    for parent in [*path.parents]:
        if not os.stat(parent).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


def sandbox_root() -> Path:
    base = Path(os.environ.get("RLREASON_SANDBOX_DIR", "/var/cache/rlreason-sandbox"
                               if namespaces_available() else tempfile.gettempdir()))
    base.mkdir(parents=True, exist_ok=True, mode=0o711)
    return base


def run(files: dict[str, str], argv: list[str], stdin: str = "", limits: Limits = Limits(),
        slot: int = 0, secret: bytes = b"") -> Execution:
    """Write ``files`` into a fresh directory and run ``argv`` there under ``limits``.

    ``secret`` is readable once on the file descriptor named by env RLREASON_SECRET_FD, and
    anything written to RLREASON_REPORT_FD comes back as ``report``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=sandbox_root()))
    secret_read, secret_write = os.pipe()
    report_read, report_write = os.pipe()
    try:
        prepare(workdir, files, stdin, slot)
        os.write(secret_write, secret)
        os.close(secret_write)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "RLREASON_SECRET_FD": str(secret_read),
               "RLREASON_REPORT_FD": str(report_write)}
        with open(workdir / "stdin.txt", "rb") as stdin_file, \
                open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
            process = subprocess.Popen(
                command(argv, limits, slot), cwd=workdir, env=env, stdin=stdin_file, stdout=out,
                stderr=err, pass_fds=(secret_read, report_write), start_new_session=True)
        os.close(report_write)
        report_write = -1
        timed_out = wait_or_kill(process, limits.wall_seconds)
        report = read_capped(report_read, limits.file_bytes)
        return Execution(returncode=None if timed_out else process.returncode,
                         stdout=read_file(workdir / "stdout.txt", limits.file_bytes),
                         stderr=read_file(workdir / "stderr.txt", limits.file_bytes),
                         timed_out=timed_out, report=report)
    finally:
        for fd in (secret_read, report_read, report_write):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        shutil.rmtree(workdir, ignore_errors=True)


def prepare(workdir: Path, files: dict[str, str], stdin: str, slot: int) -> None:
    for name, content in files.items():
        (workdir / name).write_text(content)
    (workdir / "stdin.txt").write_text(stdin)
    for name in ("stdout.txt", "stderr.txt"):
        (workdir / name).touch()
    if namespaces_available():
        uid = SANDBOX_UID_BASE + slot
        for path in [workdir, *workdir.iterdir()]:
            os.chown(path, uid, uid)
        workdir.chmod(0o700)


def command(argv: list[str], limits: Limits, slot: int) -> list[str]:
    """The sandbox bootstrap (in new namespaces where available) running ``argv``: a .py file."""
    isolated = namespaces_available()
    limit_spec = ",".join(f"{name}={value}" for name, value in (
        ("RLIMIT_CPU", limits.cpu_seconds), ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_FSIZE", limits.file_bytes), ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_NPROC", limits.processes), ("RLIMIT_CORE", 0)))
    tmpfs = ":".join(d for d in WRITABLE_DIRS if os.path.isdir(d))
    boot = [sandbox_python() if isolated else sys.executable, "-I", "-S", str(BOOT), "1" if isolated else "0",
            str(SANDBOX_UID_BASE + slot), limit_spec, tmpfs, *argv]
    if not isolated:
        return boot
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", *boot]


def wait_or_kill(process: subprocess.Popen, wall_seconds: float) -> bool:
    """Wait for the program; past the limit kill everything it started. True if killed.

    In a PID namespace we kill its init (the child ``unshare`` forked): the kernel reaps every
    process of the namespace before init's exit completes, and ``unshare`` waits for init, so
    once ``unshare`` is reaped nothing of the program is left, zombies included. Without
    namespaces the program's process group is killed. Waits on a pidfd where the kernel has
    them: ``Popen.wait(timeout)`` polls with sleeps that grow to 50 ms.
    """
    timed_out = not exited_within(process, wall_seconds)
    if timed_out:
        for child in namespace_init(process.pid):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not exited_within(process, 5.0):
            kill_group(process.pid)
    process.wait()
    kill_group(process.pid)  # without namespaces: whatever it left running in its process group
    return timed_out


def namespace_init(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return []


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def exited_within(process: subprocess.Popen, seconds: float) -> bool:
    if hasattr(os, "pidfd_open"):
        fd = os.pidfd_open(process.pid)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(seconds * 1000))
        finally:
            os.close(fd)
    try:
        process.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def read_file(path: Path, cap: int) -> str:
    with open(path, "rb") as f:
        return f.read(cap).decode("utf-8", errors="replace")


def read_capped(fd: int, cap: int) -> str:
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < cap:
        try:
            chunk = os.read(fd, min(65536, cap - size))
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")

