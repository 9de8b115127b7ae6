"""First code inside a sandbox: isolate, limit, drop privileges, then run the program here.

Started as ``python -I -S sandbox_boot.py ISOLATE UID LIMITS TMPFS target.py [args]``, inside
fresh network, mount and PID namespaces when ISOLATE is 1; LIMITS is ``NAME=value,...`` of
resource limits, TMPFS a ``:``-separated list of directories. Running the target in this same
interpreter saves a second Python start-up; only cheap modules are imported (no json, no runpy).
"""

import os
import resource
import sys

PR_SET_NO_NEW_PRIVS = 38


def isolate(uid: int, tmpfs: list, limits: dict) -> None:
    """Private tmpfs over every world-writable directory, then become the sandbox user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for directory in tmpfs:
        if libc.mount(b"tmpfs", directory.encode(), b"tmpfs", 0, b"size=16m") != 0:
            raise OSError(ctypes.get_errno(), "cannot mount a private tmpfs on " + directory)
    apply_limits(limits)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set no_new_privs")


def apply_limits(limits: dict) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def main() -> None:
    isolated, uid, limit_spec, tmpfs, *target = sys.argv[1:]
    limits = {name: int(value) for name, value in (item.split("=") for item in limit_spec.split(","))}
    if isolated == "1":
        isolate(int(uid), [d for d in tmpfs.split(":") if d], limits)
    else:
        apply_limits(limits)
    sys.argv = target
    sys.path[0] = os.getcwd()
    with open(target[0]) as f:
        code = compile(f.read(), target[0], "exec")
    exec(code, {"__name__": "__main__", "__file__": target[0], "__builtins__": __builtins__})


main()
