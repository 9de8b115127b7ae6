"""What runs inside an isolated execution, after the isolation is in place: untrusted ground.

``run_main`` runs a program as ``__main__`` (judged on its stdout). ``serve`` loads a
program, then answers calls to its functions from the judge, one line of plain data each
way. Nothing here is trusted by the judge: a program may rewrite all of it, and can then
only answer calls with plain data of its choosing, which is what an honest function does.
"""

from __future__ import annotations

import builtins
import os
import signal
import traceback

from rewards.sandbox import plain_data

MAX_REQUEST = 16 << 20


class CallTimeout(BaseException):
    """A call (or the program's loading) ran past its budget."""


def on_alarm(signum, frame):
    raise CallTimeout()


def compiled(program: str):
    return compile(program, "program.py", "exec")


def run_main(program: str) -> int:
    """Exit status of running ``program`` as a script."""
    try:
        exec(compiled(program), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def serve(program: str, requests_fd: int, responses_fd: int, call_seconds: float) -> int:
    """Load ``program`` within one call's budget, say which names it defines, answer calls."""
    signal.signal(signal.SIGALRM, on_alarm)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        signal.setitimer(signal.ITIMER_REAL, call_seconds)
        exec(compiled(program), namespace)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:
        signal.setitimer(signal.ITIMER_REAL, 0)
        send(responses_fd, {"loaded": False})
        return 1
    names = [name for name, value in namespace.items() if callable(value) and not name.startswith("__")]
    send(responses_fd, {"loaded": True, "names": names})
    with os.fdopen(requests_fd, "rb") as requests:
        for line in iter(lambda: requests.readline(MAX_REQUEST), b""):
            send(responses_fd, answer(namespace, plain_data.decode(line), call_seconds))
    return 0


def answer(namespace: dict, request: dict, call_seconds: float) -> dict:
    """Call the requested function; its value if plain data, else the exception's name."""
    try:
        signal.setitimer(signal.ITIMER_REAL, call_seconds)
        value = namespace[request["name"]](*request["args"], **request["kwargs"])
        signal.setitimer(signal.ITIMER_REAL, 0)
        plain_data.encode(value)  # refuse early what cannot cross
        return {"id": request["id"], "value": value}
    except BaseException as err:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return {"id": request["id"], "raised": type(err).__name__}


def send(fd: int, message: dict) -> None:
    data = plain_data.encode(message) + b"\n"
    while data:
        data = data[os.write(fd, data):]

