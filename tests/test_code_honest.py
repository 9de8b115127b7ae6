"""Honest programs score what they earn: the shapes real solutions take (standard-library
results, objects, builtin names, demo blocks, Codeforces idioms) score 1.0, each beside a wrong
twin that scores 0.0, on real sandboxed executions. MBPP's reference solutions are the check."""

import json

import pytest

from rewards.code import code_accuracy

# Calls: (program, wrong program, test_list, test_setup_code)
CALLS = {
    "a Counter (MBPP 88)": (
        "import collections\ndef freq(xs):\n    return collections.Counter(xs)\n",
        "def freq(xs):\n    return {x: 1 for x in xs}\n",
        ["assert freq([1, 1, 2]) == ({1: 2, 2: 1})", "assert freq('aab')['a'] == 2 and freq('b')['z'] == 0"], ""),
    "a defaultdict and an OrderedDict": (
        "from collections import defaultdict, OrderedDict\ndef group(pairs):\n    d = defaultdict(list)\n"
        "    for k, v in pairs:\n        d[k].append(v)\n    return d\ndef ordered(xs):\n    return OrderedDict((x, 1) for x in xs)\n",
        "def group(pairs):\n    return {}\ndef ordered(xs):\n    return {}\n",
        ["assert group([('a', 1), ('a', 2)]) == {'a': [1, 2]} and group([])['b'] == []",
         "assert list(ordered('ba')) == ['b', 'a']"], ""),
    "a named tuple, a Fraction, a bytearray, a deque": (
        "import collections, fractions\nPoint = collections.namedtuple('Point', 'x y')\n"
        "def point(x):\n    return Point(x, 2 * x)\ndef half(n):\n    return fractions.Fraction(n, 2)\n"
        "def raw(s):\n    return bytearray(s, 'ascii')\ndef window(xs):\n    return collections.deque(xs, maxlen=2)\n",
        "def point(x):\n    return (0, 0)\ndef half(n):\n    return 0\ndef raw(s):\n    return b''\ndef window(xs):\n    return []\n",
        ["assert point(3).y == 6 and point(3) == (3, 6)", "from fractions import Fraction\nassert half(3) == Fraction(3, 2)",
         "assert raw('hi') == bytearray(b'hi')", "assert list(window([1, 2, 3])) == [2, 3]"], ""),
    "a map object the test turns into a list; a generator": (
        "def doubled(xs):\n    return map(lambda x: 2 * x, xs)\ndef evens(n):\n    yield from range(0, n, 2)\n",
        "def doubled(xs):\n    return map(lambda x: x, xs)\ndef evens(n):\n    yield from range(n)\n",
        ["assert list(doubled([1, 2])) == [2, 4]", "assert list(evens(5)) == [0, 2, 4]"], ""),
    "a built-in type as an argument (MBPP 533)": (
        "def drop(xs, kind):\n    return [x for x in xs if not isinstance(x, kind)]\n",
        "def drop(xs, kind):\n    return list(xs)\n",
        ["assert drop((4, 7.7, 'a'), int) == [7.7, 'a']", "assert drop((1, 'a'), str) == [1]"], ""),
    "instances of the program's own class built by the test (MBPP 601)": (
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n    def width(self):\n        return self.b - self.a\n"
        "def longest(pairs):\n    return max(p.width() for p in pairs)\n",
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n    def width(self):\n        return 0\n"
        "def longest(pairs):\n    return 0\n",
        ["assert longest([Pair(1, 5), Pair(2, 3)]) == 4", "p = Pair(1, 9)\nassert p.a == 1 and p.width() == 8 and longest([p]) == 8"], ""),
    "a tree of the program's class built by the setup code (MBPP 927)": (
        "class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n"
        "def height(node):\n    return 0 if node is None else 1 + max(height(node.left), height(node.right))\n",
        "class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n"
        "def height(node):\n    return 1\n",
        ["assert height(root) == 3", "assert height(root.left) == 2 and root.left.data == 2"],
        "root = Node(1)\nroot.left = Node(2)\nroot.left.right = Node(4)\nroot.right = Node(3)\n"),
    "a solution named like a builtin (MBPP 126)": (
        "def sum(a, b):\n    return a + b\n", "def sum(a, b):\n    return 0\n",
        ["assert sum(10, 15) == 25", "assert sum(1, 2) == 3"], ""),
    "exceptions of the standard library, caught by their builtin ancestor": (
        "import json, statistics\ndef parse(s):\n    return json.loads(s)\ndef middle(xs):\n    return statistics.median(xs)\n",
        "def parse(s):\n    return None\ndef middle(xs):\n    return None\n",
        ["try:\n    parse('{')\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError",
         "import json\ntry:\n    parse('{')\nexcept json.JSONDecodeError:\n    pass\nelse:\n    raise AssertionError",
         "import statistics\ntry:\n    middle([])\nexcept statistics.StatisticsError:\n    pass\nelse:\n    raise AssertionError"], ""),
    "a __main__ demo block that reads input": (
        "def double(x):\n    return 2 * x\n\nif __name__ == '__main__':\n    print(double(int(input())))\n",
        "def double(x):\n    return x\n\nif __name__ == '__main__':\n    print(double(int(input())))\n",
        ["assert double(4) == 8"], ""),
    "a function the program returns (a closure), called by the test": (
        "def adder(n):\n    return lambda x: x + n\n", "def adder(n):\n    return lambda x: x\n",
        ["assert adder(5)(3) == 8"], ""),
    "a class's static method and attribute": (
        "class Calc:\n    BASE = 10\n    @staticmethod\n    def add(a, b):\n        return a + b\n",
        "class Calc:\n    BASE = 0\n    @staticmethod\n    def add(a, b):\n        return 0\n",
        ["assert Calc.add(1, 2) == 3", "assert Calc.BASE == 10"], ""),
    "the program's own exception class, and its message": (
        "class Overdrawn(ValueError):\n    pass\ndef withdraw(balance, amount):\n    if amount > balance:\n"
        "        raise Overdrawn('not enough')\n    return balance - amount\n",
        "class Overdrawn(ValueError):\n    pass\ndef withdraw(balance, amount):\n    return balance - amount\n",
        ["try:\n    withdraw(1, 2)\nexcept Overdrawn as e:\n    assert str(e) == 'not enough'\nelse:\n    raise AssertionError",
         "try:\n    withdraw(1, 2)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError"], ""),
    "a standard module the program imported, used by the test (MBPP ran tests in the program's namespace)": (
        "import math\ndef area(r):\n    return math.pi * r * r\n", "import math\ndef area(r):\n    return 3 * r * r\n",
        ["assert math.isclose(area(1), 3.14159, rel_tol=1e-4)"], ""),
    "the standard library's names the program imported, used by the test": (
        "from collections import OrderedDict\nimport datetime\ndef group(pairs):\n    d = OrderedDict()\n"
        "    for k, v in pairs:\n        d.setdefault(k, []).append(v)\n    return d\n"
        "def next_day(y, m, d):\n    return datetime.date(y, m, d) + datetime.timedelta(days=1)\n",
        "from collections import OrderedDict\nimport datetime\ndef group(pairs):\n    return OrderedDict()\n"
        "def next_day(y, m, d):\n    return datetime.date(y, m, d)\n",
        ["assert group([('a', 1), ('a', 2)]) == OrderedDict([('a', [1, 2])])",
         "assert next_day(2020, 1, 31) == datetime.date(2020, 2, 1)"], ""),
    "an exception under the program's own exception class": (
        "class BankError(Exception):\n    pass\nclass Overdrawn(BankError):\n    pass\n"
        "def withdraw(b, a):\n    if a > b:\n        raise Overdrawn('no')\n    return b - a\n",
        "class BankError(Exception):\n    pass\ndef withdraw(b, a):\n    return b - a\n",
        ["try:\n    withdraw(1, 2)\nexcept BankError:\n    pass\nelse:\n    raise AssertionError"], ""),
    "dates, durations and a dict's views": (
        "import datetime\ndef next_day(y, m, d):\n    return datetime.date(y, m, d) + datetime.timedelta(days=1)\n"
        "def gap(a, b):\n    return datetime.timedelta(days=b - a)\ndef keys(d):\n    return d.keys()\n",
        "import datetime\ndef next_day(y, m, d):\n    return datetime.date(y, m, d)\n"
        "def gap(a, b):\n    return datetime.timedelta(0)\ndef keys(d):\n    return []\n",
        ["import datetime\nassert next_day(2024, 2, 28) == datetime.date(2024, 2, 29)",
         "import datetime\nassert gap(1, 3) == datetime.timedelta(days=2)", "assert keys({1: 2, 3: 4}) == {1, 3}"], ""),
}


@pytest.mark.parametrize("name", CALLS)
def test_honest_shapes_of_a_solution_score_full_marks_and_their_wrong_twins_zero(name):
    right, wrong, tests, setup = CALLS[name]
    scores = code_accuracy([right, wrong], test_list=[tests, tests], test_setup_code=[setup, setup])
    assert scores == [1.0, 0.0]


def test_objects_of_the_program_cannot_decide_how_a_test_compares():
    """An object of the program's class stays in its execution: equality and order are the
    judge's own, so an always-equal object or a lying length never passes a comparison."""
    liar = ("class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
            "    def __lt__(self, other):\n        return True\n    def __len__(self):\n        return 3\n"
            "def f(x):\n    return Anything()\n")
    tests = ["assert f(1) == 2", "assert f(1) < 0", "assert 2 == f(1)", "assert f(1) in [2]", "assert len(f(1)) == 4",
             "assert f(1) == f(1)", "assert {f(1): 0}[f(1)] == 0"]
    assert code_accuracy([liar] * len(tests), test_list=[[t] for t in tests]) == [0.0] * len(tests)


CHEATS = {  # each passes its tests in plain Python, where the program's objects run inside the test
    "an object whose __contains__ says yes": (
        "class Yes:\n    def __contains__(self, v):\n        return True\ndef f(s):\n    return Yes()\n",
        ["assert 'b' in f('abc')", "assert 'z' in f('xyz')"], ""),
    "an object whose str methods say yes": (
        "class Yes:\n    def startswith(self, *a):\n        return True\n    def isdigit(self):\n        return True\n"
        "def f(s):\n    return Yes()\n",
        ["assert f('abc').startswith('ab')", "assert f('123').isdigit()"], ""),
    "StopIteration ending the test's own map early": (
        "def is_even(n):\n    raise StopIteration\n",
        ["assert all(map(is_even, [2, 4, 6]))", "assert list(filter(is_even, [1, 3])) == []"], ""),
    "its own abs around a method's result": (
        "class Circle:\n    def __init__(self, r):\n        pass\n    def area(self):\n        return -1.0\n"
        "def abs(x):\n    return 0\n",
        ["assert abs(c.area() - 28.274) < 0.01"], "c = Circle(3)"),
    "its own abs around a value the setup computed": (
        "def solve(x):\n    return -1\ndef abs(x):\n    return 0\n", ["assert abs(r1 - 1.5) < 1e-9"], "r1 = solve(3)"),
    "its own round on both sides": (
        "class S:\n    def f(self, x):\n        return 0\ndef round(x, n=0):\n    return 0\n",
        ["assert round(s.f(1), 2) == round(3.14159, 2)"], "s = S()"),
    "a class as the function under test, answering in and startswith": (
        "class f:\n    def __init__(self, *a):\n        pass\n    def __contains__(self, v):\n        return True\n"
        "    def startswith(self, *a):\n        return True\n",
        ["assert 'b' in f('abc')", "assert f('abc').startswith('ab')"], ""),
    "its own OrderedDict making the expected value": (
        "def OrderedDict(*a, **k):\n    return 7\ndef group(p):\n    return 7\n",
        ["assert group([('a', 1)]) == OrderedDict([('a', [1])])"], ""),
    "its own datetime class making the expected value": (
        "class datetime:\n    date = staticmethod(lambda *a: 0)\ndef next_day(s):\n    return 0\n",
        ["assert next_day('2020-01-31') == datetime.date(2020, 2, 1)"], ""),
    "its own isinstance": (
        "def f(x):\n    return 'x'\ndef isinstance(a, b):\n    return True\n", ["assert isinstance(f(1), int)"], ""),
}


@pytest.mark.parametrize("name", CHEATS)
def test_a_program_cannot_make_the_test_compare_with_its_code(name):
    program, tests, setup = CHEATS[name]
    assert code_accuracy([program], test_list=[tests], test_setup_code=[setup]) == [0.0]


def test_a_builtin_a_test_uses_stays_the_judges():
    """A program's own ``abs`` never replaces the one a test compares with, unless it is the
    function every test calls and wraps no other call."""
    cheat = "def abs(x):\n    return 0\ndef area(r):\n    return 1.0\n"
    tests = ["assert abs(area(1) - 3.14159) < 1e-3", "assert abs(area(2) - 12.566) < 1e-3"]
    assert code_accuracy([cheat], test_list=[tests]) == [0.0]


def test_the_fence_that_defines_the_function_is_the_program():
    usage = ("Solution:\r\n```python\r\ndef double(x):\r\n    return 2 * x\r\n```\r\n"
             "Usage:\r\n```python\r\nprint(double(3))\r\n```\r\n")
    assert code_accuracy([usage], test_list=[["assert double(3) == 6"]]) == [1.0]
    humaneval = {"prompt": ['def double(x):\n    """Twice x."""\n'], "entry_point": ["double"],
                 "test": ["def check(candidate):\n    assert candidate(3) == 6\n"]}
    assert code_accuracy([usage], **humaneval) == [1.0]


def test_a_prompt_in_prose_is_not_put_before_the_program():
    """MBPP-sanitized's ``prompt`` column is the task in words (one word parses as Python too)."""
    for prompt in ("Write a function to double a number.", "double"):
        row = {"prompt": [prompt], "test_list": [["assert double(3) == 6"]]}
        assert code_accuracy(["def double(x):\n    return 2 * x\n"], **row) == [1.0]


FENCES = {
    "left open at the end (cut at the length limit)": "Here:\n```python\ndef double(x):\n    return 2 * x\n",
    "with words after the language": '```python title="solution.py"\ndef double(x):\n    return 2 * x\n```\n',
    "with tildes": "~~~python\ndef double(x):\n    return 2 * x\n~~~\n",
    "indented in a list item": "1. The code:\n   ```python\n   def double(x):\n       return 2 * x\n   ```\n",
    "after a byte-order mark": "\ufeff```python\ndef double(x):\n    return 2 * x\n```\n",
    "after a usage block": ("Usage:\n```python\narr = [1, 2]\nprint(double(arr[0]))\n```\nSolution:\n"
                            "```python\ndef double(x):\n    arr = [x, x]\n    return sum(arr)\n```\n"),
    "with a helper in an earlier block": ("```python\ndef twice(x):\n    return x + x\n```\nThen:\n"
                                          "```python\ndef double(x):\n    return twice(x)\n```\nUse: `double(3)`\n"),
}


@pytest.mark.parametrize("name", FENCES)
def test_fences_as_completions_write_them(name):
    assert code_accuracy([FENCES[name]], test_list=[["assert double(3) == 6"]]) == [1.0]


def test_a_body_block_before_a_usage_block_completes_the_prompt():
    body = "```python\n    return 2 * x\n```\nFor example:\n```python\nprint(double(3))\n```\n"
    humaneval = {"prompt": ['def double(x):\n    """Twice x."""\n'], "entry_point": ["double"],
                 "test": ["def check(candidate):\n    assert candidate(3) == 6\n"]}
    assert code_accuracy([body], **humaneval) == [1.0]


# stdin/stdout programs as contest solutions write them
SCRIPTS = {
    "exit() and quit()": "print(2 * int(input()))\nexit(0)\n",
    "sys.exit with a message": "import sys\nprint(2 * int(input()))\nsys.exit()\n",
    "the threading idiom": ("import sys, threading\nsys.setrecursionlimit(10000)\nthreading.stack_size(1 << 26)\n"
                            "def main():\n    print(2 * int(sys.stdin.readline()))\nthreading.Thread(target=main).start()\n"),
    "output from an atexit handler": "import atexit\nn = int(input())\natexit.register(lambda: print(2 * n))\n",
    "/dev/stdin and /dev/stdout": ("n = int(open('/dev/stdin').read())\nwith open('/dev/stdout', 'w') as out:\n"
                                   "    out.write(str(2 * n))\n"),
    "/dev/fd/0": "print(2 * int(open('/dev/fd/0').read()))\n",
    "a multiprocessing pool (/dev/shm)": ("from multiprocessing import Pool\nif __name__ == '__main__':\n"
                                          "    n = int(input())\n    with Pool(2) as pool:\n"
                                          "        print(sum(pool.map(int, [n, n])))\n"),
    "Windows line ends": "n = int(input())\r\nprint(2 * n)\r\n",
    "a pool mapping its own function (pickled from __main__)": (
        "from multiprocessing import Pool\ndef twice(v):\n    return 2 * v\nif __name__ == '__main__':\n"
        "    n = int(input())\n    with Pool(2) as pool:\n        print(pool.map(twice, [n])[0])\n"),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_contest_idioms_keep_their_output(name):
    cases = [{"input": "3", "output": "6"}, {"input": "-4", "output": "-8"}]
    wrong = SCRIPTS[name].replace("2 *", "3 *").replace("[n, n]", "[n, n, n]")
    assert code_accuracy([SCRIPTS[name], wrong], tests=[cases, cases]) == [1.0, 0.0]


def test_a_flood_of_short_lines_is_refused_without_splitting_it():
    flood = "import sys\nsys.stdout.write('6\\n' * 5_000_000)\n"
    assert code_accuracy([flood], tests=[[{"input": "", "output": "6"}]]) == [0.0]


# MBPP reference solutions that cannot pass on this interpreter: the tests encode an older CPython
MBPP_WRONG_REFERENCES = {
    596: "sys.getsizeof of a 6-tuple is 88 bytes since CPython 3.8's smaller GC header; the test expects 104",
    642: "the test expects the order of tuple(set(...)) of tuples, which changed with CPython 3.8's tuple hash",
}


@pytest.mark.slow  # (half a minute: the default suite stays under six)
def test_mbpp_reference_solutions_pass_and_return_none_fails(shared_data):
    """All 974 tasks with their setup code and challenge tests: every reference passes but those
    whose tests expect what this interpreter no longer does; ``return None`` passes nothing."""
    rows = [json.loads(line) for line in (shared_data / "mbpp.jsonl").read_text().splitlines()]
    columns = {"test_list": [r["test_list"] + r["challenge_test_list"] for r in rows],
               "test_setup_code": [r["test_setup_code"] for r in rows]}
    scores = code_accuracy([r["code"] for r in rows], **columns)
    failing = {r["task_id"] for r, s in zip(rows, scores) if s != 1.0}
    assert failing == set(MBPP_WRONG_REFERENCES) and len(rows) == 974
    nothing = code_accuracy(["def f(*args, **kwargs):\n    return None\n"] * len(rows), **columns)
    assert set(nothing) == {0.0}


def test_a_decimal_answer_is_compared_as_contest_checkers_do():
    """Within 1e-6 (absolute, or relative above 1) of an expected decimal; integers exactly."""
    cases = [{"input": "3", "output": "0.333333333"}, {"input": "7", "output": "0.142857143"}]
    right, rounded_too_far = "print(1 / int(input()))\n", "print(round(1 / int(input()), 3))\n"
    assert code_accuracy([right, rounded_too_far], tests=[cases, cases]) == [1.0, 0.0]
    whole = [{"input": "3", "output": "6"}]
    assert code_accuracy(["print(2.0 * int(input()))\n"], tests=[whole]) == [0.0]


MALFORMED_HELLOS = {  # the program writes the first message itself, then leaves
    "an exception list that does not unpack": '["dict",[["loaded",true],["names",["list",["double"]]],'
                                               '["exceptions",["dict",[["E",["list",[0,1]]]]]]]]',
    "an unhashable module entry": '["dict",[["loaded",true],["names",["list",["double"]]],["modules",["dict",[["check",["list",[]]]]]]]]',
}


@pytest.mark.parametrize("name", MALFORMED_HELLOS)
def test_a_program_that_forges_its_first_message_scores_zero_not_none(name):
    forged = f"import os\nos.write(4, {MALFORMED_HELLOS[name]!r}.encode() + b'\\n')\nos._exit(0)\n"
    humaneval = {"prompt": ['def double(x):\n    """Twice x."""\n'], "entry_point": ["double"],
                 "test": ["def check(candidate):\n    assert candidate(3) == 6\n"]}
    assert code_accuracy([forged], **humaneval) == [0.0]
    assert code_accuracy([forged], test_list=[["assert double(3) == 6"]]) == [0.0]


def test_a_program_that_ignores_its_alarm_still_has_each_tests_budget():
    """The per-test budget is the judge's, on the execution's CPU time its supervisor publishes:
    a program that turns off its own alarm and computes for 1.6 s of CPU does not pass a 1 s
    test (the completion's 2 s would have let it)."""
    slow = ("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "def double(x):\n    started = time.process_time()\n    while time.process_time() - started < 1.6:\n"
            "        pass\n    return 2 * x\n")
    assert code_accuracy([slow], test_list=[["assert double(3) == 6"]], timeout=1.0) == [0.0]
    assert code_accuracy([slow], test_list=[["assert double(3) == 6"]], timeout=4.0) == [1.0]


BURNERS = {  # a second of CPU time however fast the machine, then the answer
    "on the main thread": ("import time\nstarted = time.process_time()\nwhile time.process_time() - started < 1.0:\n"
                           "    pass\nprint(2 * int(input()))\n"),
    "in a thread (the contest idiom)": ("import threading, time\ndef main():\n    started = time.thread_time()\n"
                                        "    while time.thread_time() - started < 1.0:\n        pass\n"
                                        "    print(2 * int(input()))\nthreading.Thread(target=main).start()\n"),
}


@pytest.mark.parametrize("name", BURNERS)
def test_a_script_that_needs_a_second_of_cpu_passes_a_two_second_budget(name):
    """Its budget is time it did not spend waiting for a CPU: on a loaded machine
    (tests/test_under_load.py) its wall time stretches, its verdict does not."""
    assert code_accuracy([BURNERS[name]], tests=[[{"input": "3", "output": "6"}]], timeout=2.0) == [1.0]
