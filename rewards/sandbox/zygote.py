"""A warm process that forks one execution per request, so no execution pays a Python start.

    python -I -S zygote.py candidate|judge FD [WITHOUT [CANDIDATE_ZYGOTE]]   (started by ``client.Zygote``)

FD is its socket; WITHOUT a comma-separated list of isolation layers not to set up; a judge
zygote joins the judges' memory cgroup its sandbox's candidate zygote (pid CANDIDATE_ZYGOTE) made.

It imports the standard library's common modules once, sets up what every execution shares
(the candidate zygote: cgroup parents, the seccomp filter and a minimal read-only root; the
judge zygote: the same root, then the unprivileged judge user), says which isolation layers
it has, then serves requests: one JSON message with file descriptors each, answered with the
pid of the process forked for it. Results travel on the descriptors, never through here, and
no test ever enters the candidate zygote's memory (its forks would inherit it).
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# rewards.sandbox without rewards/__init__.py, which loads the whole reward library
package = types.ModuleType("rewards")
package.__path__ = [os.path.join(ROOT, "rewards")]
sys.modules["rewards"] = package

from rewards.sandbox import candidate, isolation, judge  # noqa: E402

PRELOADED = ("array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal",
             "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math",
             "numbers", "operator", "random", "re", "statistics", "string", "struct", "textwrap",
             "typing", "unicodedata")
MAX_PROGRAM = 4 << 20
JUDGE_MEMORY = 4 << 30  # each judge's address space, and all of a sandbox's judges' memory together


def main() -> None:
    role, control_fd = sys.argv[1], int(sys.argv[2])
    without = set(filter(None, sys.argv[3].split(","))) if len(sys.argv) > 3 else set()
    control = socket.socket(fileno=control_fd)
    for name in PRELOADED:
        __import__(name)
    state, missing = (setup_candidate if role == "candidate" else setup_judge)(without)
    control.send(json.dumps({"missing": missing}).encode())
    isolation.become_subreaper()  # orphans of executions come here, and
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # every child here is reaped by the kernel
    serve = supervise if role == "candidate" else run_judge
    try:
        while True:
            message, fds, _, _ = socket.recv_fds(control, 1 << 16, 16)
            if not message:
                break  # the client is gone
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = 70
                try:
                    serve(request, dict(zip(request["fds"], fds)), state)
                    code = 0
                finally:
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"pid": pid}).encode())
    finally:
        if state.get("cgroups"):
            state["cgroups"].close()


def setup_candidate(without: set[str]) -> tuple[dict, list[str]]:
    """The layers every execution will get; ``without`` names layers not to try (tests, or a
    kernel where one misbehaves)."""
    state, missing = {"root": os.geteuid() == 0 and "root" not in without, "namespaces": 0}, []
    # the host's /proc, kept open for the supervisors (the minimal root has none): how long an
    # execution waited for a CPU is read there
    state["proc"] = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    if not state["root"]:
        return state, ["root (so no namespaces, cgroups, seccomp, per-execution uid or minimal root)"]
    for key, make in (("cgroups", isolation.Cgroups), ("seccomp", isolation.SeccompFilter)):
        try:
            if key in without:
                raise OSError("turned off")
            state[key] = make()
        except Exception as err:
            missing.append(f"{key} ({err})")
    if state.get("cgroups"):
        state["cgroups"].make_judges(JUDGE_MEMORY)
    state["namespaces"] = 0 if "namespaces" in without else probe_namespaces()
    if not state["namespaces"]:
        missing.append("namespaces (unshare refused)" if "namespaces" not in without else "namespaces (turned off)")
    try:
        if "minimal_root" in without:
            raise OSError("turned off")
        isolation.enter_minimal_root(writable_tmp=not state["namespaces"])
        state["minimal_root"] = True
    except Exception as err:
        missing.append(f"minimal root ({err})")
    return state, missing


def setup_judge(without: set[str]) -> tuple[dict, list[str]]:
    if os.geteuid() != 0 or "root" in without:
        return {}, []  # runs the tests as the trainer's user
    missing = []
    candidate_zygote = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else 0
    if "cgroups" not in without and candidate_zygote:  # (turned off: the candidate zygote says so)
        try:
            isolation.join_judges_cgroup(candidate_zygote)
        except Exception as err:
            missing.append(f"judges' memory cgroup ({err})")
    isolation.enter_minimal_root()
    isolation.become(isolation.JUDGE_UID)
    isolation.no_new_privileges()
    return {}, missing


def probe_namespaces() -> int:
    """The execution namespaces this kernel lets us create (all or none)."""
    pid = os.fork()
    if pid == 0:
        try:
            isolation.checked(isolation.libc.unshare(isolation.EXECUTION_NAMESPACES), "unshare")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return isolation.EXECUTION_NAMESPACES if status == 0 else 0


def supervise(request: dict, fds: dict, state: dict) -> None:
    """One execution: its cgroup, the isolated process tree, the wall clock, the clean-up.

    Writes ``{"exit", "timed_out"}`` to the ``reply`` descriptor. The program runs as pid 1 of
    its own pid namespace, so killing it ends every process it started.
    """
    limits, cgroups = request["limits"], state.get("cgroups")
    uid = isolation.UID_BASE + os.getpid() if state["root"] else None
    isolated = uid is not None and state["namespaces"] and state.get("minimal_root")
    workdir = None if isolated else tempfile.mkdtemp(prefix="rlreason-run-")
    if workdir and uid is not None:
        os.chown(workdir, uid, uid)
    request = {**request, "workdir": workdir, "isolated": bool(isolated)}
    if cgroups:
        name = cgroups.acquire()
        cgroups.limit(name, limits["memory_bytes"], limits["processes"], limits["cpus"])
    leader = isolation.enter_execution_namespaces(state["namespaces"])  # this process stays outside
    if leader == 0:
        code = 70
        try:
            isolation.die_with_parent()
            if cgroups:
                cgroups.join(name)
            code = execute(request, fds, state, uid)
        finally:
            os._exit(code)
    for key in ("program", "stdin", "stdout", "stderr", "requests", "responses"):
        if key in fds:
            os.close(fds[key])
    started_cpu = cgroups.cpu_seconds(name) if cgroups else 0.0
    cpu = (lambda: cgroups.cpu_seconds(name) - started_cpu) if cgroups else (lambda: 0.0)
    # the judge's per-test budgets run on the execution's CPU time (its cgroup's), which neither
    # the machine's load nor the time it waits for the judge's next call moves; without a cgroup,
    # on the budget it used
    publish = ((lambda used, spent: os.pwrite(fds["clock"], struct.pack("d", spent if cgroups else used), 0))
               if "clock" in fds else (lambda used, spent: None))
    finished, used = wait(leader, fds.get("stop"), limits["wall_seconds"], state["proc"], cpu, publish)
    kill(leader)  # pid 1 of its namespace: the kernel ends the rest; else its process group
    code = exit_code(os.waitpid(leader, 0)[1])
    # the result is known: report it now, then clean up (however long many dying processes take)
    os.write(fds["reply"], json.dumps({"exit": code if finished else None, "timed_out": not finished,
                                       "seconds": used}).encode())
    os.close(fds["reply"])
    if cgroups:
        cgroups.release(name)
    if workdir:  # rm neither follows links nor recurses on the stack
        subprocess.run(["rm", "-rf", "--one-file-system", "--", workdir], stderr=subprocess.DEVNULL)


def execute(request: dict, fds: dict, state: dict, uid: int | None) -> int:
    """In the execution's own namespaces: file systems, limits, identity, filter, program."""
    limits, isolated = request["limits"], request["isolated"]
    os.setsid()
    if isolated:
        isolation.mount_execution_filesystems(uid, limits["disk_bytes"], limits["files"], pid_namespace=True)
        socket.sethostname("sandbox")
    with os.fdopen(fds.pop("program"), "rb") as f:
        program = f.read(MAX_PROGRAM).decode("utf-8", errors="replace")
    arrange_descriptors([fds.get(key) for key in ("stdin", "stdout", "stderr", "requests", "responses")])
    os.chdir("/tmp" if isolated else request["workdir"])
    apply_limits(limits, address_space=not state.get("cgroups"))
    if uid is not None:
        isolation.become(uid)
    isolation.die_with_parent()  # after the uid change, which clears it
    isolation.no_new_privileges()
    if state.get("seccomp"):
        state["seccomp"].load()
    try:
        if request["mode"] == "main":
            return candidate.run_main(program)
        return candidate.serve(program, 3, 4, request["call_seconds"])
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass


def arrange_descriptors(sources: list) -> None:
    """``sources[i]`` becomes descriptor i (None: /dev/null); every other descriptor is closed."""
    high = [os.dup(fd if fd is not None else os.open(os.devnull, os.O_RDWR)) for fd in sources]
    high = [fcntl_dup_above(fd, 100) for fd in high]
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.closerange(len(sources), os.sysconf("SC_OPEN_MAX"))


def fcntl_dup_above(fd: int, floor: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, floor)
    os.close(fd)
    return moved


def apply_limits(limits: dict, address_space: bool) -> None:
    import resource

    values = {"RLIMIT_CPU": limits["cpu_seconds"], "RLIMIT_FSIZE": limits["disk_bytes"],
              "RLIMIT_NOFILE": limits["open_files"], "RLIMIT_NPROC": limits["processes"], "RLIMIT_CORE": 0}
    if address_space:
        values["RLIMIT_AS"] = limits["memory_bytes"]
    for key, value in values.items():
        resource.setrlimit(getattr(resource, key), (value, value))


def wait(pid: int, stop_fd: int | None, seconds: float, proc: int, cpu, publish=lambda used, spent: None) -> tuple[bool, float]:
    """Wait for ``pid`` (a child) to exit, without reaping it: whether it did before its budget
    ran out or the client said stop, and the budget it used.

    The budget is time the execution did not spend waiting for a CPU: its process's wall time
    less its run-queue delay (``/proc/PID/schedstat`` under the descriptor ``proc``), or the CPU
    time all its processes used (``cpu()``, from its cgroup) where that is more (processes that
    keep each other waiting, or its own CPU quota, are the program's doing); both are handed to
    ``publish`` as they are read. A program that
    sleeps or blocks spends it as wall time, one that computes as CPU time, on a quiet or a
    loaded machine alike. ``judge.WALL_CEILING`` times the budget in wall time ends any wait."""
    import select
    import time

    started, delay_at_start = time.monotonic(), candidate.run_delay(f"{pid}/task", proc)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None  # kernels before 5.3: polling
    try:
        poller = select.poll()
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        if stop_fd is not None:
            poller.register(stop_fd, select.POLLIN | select.POLLHUP)
        while True:
            elapsed = time.monotonic() - started
            spent = cpu()
            used = max(0.0, elapsed - (candidate.run_delay(f"{pid}/task", proc) - delay_at_start), spent)
            publish(used, spent)  # the execution's clocks, for the judge's per-test budgets
            left = min(seconds - used, seconds * judge.WALL_CEILING - elapsed)
            if left <= 0:
                return False, used
            events = dict(poller.poll(min(left, 0.05) * 1000))
            if stop_fd in events:
                return False, used
            if pidfd in events or (pidfd is None and os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)):
                return True, used
    finally:
        if pidfd is not None:
            os.close(pidfd)


def kill(pid: int) -> None:
    """SIGKILL ``pid`` and the process group it leads (once it has made one)."""
    for send in (os.kill, os.killpg):
        try:
            send(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run_judge(request: dict, fds: dict, state: dict) -> None:
    """One verdict: the tests against the program behind the call descriptors, one line per
    test (``1`` passed, ``0`` failed), then ``done`` (or ``error ...`` if the judge broke)."""
    import resource

    isolation.die_with_parent()
    with os.fdopen(fds["tests"], "rb") as f:
        spec = json.loads(f.read())
    seconds = int(spec["completion_seconds"] + judge.LOAD_GRACE + 0.999)  # its own CPU: a test stuck in C on the program's data
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    resource.setrlimit(resource.RLIMIT_AS, (JUDGE_MEMORY, JUDGE_MEMORY))  # answers it decodes are capped
    report = lambda passed: os.write(fds["verdict"], b"1\n" if passed else b"0\n")
    try:
        judge.judge(spec, judge.Channel(fds["requests"], fds["responses"]), report, fds.get("clock"))
        os.write(fds["verdict"], b"done\n")
    except BaseException as err:
        os.write(fds["verdict"], f"error {type(err).__name__}: {err}"[:500].encode() + b"\n")


if __name__ == "__main__":
    main()
