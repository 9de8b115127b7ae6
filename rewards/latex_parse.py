r"""Normalised LaTeX answers (see latex_normalise) -> sympy objects, with a small
recursive-descent parser of our own.

Why our own: answers are short and written many ways (``\frac 59``, ``137 \frac{1}{2}``,
``3 \pm 2\sqrt2``, ``(-\infty, 2) \cup (3, \infty)``, ``x \ge 3``); a hand parser accepts
all of them, parses in tens of microseconds, and never evaluates anything huge (powers and
factorials with enormous results stay unevaluated).

What it returns:
- a sympy expression, relation (``Eq``, ``Lt``...), set (``Interval``, ``Union``,
  ``FiniteSet``) or ``Matrix``;
- ``Seq``, ``Chain`` and ``Text`` (see latex_objects) for lists, chains of relations and words.
"""

from __future__ import annotations

import re

import sympy
from sympy import Rational

from rewards.latex_objects import (RELATIONS, Chain, Decimals, ParseError, Seq, Text, as_set, combine, divide,
                                   evaluated_sum, is_fraction_of_integers, is_integer_literal, plus_minus, relation,
                                   safe_binomial, safe_factorial, safe_pow)

MAX_COMMAND_DEPTH = 50
MAX_TOKENS = 2000  # 80 square roots or 60 quadratics take under 1,000; longer answers are not compared

# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(r"""
    (?P<num>\d+(?:\.\d*)?|\.\d+)
  | (?P<cmd>\\[a-zA-Z]+|\\[{}|,;%\\])
  | (?P<word>[a-zA-Z])
  | (?P<op>\*\*|[-+*/^_!=<>(),\[\]{}|;:'&])
  | (?P<ws>\s+)
""", re.X)

SET_OPERATIONS = {"\\cup": sympy.Union, "\\cap": sympy.Intersection, "\\setminus": sympy.Complement,
                  "\\backslash": sympy.Complement}
FUNCTIONS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot,
             "sec": sympy.sec, "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos,
             "arctan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
             "exp": sympy.exp, "ln": sympy.log, "log": sympy.log, "det": None}
FUNCTION_NAMES_LONGEST_FIRST = sorted(FUNCTIONS, key=len, reverse=True)
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
         "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau",
         "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda",
         "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"}
_MULTIPLY = {"*", "\\cdot", "\\times", "\\ast"}
_DIVIDE = {"/", "\\div", ":"}  # a ratio a:b is the number a/b
_CLOSERS = {")", "]", "}", "\\}", "&", "\\cr", ",", ";", "|", "=", "<", ">", "\\le", "\\ge",
            "\\ne", "\\cup", "\\cap", "\\setminus", "\\backslash", "+", "-", "\\pm", "\\mp", "\\end", "^", "_", "!", ":",
            "\\rightarrow", "\\in"} | _MULTIPLY | _DIVIDE


def tokenize(s: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None:
            raise ParseError(f"unexpected character {s[pos]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup, m.group()))
    # fold letter runs that spell a function name (sin, log...) into one word token
    folded, i = [], 0
    while i < len(tokens):
        for name in FUNCTION_NAMES_LONGEST_FIRST:
            run = tokens[i:i + len(name)]
            if len(run) == len(name) and all(k == "word" for k, _ in run) and "".join(v for _, v in run) == name:
                folded.append(("cmd", "\\" + name))
                i += len(name)
                break
        else:
            folded.append(tokens[i])
            i += 1
    return folded


# ---------------------------------------------------------------- parser


class Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        if len(self.tokens) > MAX_TOKENS:
            raise ParseError(f"an answer of over {MAX_TOKENS} tokens")
        self.pos = 0
        self.abs_depth = 0
        self.command_depth = 0
        self.decimals = Decimals()  # the decimal numbers written, for how closely they must match

    # -- token helpers
    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.tokens[i][1] if i < len(self.tokens) else None

    def kind(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ParseError(f"expected {expected or 'more input'}, got {token!r}")
        self.pos += 1
        return token

    def accept(self, token: str) -> bool:
        if self.peek() == token:
            self.pos += 1
            return True
        return False

    # -- grammar
    def parse(self):
        result = self.answer(stop=(None,))
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()!r}")
        return result

    def answer(self, stop: tuple):
        """Comma list of set expressions, up to a token in ``stop``."""
        items = [self.set_expr()]
        while self.peek() in (",", ";") and self.peek() not in stop:
            self.take()
            items.append(self.set_expr())
        if len(items) == 1:
            return items[0]
        # '\pm 1, \pm 2' lists four values: a plus-minus item spreads into the list
        return Seq(tuple(leaf for item in items for leaf in pm_values(item)), "", "")

    def set_expr(self):
        left = self.relation()
        while self.peek() in SET_OPERATIONS:
            op = self.take()
            right = self.relation()
            left = SET_OPERATIONS[op](as_set(left), as_set(right))
        return left

    def relation(self):
        if self.kind() == "word" and self.peek(1) == "\\in":
            self.pos += 2  # 'x \in S' states the set S
            return self.set_expr()
        operands, ops = [self.expr()], []
        while self.peek() in RELATIONS:
            ops.append(self.take())
            operands.append(self.expr())
        if not ops:
            return operands[0]
        if len(ops) == 1:
            return relation(ops[0], operands[0], operands[1])
        return Chain(tuple(operands), tuple(ops))

    def expr(self):
        if self.peek() in ("\\pm", "\\mp"):
            self.take()
            left = plus_minus(sympy.Integer(0), self.term())  # '\pm\sqrt2 \pm\sqrt3' goes on
        else:
            left = self.term()
        while self.peek() in ("+", "-", "\\pm", "\\mp"):
            op = self.take()
            right = self.term()
            if op in ("\\pm", "\\mp"):
                left = plus_minus(left, right)
            else:
                left = combine(left, right, lambda a, b: a + b if op == "+" else a - b)
        return left

    def term(self):
        left = self.unary()
        while True:
            token = self.peek()
            if token in _MULTIPLY:
                self.take()
                left = combine(left, self.unary(), lambda a, b: a * b)
            elif token in _DIVIDE:
                self.take()
                left = combine(left, self.unary(), divide)
            elif self.starts_atom():
                mixed = is_integer_literal(left) and self.peek() == "\\frac"
                right = self.power()
                if mixed and is_fraction_of_integers(right):  # 3\frac12 is 7/2, -1\frac12 is -3/2
                    left = combine(left, right, lambda a, b: a - b if a < 0 else a + b)
                else:
                    left = combine(left, right, lambda a, b: a * b)
            else:
                return left

    def starts_atom(self) -> bool:
        token = self.peek()
        if token is None or token in _CLOSERS:
            return False
        if token == "\\{":
            return False
        return self.kind() in ("num", "word", "cmd") or token in ("(", "[", "{")

    def unary(self):
        if self.accept("-"):
            return combine(self.unary(), None, lambda a, _: -a)
        if self.accept("+"):
            return self.unary()
        return self.power()

    def power(self):
        base = self.postfix(self.atom())
        if self.accept("^") or self.accept("**"):
            exponent = self.script()
            base = self.postfix(safe_pow(base, exponent))
        return base

    def script(self):
        """A superscript: a brace group, or a single (signed) atom."""
        if self.peek() == "{":
            return self.atom()
        if self.accept("-"):
            return -self.script()
        token = self.peek()
        if self.kind() == "num" and len(token) > 1 and "." not in token:
            self.take()  # x^23 in LaTeX means x^2 3; but answers write 2^10 meaning 2^{10}
            return sympy.Integer(token)
        return self.atom()

    def postfix(self, value):
        while True:
            if self.accept("!"):
                value = safe_factorial(value)
            elif self.peek() == "'":
                raise ParseError("primes are not supported")
            else:
                return value

    def group(self, opener: str, closer: str):
        self.take(opener)
        value = self.answer(stop=(closer,))
        self.take(closer)
        return value

    def atom(self):
        kind, token = (self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None))
        if token is None:
            raise ParseError("unexpected end")
        if kind == "num":
            self.take()
            if "." in token:
                self.decimals = self.decimals.merge(Decimals.of(token))
            return Rational(token.rstrip(".") or "0")
        if kind == "word":
            return self.symbol()
        if token == "{":
            return self.group("{", "}")
        if token in ("(", "["):
            return self.bracketed()
        if token == "\\{" and self.set_builder_ahead():
            self.take()
            while self.take() not in ("|", ":"):
                pass  # '\{x \mid ...\}', '\{x \in \mathbb{R} : ...\}': the condition is the set
            condition = self.set_expr()
            self.take("\\}")
            return condition
        if token == "\\{":
            inner = self.group("\\{", "\\}") if self.peek(1) != "\\}" else (self.take(), self.take(), None)[2]
            items = () if inner is None else (inner.items if isinstance(inner, Seq) and not inner.open else (inner,))
            return Seq(tuple(items), "{", "}")
        if token == "|":
            self.take()
            self.abs_depth += 1
            inner = self.expr()
            self.abs_depth -= 1
            self.take("|")
            return sympy.Abs(inner)
        if kind == "cmd":
            return self.command()
        raise ParseError(f"unexpected {token!r}")

    def set_builder_ahead(self) -> bool:
        """``\\{`` opens set-builder notation: a variable (maybe ``\\in`` a set) before ``|`` or ``:``."""
        if self.pos + 2 >= len(self.tokens) or self.tokens[self.pos + 1][0] != "word":
            return False
        if self.peek(2) in ("|", ":"):
            return True
        return self.peek(2) == "\\in" and any(t == ":" for _, t in self.tokens[self.pos + 3:self.pos + 12])

    def bracketed(self):
        opener = self.take()
        items = [self.set_expr()]
        while self.accept(",") or self.accept(";"):  # (0;-2;6) writes a triple with semicolons
            items.append(self.set_expr())
        closer = self.take()
        if closer not in (")", "]"):
            raise ParseError(f"unclosed {opener}")
        if len(items) == 1 and ((opener, closer) == ("(", ")") or isinstance(items[0], sympy.MatrixBase)):
            return items[0]
        return Seq(tuple(items), opener, closer)

    def symbol(self):
        name = self.take()
        if self.accept("_"):
            sub = self.take() if self.peek() != "{" else str(self.group("{", "}"))
            name = f"{name}_{sub}"
        if name == "e":
            return sympy.E
        if name == "i":
            return sympy.I
        return sympy.Symbol(name)

    def command(self):
        """A command and its arguments; commands nest at most ``MAX_COMMAND_DEPTH`` deep (a thousand
        nested square roots are no answer, and each level costs sympy a simplification)."""
        self.command_depth += 1
        try:
            if self.command_depth > MAX_COMMAND_DEPTH:
                raise ParseError(f"commands nested over {MAX_COMMAND_DEPTH} deep")
            return self.command_and_arguments()
        finally:
            self.command_depth -= 1

    def command_and_arguments(self):
        name = self.take()[1:]
        if name == "frac":
            num, den = self.argument(), self.argument()
            return combine(num, den, divide)
        if name == "sqrt":
            index = None
            if self.accept("["):
                index = self.expr()
                self.take("]")
            radicand = self.argument()
            if not isinstance(radicand, sympy.Expr) or (index is not None and not isinstance(index, sympy.Expr)):
                raise ParseError("root of a set or list")
            return sympy.sqrt(radicand) if index is None else sympy.root(radicand, index)
        if name == "binom":
            n, k = self.argument(), self.argument()
            return safe_binomial(n, k)
        if name == "pi":
            return sympy.pi
        if name in UNIT_VECTORS:
            return UNIT_VECTORS[name]
        if name == "infty":
            return sympy.oo
        if name == "Gamma" and self.peek() == "(":
            return sympy.gamma(self.bracketed())  # \Gamma(1001) is 1000!
        if name in GREEK:
            return sympy.Symbol(name)
        if name in FUNCTIONS:
            return self.function(name)
        if name == "begin":
            return self.matrix()
        if name in ("sum", "prod"):
            return self.big_operator(sympy.Sum if name == "sum" else sympy.Product)
        if name == "mathbb":
            letter = str(self.argument())
            return {"R": sympy.S.Reals, "Z": sympy.S.Integers, "N": sympy.S.Naturals,
                    "Q": sympy.S.Rationals, "C": sympy.S.Complexes}.get(letter, sympy.S.Reals)
        raise ParseError(f"unsupported command \\{name}")

    def argument(self):
        r"""A command argument: a brace group, or one token (``\frac 59`` = 5/9)."""
        if self.peek() == "{":
            return self.group("{", "}")
        if self.kind() == "num":
            token = self.take()
            if len(token) > 1 and "." not in token:  # \frac 59: one digit per argument
                self.tokens.insert(self.pos, ("num", token[1:]))
                token = token[0]
            return Rational(token)
        return self.atom()

    def function(self, name: str):
        base = None
        if name == "log" and self.accept("_"):
            base = self.argument()
        power = None
        if self.accept("^"):
            power = self.script()
        argument = self.argument() if self.peek() in ("{", "(") else self.power()
        if self.peek() == "(" and argument is None:
            argument = self.bracketed()
        fn = FUNCTIONS[name]
        if fn is None:
            raise ParseError(f"unsupported function \\{name}")  # \det of a name
        value = fn(argument) if base is None else sympy.log(argument, base)
        return value if power is None else value ** power

    def matrix(self):
        """``\\begin{pmatrix}...\\end{pmatrix}`` (any matrix or array); ``cases`` is a list."""
        env = self.raw_group()
        if env == "array" and self.peek() == "{":
            self.raw_group()  # the column spec, e.g. {cc}
        start = self.pos
        while self.peek() not in (None, "\\end"):
            self.pos += 1
        end = self.pos
        self.take("\\end")
        self.raw_group()
        rows, row, cell = [], [], []
        for kind, token in self.tokens[start:end] + [("cmd", "\\cr")]:
            if token in ("&", "\\cr"):
                if cell:
                    inner = Parser.from_tokens(cell)
                    row.append(inner.parse())
                    self.decimals = self.decimals.merge(inner.decimals)
                cell = []
                if token == "\\cr" and row:
                    rows.append(row)
                    row = []
            else:
                cell.append((kind, token))
        if env == "cases":
            return Seq(tuple(r[0] for r in rows), "", "")  # a system: its equations, in any order
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError(f"ragged matrix in {env}")
        if any(not isinstance(v, sympy.Expr) for r in rows for v in r):
            raise ParseError("a matrix entry that is no expression")
        return sympy.ImmutableMatrix(rows)

    def raw_group(self) -> str:
        """The tokens of a brace group as text, unparsed (environment names, column specs)."""
        self.take("{")
        parts = []
        while self.peek() not in (None, "}"):
            parts.append(self.take())
        self.take("}")
        return "".join(parts)

    def big_operator(self, kind):
        r"""``\sum_{k=0}^{n-1} body``: the body is the product that follows."""
        if not self.accept("_"):
            raise ParseError("a sum needs its range")
        lower = self.argument()
        upper = self.script() if self.accept("^") else None
        if not isinstance(lower, sympy.Eq) or not isinstance(lower.lhs, sympy.Symbol) or upper is None:
            raise ParseError("a sum needs 'k=a' below and a bound above")
        body = self.term()
        if not isinstance(body, sympy.Expr) or not isinstance(upper, sympy.Expr):
            raise ParseError("sum of a list")
        return evaluated_sum(kind, body, lower.lhs, lower.rhs, upper)

    @classmethod
    def from_tokens(cls, tokens):
        parser = cls("")
        parser.tokens = list(tokens)
        return parser


UNIT_VECTORS = {f"unitvector{axis}": sympy.Symbol(f"unitvector_{axis}") for axis in "ijk"}


def as_vector(value):
    r"""``3\mathbf{i} - \mathbf{j} + 2\mathbf{k}`` as the column vector (3, -1, 2); anything else as it is."""
    units = list(UNIT_VECTORS.values())
    if not isinstance(value, sympy.Expr) or not value.free_symbols & set(units):
        return value
    expanded = sympy.expand(value)
    coefficients = [expanded.coeff(unit) for unit in units]
    if sympy.expand(expanded - sum(c * u for c, u in zip(coefficients, units))) != 0 or any(
            c.free_symbols & set(units) for c in coefficients):
        raise ParseError("a sum of unit vectors and something else")
    return sympy.ImmutableMatrix([[c] for c in coefficients])


def pm_values(item) -> tuple:
    """The values a list item stands for: both of a plus-minus pair (at any depth), else itself."""
    if isinstance(item, Seq) and item.open == "pm":
        return tuple(leaf for inner in item.items for leaf in pm_values(inner))
    return (item,)


def parse_answer(text: str):
    """Parse a normalised answer; returns (object, Decimals written). Raises ParseError."""
    text = stated_part(text)
    if re.fullmatch(r"[A-Za-z][A-Za-z ]+[A-Za-z]", text) and not set(text.split()) & set(FUNCTIONS):
        return Text(text.lower()), Decimals()
    try:
        parser = Parser(text)
        return as_vector(parser.parse()), parser.decimals
    except ParseError:
        equals = top_level_equals(text)
        if not equals or "," in re.sub(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}", "", text):
            raise  # a list ('a = 1, b = \gcd'): no one value it names
        parser = Parser(text[equals[-1] + 1:])  # '\gcd(252, 198) = 18', '\det A = 1': the value it names
        return as_vector(parser.parse()), parser.decimals


def stated_part(text: str) -> str:
    r"""The exact value an answer states: the last link of a chain of equalities, the exact side
    of an approximation.

    >>> stated_part(r"x = 5+5+1 = 1/3 \approx 0.33"), stated_part(r"x \approx 11"), stated_part("a=1, b=2")
    ('1/3', '11', 'a=1, b=2')
    """
    if "\\approx" in text:
        left, right = text.split("\\approx")[:2]
        text = right if re.fullmatch(r"\s*(?:[A-Za-z](?:_\w+)?\s*=?)?\s*", left) else left
    equals = top_level_equals(text)
    if len(equals) >= 2 and "," not in text and ";" not in text and "\\begin" not in text:
        text = text[equals[-1] + 1:]
    return text.strip()


def top_level_equals(text: str) -> list[int]:
    """Positions of '=' outside every brace group (not the k=0 of a sum's range)."""
    positions, depth = [], 0
    for i, ch in enumerate(text):
        depth += (ch == "{") - (ch == "}")
        if ch == "=" and depth == 0:
            positions.append(i)
    return positions
