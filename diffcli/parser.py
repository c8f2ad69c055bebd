"""Safe parsing of typed math into the checked tree of :mod:`diffcli.expr`.

User text never reaches ``eval``, ``sympify`` or ``parse_expr`` (all of which
run code). Instead: tokenise to apply calculator habits (``^`` is power,
``2x`` and ``(a)(b)`` multiply), parse with ``ast.parse(mode="eval")``, and
walk the tree against an allowlist, building :class:`~diffcli.expr.Node`s.
Anything outside the allowlist is a :class:`~diffcli.errors.ParseError`
pointing at the offending columns of the text as the user typed it.
"""

from __future__ import annotations

import ast
import functools
import io
import itertools
import keyword
import math
import tokenize
import unicodedata
import warnings
from dataclasses import dataclass
from fractions import Fraction

from diffcli.commands import MAX_OUTPUTS
from diffcli.errors import ParseError
from diffcli.expr import CHAINS, COMPARISONS, Node, fold_chain, substitute, work
from diffcli.language import CONSTANTS, DEFINITIONS, FUNCTIONS, LOOPS, canonical_function, suggest
from diffcli.limits import DEFAULT, Limits

_BINARY = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Pow", ast.Mod: "Mod"}
_COMPARE = {ast.Lt: "Lt", ast.LtE: "Le", ast.Gt: "Gt", ast.GtE: "Ge", ast.Eq: "Eq", ast.NotEq: "Ne"}
_DESCRIBE = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment (:=)",
    ast.List: "lists",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Starred: "starred arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


@dataclass(frozen=True)
class _Rewritten:
    """The text handed to ``ast.parse`` and, per character, its column in the original."""

    text: str
    columns: list[int]

    def original(self, index: int) -> int:
        if not self.columns:
            return 0
        return self.columns[min(max(index, 0), len(self.columns) - 1)] + (index >= len(self.columns))


def _is_operand_name(token: tokenize.TokenInfo) -> bool:
    return token.type == tokenize.NAME and not keyword.iskeyword(token.string)


def _multiplies(
    previous: tokenize.TokenInfo | None, current: tokenize.TokenInfo, spaced: bool, functions: set[str]
) -> bool:
    """Whether calculator habit puts an implicit ``*`` between two tokens: ``2x``,
    ``2(x)``, ``(a)(b)``, ``(a)b``, and an operand a space after another (``x sin(x)``,
    ``2 pi r``, ``k q1 q2``); a function name followed by ``(`` is a call (``sin (x)`` too).
    ``functions`` are the names that are functions here (not listed as variables)."""
    if previous is None:
        return False
    is_name, opens = _is_operand_name(current), current.string == "("
    if previous.type == tokenize.NUMBER or previous.string == ")":
        return is_name or opens
    if spaced and _is_operand_name(previous) and previous.string not in functions:
        return is_name or opens
    return False


def _refuse_juxtaposed(
    previous: tokenize.TokenInfo, current: tokenize.TokenInfo, functions: set[str], source: str, origin: list[int]
) -> None:
    """Operands side by side that no habit reads: ``sin x`` (write sin(x)), ``x 2``, ``2 3``."""
    if current.type not in (tokenize.NUMBER, tokenize.NAME) or keyword.iskeyword(current.string):
        return
    start, end = origin[previous.start[1]], origin[current.end[1] - 1] + 1
    if _is_operand_name(previous) and previous.string in functions:
        message = f"write {previous.string}({current.string}) with parentheses: a function's argument is in (...)"
        raise ParseError(message, source, start, end)
    ends_operand = previous.type == tokenize.NUMBER or previous.string == ")" or _is_operand_name(previous)
    if current.type == tokenize.NUMBER and ends_operand:
        product = f"{'(...)' if previous.string == ')' else previous.string}*{current.string}"
        message = f"a number cannot follow '{previous.string}' here: write {product} to multiply"
        raise ParseError(message, source, start, end)


def _tokens(text: str, source: str, origin: list[int]) -> list[tokenize.TokenInfo]:
    try:
        return [
            t
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        # Python's own parser words bracket problems best ("'(' was never closed").
        try:
            _python_parse(text)
        except SyntaxError as exc:
            raise _syntax_error(exc, source, origin) from None
        raise ParseError("cannot read this expression", source, 0) from None


#: Operators as typeset in papers, web pages and word processors, read as typed in Python.
_TYPESET = {
    **dict.fromkeys("−–‑", "-"),  # minus sign, en dash, non-breaking hyphen
    **dict.fromkeys("×·⋅∗", "*"),
    **dict.fromkeys("÷∕", "/"),
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
}
#: Superscript exponents: x² is x**2, x⁻¹ is x**-1.
_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-"))
#: Subscript digits belong to names: x₁ is x1.
_SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
#: Vulgar fractions are numbers: ½x is x/2.
_FRACTIONS = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅙": "1/6", "⅛": "1/8"}
#: Characters that end an operand (what a following operand multiplies).
_ENDS_OPERAND = set("_.)") | set(_SUPERSCRIPTS)


def _ends_operand(ch: str | None) -> bool:
    return ch is not None and (ch.isalnum() or ch in _ENDS_OPERAND)


def _typeset(source: str) -> tuple[str, list[int]]:
    """The text with typeset operators, superscript exponents and subscript digits, vulgar
    fractions, π, √ and |x| in Python's spelling, and for each of its characters the column
    it came from."""
    out: list[str] = []
    origin: list[int] = []
    bars: list[tuple[str, int]] = []  # open brackets and bars, innermost last
    last: str | None = None  # the last character written that is not a space

    def put(piece: str, i: int) -> None:
        nonlocal last
        out.append(piece)
        origin.extend([i] * len(piece))
        if piece.strip():
            last = piece.rstrip()[-1]

    for i, ch in enumerate(source):
        if ch in _SUPERSCRIPTS:
            if not (i and source[i - 1] in _SUPERSCRIPTS):  # a run of them is one exponent
                _refuse_power_of_a_function(source, i)
                put("**", i)
            put(_SUPERSCRIPTS[ch], i)
        elif ch in _SUBSCRIPTS:
            start = i
            while start and (source[start - 1].isalnum() or source[start - 1] in {"_", *_SUBSCRIPTS}):
                start -= 1
            if start == i or not (source[start].isalpha() or source[start] == "_"):
                raise ParseError("a subscript digit belongs to a name (x₁); write numbers with plain digits", source, i)
            put(_SUBSCRIPTS[ch], i)
        elif ch in _FRACTIONS:
            if last is not None and last.isdigit() and out and out[-1] == last:
                message = f"write a mixed number as a sum or a fraction (2 + {_FRACTIONS[ch]}, not 2{ch})"
                raise ParseError(message, source, i - 1, i + 1)
            put((" " if _ends_operand(last) else "") + f"({_FRACTIONS[ch]})", i)
        elif ch == "π":  # a constant, never part of a name: 2πr is 2*π*r
            put((" " if _ends_operand(last) else "") + "π ", i)
        elif ch == "√":  # √(...) only: how far √x² reaches is a question of typesetting
            if not source[i + 1 :].lstrip().startswith("("):
                raise ParseError("write √(...) with parentheses, or sqrt(...)", source, i)
            put(" sqrt" if _ends_operand(last) else "sqrt", i)  # x√(y) is x*sqrt(y)
        elif ch == "|":
            if bars and bars[-1][0] == "|" and _ends_operand(last):
                bars.pop()
                put(")", i)
            else:  # an opening bar: at the start, after an operator or bracket, or after a closed operand
                bars.append(("|", i))
                put(" Abs(" if _ends_operand(last) else "Abs(", i)
        elif ch in "([{":
            bars.append((ch, i))
            put(ch, i)
        elif ch in ")]}":
            if bars and bars[-1][0] == "|":
                raise ParseError(f"'|' is not closed before '{ch}'", source, bars[-1][1], i + 1)
            if bars:
                bars.pop()
            put(ch, i)
        else:
            typed_next_to = out and out[-1] == "*" and (ch in _TYPESET or source[origin[-1]] in _TYPESET)
            if typed_next_to and _TYPESET.get(ch, ch) == "*":  # x×*y would read as the power x**y
                raise ParseError(f"'{source[origin[-1]]}{ch}' is not an operator", source, origin[-1], i + 1)
            put(_TYPESET.get(ch, ch), i)
    unclosed = [at for kind, at in bars if kind == "|"]
    if unclosed:
        raise ParseError("'|' is not closed: |x| is the absolute value of x", source, unclosed[-1])
    return "".join(out), origin


def _refuse_power_of_a_function(source: str, at: int) -> None:
    """sin²(x) means sin(x)² in print, but would read as sin**2 * (x)."""
    name_start = at
    while name_start and (source[name_start - 1].isalnum() or source[name_start - 1] == "_"):
        name_start -= 1
    name = source[name_start:at]
    if name and canonical_function(name):
        exponent = "".join(itertools.takewhile(lambda c: c in _SUPERSCRIPTS, source[at:]))
        if source[at + len(exponent) :].lstrip().startswith("("):
            message = f"write {name}(...){exponent} for the power of {name}'s value"
            raise ParseError(message, source, name_start, at + len(exponent))


def _python_parse(text: str) -> ast.Expression:
    with warnings.catch_warnings():  # "invalid decimal literal" and the like: not for the user's terminal
        warnings.simplefilter("ignore")
        return ast.parse(text, mode="eval")


def _syntax_error(exc: SyntaxError, source: str, columns: list[int]) -> ParseError:
    """Python's syntax error, moved to the user's columns (offset 0 means 'at the end')."""
    if not exc.offset:
        return ParseError("the expression ends too early", source, len(source))
    index = exc.offset - 1
    column = columns[index] if index < len(columns) else len(source)
    return ParseError(f"syntax error: {exc.msg}", source, column)


def _rewrite(source: str, limits: Limits = DEFAULT, variables: frozenset[str] = frozenset()) -> _Rewritten:
    """Apply the calculator habits, remembering where every character came from."""
    text, origin = _typeset(source)
    functions = {t.string for t in _tokens(text, source, origin) if canonical_function(t.string)} - variables
    out: list[str] = []
    columns: list[int] = []

    def emit(piece: str, index: int) -> None:
        out.append(piece)
        columns.extend([origin[index]] * len(piece))

    previous = None
    position = 0
    for token in _tokens(text, source, origin):
        start, end = token.start[1], token.end[1]
        digits = sum(c.isdigit() for c in token.string)
        if token.type == tokenize.NUMBER and digits > limits.max_literal_digits:
            message = f"a number with {digits} digits (limit {limits.max_literal_digits})"
            raise ParseError(message, source, origin[start], origin[end - 1] + 1)
        for i in range(position, start):
            emit(text[i], i)
        spaced = previous is not None and previous.end[1] < start
        if _multiplies(previous, token, spaced, functions):
            emit("*", start)
        elif previous is not None and previous.end[1] <= start:
            _refuse_juxtaposed(previous, token, functions, source, origin)
        if token.type == tokenize.OP and token.string == "^":
            emit("**", start)
        else:
            for i in range(start, end):
                emit(text[i], i)
        position, previous = end, token
    return _Rewritten("".join(out), columns)


def describe_character(ch: str) -> str:
    """``U+0445 CYRILLIC SMALL LETTER HA``: how a message names a character."""
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'control character')}"


def _screen(source: str) -> None:
    """Control and invisible characters (NUL, zero-width, bidi overrides) are refused wherever they appear."""
    for i, ch in enumerate(source):
        if (ch.isascii() and ch.isprintable()) or ch == "\t":
            continue
        if unicodedata.category(ch)[0] in "CZ":
            raise ParseError(f"invisible or control character {describe_character(ch)} is not allowed", source, i)


def check_name(name: str) -> str | None:
    """Why a (NFKC-normalised) name is refused, or None: names are ASCII letters, digits
    and _, or Greek letters, so that look-alikes (Cyrillic 'х' for 'x') cannot hide."""
    for ch in name:
        if not ((ch.isascii() and (ch.isalnum() or ch == "_")) or unicodedata.name(ch, "").startswith("GREEK")):
            allowed = "names use ASCII letters, digits, _ and Greek letters"
            return f"the name '{name}' contains {describe_character(ch)}; {allowed}"
    return None


_CHAIN_OPS = {ast.Add: ("Sum", "+"), ast.Sub: ("Sum", "-"), ast.Mult: ("Product", "*"), ast.Div: ("Product", "/")}


def _chain(node: ast.AST) -> str | None:
    """Which flat chain a binary operation belongs to (Sum, Product), if any."""
    return _CHAIN_OPS.get(type(node.op), (None,))[0] if isinstance(node, ast.BinOp) else None


def _check_size(tree: ast.AST, source: str, limits: Limits) -> None:
    """Node count and nesting depth, without recursion (the builder recurses next).
    A chain of + and - (or of * and /) is one level: the builder makes it one flat node."""
    count, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.max_nodes:
            raise ParseError(f"the expression has more than {limits.max_nodes} syntax nodes", source, 0, len(source))
        if depth > limits.max_depth:
            raise ParseError(f"the expression is nested more than {limits.max_depth} levels deep", source, 0)
        kind = _chain(node)
        for child in ast.iter_child_nodes(node):
            same_chain = kind is not None and child is node.left and _chain(child) == kind
            stack.append((child, depth if same_chain else depth + 1))


def _check_one_line(source: str) -> None:
    for i, ch in enumerate(source):
        if ch in "\n\r;":
            what = "';'" if ch == ";" else "a line break"
            raise ParseError(f"one expression only: found {what}", source, i)


class _Builder:
    """Walks Python's syntax tree against the allowlist, building Nodes."""

    def __init__(self, source: str, rewritten: _Rewritten, variables: frozenset[str], limits: Limits = DEFAULT):
        self.source = source
        self.rewritten = rewritten
        self.variables = variables
        self.limits = limits
        self._utf8 = rewritten.text.encode()
        self.scope: list[str] = []  # the names bound by the loops around the node being built
        self.bindings: list[tuple[str, ast.AST]] = []  # every bound name, where it is bound

    def span(self, node: ast.AST) -> tuple[int, int]:
        def column(byte_offset: int) -> int:
            return len(self._utf8[:byte_offset].decode(errors="ignore"))

        start = self.rewritten.original(column(node.col_offset))
        end = self.rewritten.original(column(node.end_col_offset or node.col_offset + 1) - 1) + 1
        return start, max(end, start + 1)

    def fail(self, message: str, node: ast.AST) -> ParseError:
        start, end = self.span(node)
        return ParseError(message, self.source, start, end)

    def number(self, node: ast.expr) -> Node:
        if not isinstance(node.value, bool) and isinstance(node.value, (int, float)):
            text = ast.get_source_segment(self.rewritten.text, node) or repr(node.value)
            text = text.replace("_", "")
            if isinstance(node.value, int) and not text.isdigit():
                text = str(node.value)  # hex, octal, binary literals
            return Node("num", text=text, span=self.span(node))
        if isinstance(node.value, bool):
            return Node("bool", text=str(node.value), span=self.span(node))
        kind = {complex: "complex numbers", str: "strings", bytes: "bytes"}.get(type(node.value), "this constant")
        raise self.fail(f"{kind} are not allowed in an expression", node)

    def checked(self, name: str, node: ast.AST) -> str:
        problem = check_name(name)
        if problem:
            raise self.fail(problem, node)
        return name

    def name(self, node: ast.Name) -> Node:
        name = self.checked(node.id, node)
        if name in self.scope:
            return Node("bound", text=name, span=self.span(node))
        if name in self.variables:
            return Node("var", text=name, span=self.span(node))
        if name in CONSTANTS:
            return Node("const", text=CONSTANTS[name], span=self.span(node))
        if canonical_function(name):
            raise self.fail(
                f"'{name}' is a function: call it as {name}(...), or list it in --vars to use it as a variable", node
            )
        if name in ("True", "False", "None"):
            raise self.fail(f"'{name}' is not a number", node)
        return Node("var", text=name, span=self.span(node))

    def call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only named functions can be called", node.func)
        given = self.checked(node.func.id, node.func)
        name = canonical_function(given)
        if name is None:
            hint = suggest(given)
            if given in self.variables or hint is None:
                product = given in self.variables or len(given) <= 2
                detail = f"; to multiply, write {given}*(...)" if product else ""
                raise self.fail(f"'{given}' is not a known function{detail}", node.func)
            raise self.fail(f"unknown function '{given}' (did you mean '{hint}'?)", node.func)
        if node.keywords:
            raise self.fail(f"{given}() takes no keyword arguments", node.keywords[0].value)
        if name in LOOPS:
            return self.loop(node, name)
        if not FUNCTIONS[name].accepts(len(node.args)):
            raise self.fail(f"{given}() takes {FUNCTIONS[name].describe()}, got {len(node.args)}", node)
        if name == "Piecewise":
            return self.piecewise(node)
        return Node(name, tuple(self.real(arg) for arg in node.args), span=self.span(node))

    def loop(self, node: ast.Call, op: str) -> Node:
        """sum(f, k, a, b), prod(f, k, a, b), iterate(step, s, init, n): the name bound in the
        body only, the bounds integer constants, the work bounded (see :class:`Limits`)."""
        usage, limits = LOOPS[op].usage, self.limits
        if len(node.args) != 4:
            raise self.fail(f"{op}() takes 4 arguments, {usage}; got {len(node.args)}", node)
        body, name_ast, *rest = node.args
        name = self.bound_name(name_ast, op)
        if len(self.scope) >= limits.max_loop_depth:
            raise self.fail(f"loops are nested more than {limits.max_loop_depth} deep", node)
        if op == "iterate":
            init, steps_ast = rest
            steps = self.integer(steps_ast, op, "number of steps")
            if not 0 <= steps <= limits.max_steps:
                raise self.fail(f"iterate() takes 0 to {limits.max_steps:,} steps, not {steps:,}", steps_ast)
            trips, bounds = steps, (self.real(init), Node("num", text=str(steps), span=self.span(steps_ast)))
        else:
            first, last = (self.integer(a, op, what) for a, what in zip(rest, LOOPS[op].bounds))
            trips = last - first + 1
            if trips < 0:
                raise self.fail(f"the last index of {op}() ({last}) is below the first ({first})", rest[1])
            if trips > limits.max_terms:
                raise self.fail(f"{op}() of {trips:,} terms (limit {limits.max_terms:,})", node)
            bounds = tuple(Node("num", text=str(v), span=self.span(a)) for v, a in zip((first, last), rest))
        self.scope.append(name)
        try:
            built = self.real(body)
        finally:
            self.scope.pop()
        return Node(op, (built, *bounds), text=name, span=self.span(node))

    def bound_name(self, node: ast.AST, op: str) -> str:
        """The name a loop binds: a new name, not a variable, function, constant or an
        enclosing loop's name."""
        what = "index" if op != "iterate" else "state"
        if not isinstance(node, ast.Name):
            raise self.fail(f"the second argument of {op}() is the name of its {what}, {LOOPS[op].usage}", node)
        name = self.checked(node.id, node)
        clash = (
            "a variable" if name in self.variables else
            "a function" if canonical_function(name) else
            "a constant" if name in CONSTANTS or name in ("True", "False", "None") else
            "the name of a loop around it" if name in self.scope else None
        )  # fmt: skip
        if clash:
            raise self.fail(f"the {what} of {op}() cannot be named '{name}': that is {clash}", node)
        self.bindings.append((name, node))
        return name

    def integer(self, node: ast.AST, op: str, what: str) -> int:
        """A loop's bound: an integer constant (arithmetic on numbers, such as 2^3)."""
        value = _exact(self.real(node), self.limits)
        if value is None or value.denominator != 1:
            shown = f", not {value}" if value is not None else ", such as 10 or 2^3"
            raise self.fail(f"the {what} of {op}() must be an integer constant{shown}", node)
        if abs(value) > 2**53:  # an index is a float64 in torch and numpy: exact up to 2**53
            raise self.fail(f"the {what} of {op}() must be at most 2^53 in size", node)
        return int(value)

    def check_bindings(self, tree: Node) -> None:
        """A name bound by a loop is not also a variable of the function elsewhere, and the
        loops' work is within the limit."""
        used = tree.variables()
        for name, where in self.bindings:
            if name in used:
                message = f"'{name}' is bound by a loop here and is a variable elsewhere: use another name for one"
                raise self.fail(message, where)
        problem = check_loops(tree, self.limits)
        if problem:
            message, heaviest = problem
            raise ParseError(message, self.source, *heaviest.span)

    def piecewise(self, node: ast.Call) -> Node:
        args: list[Node] = []
        for pair in node.args:
            if not (isinstance(pair, ast.Tuple) and len(pair.elts) == 2):
                raise self.fail("Piecewise takes (value, condition) pairs", pair)
            args += [self.real(pair.elts[0]), self.condition(pair.elts[1])]
        return Node("Piecewise", tuple(args), span=self.span(node))

    def compare(self, node: ast.Compare) -> Node:
        parts: list[Node] = []
        left = self.real(node.left)
        for op, right_ast in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise self.fail("only <, <=, >, >=, == and != compare numbers", node)
            right = self.real(right_ast)
            parts.append(Node(_COMPARE[type(op)], (left, right), span=self.span(node)))
            left = right
        result = parts[0]
        for part in parts[1:]:  # a < b < c means a < b and b < c
            result = Node("And", (result, part), span=self.span(node))
        return result

    def build(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if _chain(node) is not None and _chain(node.left) == _chain(node):
            return self.chain(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op = _BINARY[type(node.op)]
            return Node(op, (self.real(node.left), self.real(node.right)), span=self.span(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return Node("Neg", (self.real(node.operand),), span=self.span(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            return self.real(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Node("Not", (self.condition(node.operand),), span=self.span(node))
        if isinstance(node, ast.BoolOp):
            op = "And" if isinstance(node.op, ast.And) else "Or"
            result = self.condition(node.values[0])
            for value in node.values[1:]:
                result = Node(op, (result, self.condition(value)), span=self.span(node))
            return result
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            args = (self.real(node.body), self.condition(node.test), self.real(node.orelse))
            return Node("If", args, span=self.span(node))
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Tuple):
            raise self.fail("a tuple is only allowed as a (value, condition) pair inside Piecewise", node)
        if isinstance(node, ast.List):
            raise self.fail("a vector [f1, f2, ...] is only allowed as the whole expression", node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            raise self.fail("this operator is not allowed; use + - * / ** ^ %", node)
        raise self.fail(f"{_DESCRIBE.get(type(node), type(node).__name__)} not allowed in an expression", node)

    def chain(self, node: ast.BinOp) -> Node:
        """a + b - c + ... (or a * b / c ...): one Sum (Product) node, built without
        recursing down the chain."""
        kind, operands, signs, top = _chain(node), [], [], node
        while _chain(node) == kind:
            operands.append(node.right)
            signs.append(_CHAIN_OPS[type(node.op)][1])
            node = node.left
        operands.append(node)
        built = tuple(self.real(t) for t in reversed(operands))
        return Node(kind, built, "".join(reversed(signs)), span=self.span(top))

    def vector(self, node: ast.List) -> Node:
        if not node.elts:
            raise self.fail("an empty vector: give its components, [f1, f2, ...]", node)
        if len(node.elts) > MAX_OUTPUTS:
            raise self.fail(f"a vector of {len(node.elts)} components (limit {MAX_OUTPUTS})", node)
        return Node("Vector", tuple(self.real(e) for e in node.elts), span=self.span(node))

    def real(self, node: ast.AST) -> Node:
        built = self.build(node)
        if built.is_condition:
            raise self.fail("expected a number here, not a condition", node)
        return built

    def condition(self, node: ast.AST) -> Node:
        built = self.build(node)
        if not built.is_condition:
            raise self.fail("expected a condition here (a comparison, and/or/not, True or False)", node)
        return built


def check_loops(tree: Node, limits: Limits = DEFAULT) -> tuple[str, Node] | None:
    """Why a tree's loops are refused (and the heaviest loop), or None: a name bound by a
    loop that is also a variable (a ``let`` definition can bring one in), or more work
    per point than :attr:`Limits.max_work`. The work is counted, never enumerated, so
    loops nested a thousand deep in each other cost nothing to judge."""
    loops = [n for n in tree.walk() if n.is_loop]
    if not loops:
        return None
    clash = {n.text for n in loops} & tree.variables()
    if clash:
        name = sorted(clash)[0]
        bound = next(n for n in loops if n.text == name)
        return f"'{name}' is bound by a loop and is also a variable: use another name for one", bound
    total = work(tree)
    if total > limits.max_work:
        heaviest = max(loops, key=work)
        message = (f"the expression evaluates {total:,} nodes per point, a loop's body once per step "
                   f"(limit {limits.max_work:,}): fewer terms or steps, or a smaller body")  # fmt: skip
        return message, heaviest
    return None


def parse_expression(
    source: str,
    variables: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
    limits: Limits = DEFAULT,
    vector: bool = False,
) -> Node:
    """Parse one real-valued expression (with ``vector=True``, or a vector of them,
    ``[f1, f2, ...]``: a ``Vector`` node of the components).

    ``variables`` are names that must be read as variables even where the
    language has another meaning for them (``E``, ``pi``, ``gamma`` ...).
    Everything outside the allowlist, and anything past ``limits``, is a
    :class:`ParseError` pointing at the offending columns.
    """
    if len(source) > limits.max_length:
        message = f"the expression is {len(source):,} characters long (limit {limits.max_length:,}; --max-length)"
        raise ParseError(message, source[:60] + "...", 0, 60)
    source = source.strip()
    if not source:
        raise ParseError("the expression is empty", source, 0)
    _check_one_line(source)
    _screen(source)
    rewritten = _rewrite(source, limits, frozenset(variables))
    try:
        tree = _python_parse(rewritten.text)
    except SyntaxError as exc:
        raise _syntax_error(exc, source, rewritten.columns) from None
    except (RecursionError, MemoryError):
        raise ParseError("the expression is nested too deeply", source, 0) from None
    _check_size(tree, source, limits)
    builder = _Builder(source, rewritten, frozenset(variables), limits)
    result = builder.vector(tree.body) if vector and isinstance(tree.body, ast.List) else builder.real(tree.body)
    builder.check_bindings(result)
    _check_constants(result, source, limits)
    return result


_FRACTIONS_OPS = {"Add": Fraction.__add__, "Sub": Fraction.__sub__, "Mul": Fraction.__mul__,
                  "Div": Fraction.__truediv__}  # fmt: skip


def _exact(node: Node, limits: Limits) -> Fraction | None:
    """A constant of arithmetic on numbers, exactly; None for anything else (or a
    division by zero, or a power too large to be a loop's bound)."""
    op, args = node.op, node.args
    if op == "num":
        return Fraction(node.text)
    parts = [_exact(a, limits) for a in args]
    if not args or any(p is None for p in parts):
        return None
    try:
        if op == "Neg":
            return -parts[0]
        if op in CHAINS:
            return fold_chain(node, parts, _FRACTIONS_OPS)
        if op in _FRACTIONS_OPS:
            return _FRACTIONS_OPS[op](*parts)
        if op == "Pow" and parts[1].denominator == 1 and abs(parts[1]) <= 64:
            base = parts[0]
            if max(abs(base.numerator), base.denominator).bit_length() * abs(parts[1]) <= 64:
                return base ** int(parts[1])
    except ZeroDivisionError:
        return None
    return None


# How constant sub-expressions' magnitudes combine (log10 of an upper bound).
_BOUNDED = {"sin", "cos", "tanh", "atan", "asin", "acos", "atan2", "erf", "erfc", "sign", "Heaviside", "sinc",
            *COMPARISONS, "And", "Or", "Not"}  # fmt: skip
_EXPONENTIAL = {"exp", "sinh", "cosh", "expm1", "exp2"}
_FACTORIAL = {"gamma", "factorial"}


def _magnitude(node: Node, limits: Limits, source: str) -> float | None:
    """log10 of an upper bound on a constant sub-expression's size (None: not constant).

    SymPy computes constant integer arithmetic exactly, so ``2**10**7`` or
    ``gamma(10**20)`` would run for minutes or exhaust memory; this estimate
    refuses them at once, judging the size of the result, not each exponent.
    Sizes count both ways: 10**-5000 is as costly as 10**5000.
    """
    parts = [_magnitude(a, limits, source) for a in node.args]
    if node.op in ("var", "bound") or node.is_loop or any(p is None for p in parts):
        return None
    op = node.op
    if op == "num":
        value = abs(float(node.text))
        size = float(len(node.text)) if math.isinf(value) else abs(math.log10(value)) if value else 0.0
    elif op in ("const", "bool") or op in _BOUNDED:
        size = 1.0
    elif op == "Neg":
        size = parts[0]
    elif op in ("Mul", "Div", "Product"):
        size = sum(parts)
    elif op == "Pow":
        base, exponent = parts
        size = 10.0 ** min(exponent, 300) * max(base, 1.0)
    elif op in _EXPONENTIAL:
        size = 10.0 ** min(parts[0], 300) * 0.4343
    elif op in _FACTORIAL:
        size = 10.0 ** min(parts[0], 300) * max(parts[0], 1.0)
    elif op in ("log", "loggamma", "log10", "log2", "log1p"):
        size = math.log10(max(parts[0], 1.0) * 2.31) + 1.0
    elif op == "Sum":
        size = max(parts) + math.log10(len(parts))
    else:  # sums, roots, Abs, floor, Max, Mod, Piecewise ...: no bigger than the biggest part
        size = max(parts, default=1.0) + 0.5
    if size > limits.max_constant_digits:
        if size > 1e300:
            amount = "more than 10**300"
        else:  # 10**18 written out in full is no easier to read than 10**18
            amount = f"about {size:,.0f}" if size < 1e9 else f"about 10**{math.log10(size):.0f}"
        message = f"this constant has {amount} digits (limit {limits.max_constant_digits:,})"
        raise ParseError(message, source, *node.span)
    return size


def _check_constants(tree: Node, source: str, limits: Limits) -> None:
    _magnitude(tree, limits, source)


def parse_assignments(source: str) -> list[tuple[str | None, str, int]]:
    """Split ``x=1,y=pi/4`` (or positional ``1,2``) into (name, value text, column).

    Commas inside parentheses belong to the value (``y=atan2(1,2)``). The
    values are parsed later, by :func:`parse_expression`, so they may be any
    constant expression.
    """
    items, depth, start = [], 0, 0
    for i, ch in enumerate(source + ","):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth <= 0:
            items.append((source[start:i], start))
            start = i + 1
    result: list[tuple[str | None, str, int]] = []
    for text, column in items:
        name, sep, value = text.partition("=")
        if not sep:
            name, value = None, text
        elif value.startswith("=") or not unicodedata.normalize("NFKC", name.strip()).isidentifier():
            raise ParseError("expected name=value", source, column, column + len(text))
        else:
            name = unicodedata.normalize("NFKC", name.strip())
        if not value.strip():
            raise ParseError("missing value", source, column, column + max(len(text), 1))
        result.append((name, value, column + (len(text) - len(value))))
    return result


@functools.cache
def _definition(name: str) -> Node:
    return parse_expression(DEFINITIONS[name], ("a", "b"))


def definition(node: Node) -> Node:
    """A call of a function of :data:`DEFINITIONS` as its definition, of the same arguments."""
    return substitute(_definition(node.op), dict(zip("ab", node.args)))


def expand(tree: Node) -> Node:
    """The tree with every function of :data:`DEFINITIONS` replaced by its definition, for
    the references (SymPy and the exact one); torch computes those functions itself."""
    memo: dict[Node, Node] = {}

    def walk(node: Node) -> Node:
        if node not in memo:
            args = tuple(walk(a) for a in node.args)
            if node.op in DEFINITIONS:
                memo[node] = definition(Node(node.op, args))
            else:
                memo[node] = node if args == node.args else Node(node.op, args, node.text, node.span)
        return memo[node]

    return walk(tree) if any(n.op in DEFINITIONS for n in tree.walk()) else tree
