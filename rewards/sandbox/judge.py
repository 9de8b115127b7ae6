"""The verdict: a dataset's tests run here, in a process the judged program cannot reach.

The tests see the program's functions only as proxies: a call sends its arguments to the
program's execution as plain data and gets back a fresh plain value (or the exception the
function raised, as its nearest class the judge knows). An object of the program's own classes
stays in its execution; the test holds a ``Remote`` for it, whose attributes, methods, items
and length are asked for over the same channel, and whose equality, order, truth and hash are
the judge's own (identity): no frame, global, builtin, ``__eq__`` or object of the program exists
in this process, so nothing the program does can change how a test compares or counts.
"""

from __future__ import annotations

import ast
import builtins
import os
import signal
import sys
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
            return plain_data.decode(line, lambda number: Remote(self, number))
        except plain_data.NotPlainData as err:
            raise CandidateError(f"not plain data: {err}") from None

    def request(self, **request):
        """Send one request (``name`` or ``target``, ``op`` and its operands); its answer's value."""
        self.last_id += 1
        data = plain_data.encode({"id": self.last_id, **request}, reference) + b"\n"
        while data:
            data = data[os.write(self.requests_fd, data):]
        while True:  # answers to calls that already timed out are skipped
            message = self.receive()
            if type(message) is dict and message.get("id") == self.last_id:
                break
        if "value" in message:
            return message["value"]
        raise exception_from(message.get("raised"), message.get("ancestry"))

    def call(self, name: str, args: tuple, kwargs: dict):
        return self.request(name=name, args=list(args), kwargs=kwargs)


class Proxy:
    """Stands for one of the program's functions (or classes) in the tests."""

    def __init__(self, channel: Channel, name: str):
        self.channel, self.__name__ = channel, name

    def __call__(self, *args, **kwargs):
        return self.channel.call(self.__name__, args, kwargs)


class Remote:
    """Stands for an object of the program's in the tests: its attributes, methods, items,
    length and text come from the program; equality, order, truth and hashing are identity."""

    __slots__ = ("_channel", "_number")

    def __init__(self, channel: Channel, number: int):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_number", number)

    def _ask(self, op: str, **operands):
        return self._channel.request(target=self, op=op, **operands)

    def __getattr__(self, attribute: str):
        if attribute.startswith("__") and attribute.endswith("__"):
            raise AttributeError(attribute)  # no protocol of the program's is looked up by name
        return self._ask("getattr", attribute=attribute)

    def __setattr__(self, attribute: str, value) -> None:
        self._ask("setattr", attribute=attribute, value=value)

    def __call__(self, *args, **kwargs):
        return self._ask("call", args=list(args), kwargs=kwargs)

    def __getitem__(self, key):
        return self._ask("getitem", key=key)

    def __setitem__(self, key, value) -> None:
        self._ask("setitem", key=key, value=value)

    def __len__(self) -> int:
        length = self._ask("len")
        if type(length) is not int:
            raise CandidateError("a length that is not an int")
        return length

    def __contains__(self, value) -> bool:
        return self._ask("contains", value=value) is True

    def __iter__(self):
        return iter(self._ask("iter"))

    def __str__(self) -> str:
        text = self._ask("str")
        return text if type(text) is str else object.__repr__(self)

    def __repr__(self) -> str:
        text = self._ask("repr")
        return text if type(text) is str else object.__repr__(self)

    def __bool__(self) -> bool:
        return True

    __eq__, __ne__, __hash__ = object.__eq__, object.__ne__, object.__hash__


def reference(value) -> int:
    """A Remote crosses back to the program as the object it stands for."""
    if type(value) is Remote:
        return object.__getattribute__(value, "_number")
    raise plain_data.NotPlainData(f"{type(value).__name__} is not plain data")


def exception_from(name, ancestry) -> Exception:
    """The exception the program raised, as the first class of its ancestry the judge has: a
    built-in one (tests may expect ``ValueError``) or one of a module the tests imported
    (``json.JSONDecodeError``); else CandidateError. Its message is the judge's own."""
    for module, qualname in ancestry if type(ancestry) is list else [["builtins", name]]:
        cls = known_class(module, qualname)
        if cls is not None:
            try:
                raised = cls.__new__(cls)
                Exception.__init__(raised, "raised by the program")
                return raised
            except Exception:
                continue
    return CandidateError(f"the program's call failed ({str(name)[:40]})")


def known_class(module, qualname) -> type | None:
    if type(module) is not str or type(qualname) is not str or "." in qualname:
        return None
    owner = builtins if module == "builtins" else sys.modules.get(module)
    cls = getattr(owner, qualname, None) if owner is not None else None
    ok = isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == module
    return cls if ok else None


def referenced_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def defined_names(source: str) -> set[str]:
    """Names ``source`` binds at its top level (assignments, definitions, imports)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return found


def called_names(source: str) -> list[tuple[str, bool]]:
    """Each call of a bare name in ``source``: the name, and whether one of its arguments calls
    another bare name (``abs(add(1, 2) - 3)``: abs wraps a call)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            inner = [n for arg in [*node.args, *(k.value for k in node.keywords)] for n in ast.walk(arg)]
            calls.append((node.func.id, any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) for n in inner)))
    return calls


def functions_under_test(tests: list[str], offered: set[str], trusted: dict) -> set[str]:
    """The program's names every test calls, that the tests' prelude does not define. A name
    that is also a builtin's (MBPP's ``def sum(a, b)``) counts only when no other name does and
    where its call wraps no other call (``abs(f(x) - 3) < 1e-9`` keeps the judge's ``abs``)."""
    if not tests:
        return set()
    per_test = [called_names(test) for test in tests]
    common = set.intersection(*({name for name, _ in calls} for calls in per_test)) & offered
    common -= set(trusted)
    plain = {name for name in common if not hasattr(builtins, name)}
    if plain:
        return plain
    wrapping = {name for calls in per_test for name, wraps in calls if wraps}
    return {name for name in common if name not in wrapping}


def proxies_for(source: str, offered: set[str], trusted: dict, entry_points: set[str], channel: Channel) -> dict:
    """The program's functions ``source`` (a test, or the prelude) may call: the entry points,
    and names it uses that neither the trusted prelude nor the builtins define (a program's
    ``abs`` stays its own)."""
    wanted = {name for name in referenced_names(source) & offered
              if name not in trusted and not hasattr(builtins, name)}
    wanted |= entry_points & offered
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
    if offered is None:  # the program did not load: every test fails
        for _ in tests:
            report(False)
        return
    trusted = {"__name__": "__main__", "__builtins__": builtins}
    prelude = spec.get("prelude") or ""
    # setup code may build its data with the program's classes (MBPP's trees of the program's Node)
    wanted = {name for name in referenced_names(prelude) - defined_names(prelude) if not hasattr(builtins, name)}
    trusted.update({name: Proxy(channel, name) for name in wanted & offered})
    ran, _ = bounded(max(0.0, deadline - time.monotonic()), lambda: exec(compile(prelude, "prelude.py", "exec"), trusted))
    if not ran:
        if not wanted:
            raise RuntimeError("the tests' prelude failed on its own")  # the row's fault: unscored
        offered = set()  # the program lacks or broke what the setup needs of it: every test fails
    entry_points = {spec["entry_point"]} if spec.get("entry_point") else functions_under_test(tests, offered, trusted)
    for test in tests:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break  # the completion's budget is spent: the remaining tests fail
        if not offered:
            report(False)
            continue
        namespace = {**trusted, **proxies_for(test, offered, trusted, entry_points, channel)}
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
