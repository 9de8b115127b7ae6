"""What runs inside an isolated execution, after the isolation is in place: untrusted ground.

``run_main`` runs a program as ``__main__`` (judged on its stdout). ``serve`` loads a
program, then answers the judge's requests, one line of plain data each way: call one of its
functions, or use one of its objects the judge holds by reference (an attribute, a method, an
item, its length). Nothing here is trusted by the judge: a program may rewrite all of it, and
can then only answer with plain data of its choosing, which is what an honest function does.
"""

from __future__ import annotations

import array
import atexit
import builtins
import collections.abc
import os
import signal
import sys
import threading
import time
import traceback
import types

from rewards.sandbox import plain_data

MAX_REQUEST = 16 << 20
MAX_ITEMS = 1 << 20  # of an iterator a function returns
PROGRAM_MODULE = "solution"  # a loaded program's module name: its `if __name__ == "__main__":` block is a demo


class CallTimeout(BaseException):
    """A call (or the program's loading) ran past its budget."""


class CallBudget:
    """A call's budget of time not spent waiting for a CPU (wall time less this process's
    run-queue delay from ``/proc/self/schedstat``): a call that sleeps spends it as wall time,
    one that computes as CPU time, whatever else the machine runs. Checked on a ticking alarm."""

    TICK = 0.05

    def __init__(self):
        self.seconds, self.started, self.delay_at_start = 0.0, 0.0, None
        signal.signal(signal.SIGALRM, self.on_alarm)

    def arm(self, seconds: float) -> None:
        # the delay so far is read at the first tick, not here: most calls end before it, and a
        # call's first tick of delay is counted as used
        self.seconds, self.started, self.delay_at_start = seconds, time.monotonic(), None
        signal.setitimer(signal.ITIMER_REAL, min(seconds, self.TICK), self.TICK)

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def used(self) -> float:
        return time.monotonic() - self.started - (run_delay() - self.delay_at_start)

    def on_alarm(self, signum, frame):
        if self.delay_at_start is None:
            self.delay_at_start = run_delay()
        if time.monotonic() - self.started >= self.seconds and self.used() >= self.seconds:
            self.disarm()
            raise CallTimeout()


def run_delay(tasks: str = "/proc/self/task", dir_fd: int | None = None) -> float:
    """Seconds a process (its ``/proc/PID/task`` directory, maybe relative to ``dir_fd``) has
    spent runnable but waiting for a CPU: the most any of its threads has (a script's work may
    run in a thread while its main thread waits in ``join``); 0 where the kernel does not say."""
    try:
        directory = os.open(tasks, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    except OSError:
        return 0.0
    most = 0.0
    try:
        for task in os.listdir(directory):
            try:
                stat = os.open(f"{task}/schedstat", os.O_RDONLY, dir_fd=directory)
            except OSError:
                continue
            try:
                most = max(most, int(os.read(stat, 128).split()[1]) / 1e9)
            except (OSError, IndexError, ValueError):
                pass
            finally:
                os.close(stat)
    finally:
        os.close(directory)
    return most


def compiled(program: str):
    return compile(program, "program.py", "exec")


def with_site_builtins() -> None:
    """``exit`` and ``quit``, which the interpreter's ``site`` adds (executions start without it),
    and ``sys.executable`` pointing at an interpreter the execution can see."""
    if not os.path.exists(sys.executable):
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for candidate in (os.path.join(sys.base_exec_prefix, "bin", version), os.path.join(sys.base_exec_prefix, "bin", "python3")):
            if os.path.exists(candidate):
                sys.executable = candidate
                break
    def leave(code=None):
        raise SystemExit(code)

    for name in ("exit", "quit"):
        if not hasattr(builtins, name):
            setattr(builtins, name, leave)


def run_main(program: str) -> int:
    """Exit status of running ``program`` as a script, as the interpreter would end it: its
    threads joined and its ``atexit`` handlers run before its output is flushed."""
    with_site_builtins()
    atexit._clear()  # nothing the zygote registered runs here
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    main.__file__ = "solution.py"
    sys.argv = ["solution.py"]  # not the zygote's
    sys.modules["__main__"] = main  # pickle (multiprocessing) finds the program's functions and classes
    code = 0
    try:
        exec(compiled(program), main.__dict__)
    except SystemExit as stop:
        code = exit_status(stop)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        for thread in threading.enumerate():  # what the interpreter does at exit (threading._shutdown)
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    except SystemExit as stop:
        code = exit_status(stop)
    except BaseException:
        traceback.print_exc()
        code = code or 1
    return code


def exit_status(stop: SystemExit) -> int:
    code = stop.code
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


class Objects:
    """The program's objects the judge holds by reference, numbered in the order they crossed."""

    def __init__(self):
        self.held: list = []
        self.numbers: dict[int, int] = {}  # id(object) -> its number (the object is held, so ids stay)

    def reference(self, value) -> int:
        number = self.numbers.get(id(value))
        if number is None:
            number = self.numbers[id(value)] = len(self.held)
            self.held.append(value)
        return number

    def referent(self, number: int):
        if not 0 <= number < len(self.held):
            raise plain_data.NotPlainData(f"no object {number}")
        return self.held[number]


def to_plain(value, depth: int = 0):
    """``value`` with what a test compares as plain data in plain form: subclasses of built-in
    and standard-library value types as their base type, an iterator or generator as the items
    it gives; anything else (an object of the program's own class) is left to cross by reference."""
    if depth > plain_data.MAX_DEPTH:
        raise plain_data.NotPlainData("nested too deeply")
    inner = depth + 1
    if value is None or type(value) in (bool, str, int, float, complex, bytes, range, *plain_data.TIMES):
        return value
    if type(value) in plain_data.VIEWS.values():
        return value  # a dict's keys, values or items view (its items are converted as the dict's are)
    for base in (bool, int, float, complex, str, bytes, bytearray):
        if isinstance(value, base) and not isinstance(value, tuple):
            return base(value)
    if isinstance(value, (collections.Counter, collections.OrderedDict, collections.defaultdict)):
        kind = next(k for k in (collections.Counter, collections.OrderedDict, collections.defaultdict) if isinstance(value, k))
        entries = [(to_plain(k, inner), to_plain(v, inner)) for k, v in value.items()]
        return collections.defaultdict(value.default_factory, entries) if kind is collections.defaultdict else kind(dict(entries))
    if isinstance(value, dict):
        return {to_plain(k, inner): to_plain(v, inner) for k, v in value.items()}
    if isinstance(value, tuple):
        items = tuple(to_plain(item, inner) for item in value)
        return type(value)(*items) if plain_data.is_named_tuple(type(value)) else items
    for base in (list, set, frozenset, collections.deque):
        if isinstance(value, base):
            return base(to_plain(item, inner) for item in value)
    if type(value) is array.array:
        return value
    if isinstance(value, collections.abc.Iterator):
        items = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise plain_data.NotPlainData("an iterator of too many items")
            items.append(to_plain(item, inner))
        return plain_data.Iterated(items)
    return value


def serve(program: str, requests_fd: int, responses_fd: int, call_seconds: float) -> int:
    """Load ``program`` within one call's budget, say which names it defines, answer requests."""
    with_site_builtins()
    budget = CallBudget()
    module = types.ModuleType(PROGRAM_MODULE)
    sys.modules[PROGRAM_MODULE] = module  # pickling, dataclasses and typing look their module up
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    try:
        budget.arm(call_seconds)
        exec(compiled(program), namespace)
        budget.disarm()
    except BaseException:
        budget.disarm()
        send(responses_fd, {"loaded": False})
        return 1
    names = [name for name, value in namespace.items() if callable(value) and not name.startswith("__")]
    classes = [name for name in names if isinstance(namespace[name], type)]
    exceptions = {name: ancestry(namespace[name]) for name in classes if issubclass(namespace[name], BaseException)}
    modules = {name: value.__name__ for name, value in namespace.items()
               if isinstance(value, types.ModuleType) and type(getattr(value, "__name__", None)) is str}
    send(responses_fd, {"loaded": True, "names": names, "classes": classes, "exceptions": exceptions,
                        "modules": modules})
    objects = Objects()
    with os.fdopen(requests_fd, "rb") as requests:
        for line in iter(lambda: requests.readline(MAX_REQUEST), b""):
            send(responses_fd, answer(namespace, line, objects, budget, call_seconds), objects)
    return 0


OPERATIONS = {
    "call": lambda target, r: target(*r["args"], **r["kwargs"]),
    "getattr": lambda target, r: getattr(target, r["attribute"]),
    "setattr": lambda target, r: setattr(target, r["attribute"], r["value"]),
    "getitem": lambda target, r: target[r["key"]],
    "setitem": lambda target, r: target.__setitem__(r["key"], r["value"]),
    "len": lambda target, r: len(target),
    "contains": lambda target, r: r["value"] in target,
    "iter": lambda target, r: iter(target),
    "str": lambda target, r: str(target),
    "repr": lambda target, r: repr(target),
}


def answer(namespace: dict, line: bytes, objects: Objects, budget: CallBudget, call_seconds: float) -> dict:
    """Do the request within ``call_seconds`` of ``budget``: its value in plain form (an object
    by reference), or the exception's class with its ancestry (so ``except ValueError`` catches
    a ``JSONDecodeError``)."""
    number = None
    try:
        budget.arm(call_seconds)
        request = plain_data.decode(line, objects.referent)
        number = request["id"]
        target = namespace[request["name"]] if "name" in request else request["target"]
        value = to_plain(OPERATIONS[request.get("op", "call")](target, request))
        budget.disarm()
        plain_data.encode(value, objects.reference)  # refuse early what cannot cross
        return {"id": number, "value": value}
    except BaseException as err:
        budget.disarm()
        return {"id": number, "raised": type(err).__name__, "ancestry": ancestry(type(err)), "message": message(err),
                "args": plain_args(err)}


def plain_args(err: BaseException) -> list | None:
    """The exception's arguments, when they are plain data (``e.args == ('x',)``)."""
    try:
        args = [to_plain(arg) for arg in err.args]
        plain_data.encode(args)
        return args
    except BaseException:
        return None


def message(err: BaseException) -> str | None:
    try:
        text = str(err)
        return text[:1000] if type(text) is str else None
    except BaseException:
        return None


def ancestry(kind: type) -> list[list[str]]:
    return [[str(getattr(c, "__module__", "")), str(getattr(c, "__qualname__", ""))] for c in kind.__mro__]


def send(fd: int, message: dict, objects: Objects | None = None) -> None:
    data = plain_data.encode(message, objects.reference if objects else None) + b"\n"
    while data:
        data = data[os.write(fd, data):]
