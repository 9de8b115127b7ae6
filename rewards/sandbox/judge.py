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
import functools
import os
import signal
import struct
import sys
import time

from rewards.sandbox import plain_data

MAX_MESSAGE = 16 << 20  # one answer of the program, encoded
LOAD_GRACE = 0.5  # seconds beyond one call's budget for the program to load and say so
MAX_EXCEPTION_TEXT = 1000
# budgets are time not spent waiting for a CPU; wall-time ceilings (the supervisor's, the judge's,
# the trainer's) allow an execution starved of CPU by other work this many times its budget
WALL_CEILING = 10


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
        raise exception_from(message.get("raised"), message.get("ancestry"), message.get("message"), message.get("args"))

    def call(self, name: str, args: tuple, kwargs: dict):
        return self.request(name=name, args=list(args), kwargs=kwargs)


class Proxy:
    """Stands for one of the program's functions (or classes) in the tests."""

    def __init__(self, channel: Channel, name: str, is_class: bool = False):
        self.channel, self.__name__, self.is_class = channel, name, is_class

    def __call__(self, *args, **kwargs):
        value = self.channel.call(self.__name__, args, kwargs)
        return built(value) if self.is_class else value

    def __getattr__(self, attribute: str):
        """A class's attributes (``Calc.add``, ``Color.RED``), answering for themselves."""
        if not self.is_class or (attribute.startswith("__") and attribute.endswith("__")):
            raise AttributeError(attribute)
        return built(self.channel.request(name=self.__name__, op="getattr", attribute=attribute))


class Remote:
    """Stands for an object of the program's in the tests; equality, order, truth and hashing
    are identity. An object the tests built, by calling one of the program's classes (MBPP's
    ``Pair(5, 24)``, the setup code's ``Node(1)``), and what its attributes and items hold,
    answers for itself: its attributes, methods, items, length and text come from the program.
    Any other object (what a function returned where the test expected a value) can only be
    handed back to the program: a test that asks it anything (``f(s).startswith("ab")``,
    ``"b" in f(s)``) would let the program's object decide the comparison, and fails."""

    __slots__ = ("_channel", "_number", "_built")

    def __init__(self, channel: Channel, number: int, built: bool = False):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_number", number)
        object.__setattr__(self, "_built", built)

    def _ask(self, op: str, **operands):
        if not object.__getattribute__(self, "_built"):
            raise CandidateError("an object the program returned where a value was expected")
        return built(self._channel.request(target=self, op=op, **operands))

    def __getattr__(self, attribute: str):
        if attribute.startswith("__") and attribute.endswith("__"):
            raise AttributeError(attribute)  # no protocol of the program's is looked up by name
        return self._ask("getattr", attribute=attribute)

    def __setattr__(self, attribute: str, value) -> None:
        self._ask("setattr", attribute=attribute, value=value)

    def __call__(self, *args, **kwargs):
        # a method of a built object, or a function the program returned (a closure), is called
        # like one of the program's functions: its result is a value the test judges, and an
        # object in it answers for nothing
        return self._channel.request(target=self, op="call", args=list(args), kwargs=kwargs)

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


def built(value):
    """``value`` with the Remotes in it (at its top level, or in a list or tuple) marked as
    objects the tests built."""
    if type(value) is Remote:
        object.__setattr__(value, "_built", True)
    elif type(value) in (list, tuple):
        for item in value:
            built(item)
    return value


def reference(value) -> int:
    """A Remote crosses back to the program as the object it stands for."""
    if type(value) is Remote:
        return object.__getattribute__(value, "_number")
    raise plain_data.NotPlainData(f"{type(value).__name__} is not plain data")


NEVER_CROSS = (StopIteration, StopAsyncIteration)  # they would end the test's own loops early (all(map(f, xs)))


def exception_from(name, ancestry, message=None, args=None) -> Exception:
    """The exception the program raised, as the first class of its ancestry the judge has: a
    built-in one (tests may expect ``ValueError``) or one of a module the tests imported
    (``json.JSONDecodeError``), with the program's arguments where they are plain data, else
    its message (text only); else CandidateError."""
    text = message[:MAX_EXCEPTION_TEXT] if type(message) is str else "raised by the program"
    arguments = tuple(args) if type(args) is list else (text,)
    for module, qualname in ancestry if type(ancestry) is list else [["builtins", name]]:
        cls = known_class(module, qualname)
        if cls is not None and not issubclass(cls, NEVER_CROSS):
            try:
                raised = cls.__new__(cls)
                Exception.__init__(raised, *arguments)
                return raised
            except Exception:
                continue
    return CandidateError(f"the program's call failed ({str(name)[:40]})")


# exception classes the program's module defines, as the judge's own: those of the tests' prelude
# (HumanEval's prompt defines them, the program raises its copy) and stand-ins for the program's own
# (``class InsufficientFunds(ValueError)``: a judge class of that name under ValueError)
program_exceptions: dict[str, type] = {}
PROGRAM_MODULE = "solution"


def local_exceptions(offered: dict, trusted: dict) -> dict[str, type]:
    """``program_exceptions`` for a program whose hello named ``offered`` (name -> ancestry)."""
    found = {name: cls for name, cls in trusted.items()
             if isinstance(cls, type) and issubclass(cls, Exception) and not hasattr(builtins, name)}
    pending = {name: ancestry for name, ancestry in (offered.items() if type(offered) is dict else ())
               if type(name) is str and name not in found and name.isidentifier() and type(ancestry) is list
               and all(type(entry) is list and len(entry) == 2 for entry in ancestry)}
    for _ in range(len(pending) + 1):  # parents first: a program's BankError before its Overdrawn(BankError)
        for name, ancestry in list(pending.items()):
            base = nearest_known(ancestry[1:], found, pending)
            if base is WAIT:
                continue
            del pending[name]
            if base is not None and issubclass(base, Exception) and not issubclass(base, NEVER_CROSS):
                found[name] = type(name, (base,), {"__module__": PROGRAM_MODULE})
    return found


WAIT = object()


def nearest_known(ancestors: list, found: dict, pending: dict):
    """The first of ``ancestors`` the judge has: a program class made already (``found``), or a
    built-in or imported one; ``WAIT`` when a program class before it is still to be made."""
    for module, qualname in ancestors:
        if module == PROGRAM_MODULE:
            if qualname in found:
                return found[qualname]
            if qualname in pending:
                return WAIT
            continue
        cls = known_class(module, qualname)
        if cls is not None:
            return cls
    return None


def known_class(module, qualname) -> type | None:
    if type(module) is not str or type(qualname) is not str or "." in qualname:
        return None
    if module == PROGRAM_MODULE:
        return program_exceptions.get(qualname)
    owner = builtins if module == "builtins" else sys.modules.get(module)
    cls = getattr(owner, qualname, None) if owner is not None else None
    ok = isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == module
    return cls if ok else None


@functools.lru_cache(maxsize=64)
def syntax(source: str) -> ast.Module:
    """``source``'s syntax tree, parsed once (an empty module where it does not parse; the
    tests compile it again and fail there). Not to be changed: it is shared."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return ast.Module(body=[], type_ignores=[])


@functools.lru_cache(maxsize=64)
def referenced_names(source: str) -> frozenset[str]:
    return frozenset(node.id for node in ast.walk(syntax(source)) if isinstance(node, ast.Name))


def defined_names(source: str) -> set[str]:
    """Names ``source`` binds anywhere (assignments, definitions, imports)."""
    found = set()
    for node in ast.walk(syntax(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return found


def called_names(source: str) -> list[tuple[str, bool]]:
    """Each call of a bare name in ``source``: the name, and whether its arguments are all
    literals (``sum(10, 15)``; not ``abs(c.area() - 3)``, ``round(r1, 2)`` or ``isinstance(x, int)``)."""
    return [(node.func.id, all(is_literal(arg) for arg in [*node.args, *(k.value for k in node.keywords)]))
            for node in ast.walk(syntax(source)) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]


def is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def functions_under_test(tests: list[str], offered: set[str], trusted: dict, classes: set[str] = frozenset()) -> set[str]:
    """The program's names every test calls, that the tests' prelude does not define. A name
    that is also a builtin's (MBPP's ``def sum(a, b)``) counts only when no other name does and
    every test calls it on literals alone (``sum(10, 15) == 6``): where a builtin takes a value
    the test computed (``abs(c.area() - 28.27) < 0.01``, ``round(r1, 2)``) it is the judge's own."""
    if not tests:
        return set()
    per_test = [called_names(test) for test in tests]
    common = set.intersection(*({name for name, _ in calls} for calls in per_test)) & offered
    common -= set(trusted)
    plain = {name for name in common if not hasattr(builtins, name)}
    # MBPP 601's Pair is the data and max_chain_length the function; in
    # `group(p) == OrderedDict(...)` the standard library's name is the expected value's
    for narrowed in (plain - classes - set(standard_names()), plain - classes, plain):
        if narrowed:
            return narrowed
    return {name for name in common
            if all(literal for calls in per_test for called, literal in calls if called == name)}


# standard-library modules a test may use because the program imported them (MBPP's tests ran in
# the program's namespace: ``math.isclose`` without a test import); the judge imports its own copy
STANDARD_ORDER = ("math", "collections", "itertools", "functools", "heapq", "bisect", "operator", "fractions",
                  "decimal", "statistics", "datetime", "string", "re", "json", "cmath", "random", "typing", "copy",
                  "array", "numbers", "unicodedata", "textwrap")
STANDARD_MODULES = frozenset(STANDARD_ORDER)


def standard_modules(imported, wanted: set[str]) -> dict:
    """The judge's own objects for the names in ``wanted`` that the standard library defines:
    a module the program bound to that name (``imported``: name -> module name, from its hello;
    only one of ``STANDARD_MODULES``), else the first of those modules' public names (``OrderedDict``,
    ``date``): a test that uses them means the standard library's, never something the program
    defined under that name (it would supply the expected value too)."""
    found = {}
    claims = imported if type(imported) is dict else {}
    for name in wanted:
        module = claims.get(name)
        if type(module) is str and module in STANDARD_MODULES:
            found[name] = __import__(module)
        elif name in standard_names():
            found[name] = standard_names()[name]
    return found


def program_bound_standard_names(source: str, offered: set[str], modules: dict, trusted: dict,
                                 entry_points: set[str]) -> dict:
    """For the names ``source`` uses that the program binds (a function, class or module of its)
    and the standard library defines, the standard library's object, the judge's own: MBPP's
    tests ran in the program's namespace and use its ``from collections import OrderedDict``;
    a program that binds its own ``OrderedDict`` does not supply the test's expected value. The
    function under test stays the program's."""
    wanted = {name for name in referenced_names(source) if (name in offered or name in modules)
              and name not in trusted and name not in entry_points and not hasattr(builtins, name)}
    return standard_modules(modules, wanted)


@functools.lru_cache(maxsize=1)
def standard_names() -> dict:
    """Public names of ``STANDARD_MODULES`` (the modules themselves first, then each one's
    attributes in the order listed), as the judge's own objects."""
    names = {}
    for module in sorted(STANDARD_MODULES):
        names[module] = __import__(module)
    for module in STANDARD_ORDER:
        for attribute in dir(names[module]):
            if not attribute.startswith("_"):
                names.setdefault(attribute, getattr(names[module], attribute))
    return names


def proxies_for(source: str, offered: set[str], trusted: dict, entry_points: set[str], channel: Channel,
                classes: set[str] = frozenset()) -> dict:
    """The program's functions ``source`` (a test, or the prelude) may call: the entry points,
    and names it uses that neither the trusted prelude, the builtins nor the standard library
    define (a program's ``abs`` or ``OrderedDict`` is not the test's). Objects a class call
    gives answer for themselves (``built``) unless that class is the function under test: a
    test that expects a value from ``f(s)`` gets no object of ``class f`` that answers ``in``."""
    wanted = {name for name in referenced_names(source) & offered
              if name not in trusted and not hasattr(builtins, name) and name not in standard_names()}
    wanted |= entry_points & offered
    return {name: Proxy(channel, name, name in classes and name not in entry_points) for name in wanted}


def judge(spec: dict, channel: Channel, report, clock_fd: int | None = None) -> None:
    """Run ``spec["tests"]`` against the program behind ``channel``, calling ``report(passed)``
    after each test (tests left when the completion's budget runs out are not reported).

    ``spec``: ``prelude`` (trusted code run first, e.g. HumanEval's prompt with its helpers),
    ``tests`` (sources, one test each), ``entry_point`` (always a proxy, e.g. the HumanEval
    function), ``test_seconds`` (budget of each test) and ``completion_seconds`` (of all).
    """
    tests, clock = spec["tests"], execution_clock(clock_fd)
    # the program's calls keep their budgets themselves, and its execution the completion's (in
    # time not spent waiting for a CPU); the judge's clocks are wall-time ceilings above them
    test_seconds = spec["test_seconds"] * WALL_CEILING
    deadline = time.monotonic() + spec["completion_seconds"] * WALL_CEILING
    signal.signal(signal.SIGALRM, on_alarm)
    # no answer, a broken one, or one too big to hold (MemoryError): nothing passes
    loaded, hello = bounded(min(test_seconds + LOAD_GRACE, deadline - time.monotonic()), channel.receive)
    names = hello.get("names") if loaded and type(hello) is dict and hello.get("loaded") is True else None
    offered = {name for name in names if type(name) is str} if type(names) is list else None
    kinds = hello.get("classes") if offered is not None else None
    classes = {name for name in kinds if type(name) is str} if type(kinds) is list else set()
    if offered is None:  # the program did not load: every test fails
        for _ in tests:
            report(False)
        return
    trusted = {"__name__": "__main__", "__builtins__": builtins}
    prelude = spec.get("prelude") or ""
    # setup code may build its data with the program's classes (MBPP's trees of the program's Node)
    wanted = {name for name in referenced_names(prelude) - defined_names(prelude) if not hasattr(builtins, name)}
    trusted.update({name: Proxy(channel, name, name in classes) for name in wanted & offered})
    ran, _ = bounded(max(0.0, deadline - time.monotonic()), lambda: exec(compile(prelude, "prelude.py", "exec"), trusted))
    if not ran:
        if not wanted:
            raise RuntimeError("the tests' prelude failed on its own")  # the row's fault: unscored
        offered = set()  # the program lacks or broke what the setup needs of it: every test fails
    program_exceptions.clear()
    try:  # the program wrote its hello: anything malformed in it only costs the program
        program_exceptions.update(local_exceptions(hello.get("exceptions"), trusted))
    except Exception:
        program_exceptions.clear()
    modules = hello.get("modules") if type(hello.get("modules")) is dict else {}
    modules = {k: v for k, v in modules.items() if type(k) is str and type(v) is str}
    entry_points = {spec["entry_point"]} if spec.get("entry_point") else functions_under_test(tests, offered, trusted, classes)
    for test in tests:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break  # the completion's budget is spent: the remaining tests fail
        if not offered:
            report(False)
            continue
        namespace = {**trusted, **proxies_for(test, offered, trusted, entry_points, channel, classes)}
        namespace.update({name: cls for name, cls in program_exceptions.items()
                          if name not in trusted and name in referenced_names(test)})  # except InsufficientFunds:
        namespace.update(program_bound_standard_names(test, offered, modules, trusted, entry_points))
        # each test within its budget of the execution's CPU time (published by its supervisor, out
        # of the program's reach), and the judge's wall ceiling
        passed, _ = bounded(min(test_seconds, remaining), lambda: exec(compile(test, "test.py", "exec"), namespace),
                            budget=spec["test_seconds"], clock=clock)
        report(passed)


_armed = False  # whether an alarm may interrupt what runs now
_limit: tuple[float, float, object, float] = (0.0, 0.0, None, 0.0)  # wall deadline, budget, clock, clock at start
TICK = 0.05


def on_alarm(signum, frame):
    if not _armed:
        return
    deadline, budget, clock, started = _limit
    if time.monotonic() >= deadline or (clock is not None and clock() - started >= budget):
        raise TestTimeout()


def bounded(seconds: float, step, budget: float | None = None, clock=None) -> tuple[bool, object]:
    """``(True, step())`` if it returns within ``seconds`` of wall time (and, with a ``clock``
    of the program's execution, within ``budget`` of that clock), else ``(False, None)``: on
    any exception, and on an alarm that lands late (after a long C call that checks for no
    signals, say), which must not escape into the judge."""
    global _armed, _limit
    try:
        try:
            timed = budget is not None and clock is not None
            _limit = (time.monotonic() + seconds, budget if timed else 0.0, clock if timed else None, clock() if timed else 0.0)
            _armed = True
            signal.setitimer(signal.ITIMER_REAL, max(0.001, min(seconds, TICK)), TICK)
            return True, step()
        finally:
            _armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:
        return False, None


def execution_clock(fd: int | None):
    """The CPU time the program's execution has used, as its supervisor publishes it (a double
    at the start of the descriptor ``fd``); None without one."""
    if fd is None:
        return None

    def read() -> float:
        data = os.pread(fd, 8, 0)
        return struct.unpack("d", data)[0] if len(data) == 8 else 0.0
    return read
