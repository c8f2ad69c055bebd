"""The checked expression tree that both backends compile from.

The parser produces these nodes from the user's text; the SymPy backend
(:mod:`diffcli.symbolic`) and the torch backend (:mod:`diffcli.torch_compile`)
each turn them into their own objects. Keeping one neutral tree, rather than
compiling torch code from SymPy objects, means torch computes the expression
exactly as typed (SymPy rewrites ``x*sqrt(x)`` into ``x**(3/2)`` as it builds
it, which changes what autodiff does at 0).

Nodes compare and hash by structure (not by position), so equal
sub-expressions are computed once by both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

#: Operator node names; every other ``op`` is a function from the language.
COMPARISONS = {"Lt": "<", "Le": "<=", "Gt": ">", "Ge": ">=", "Eq": "==", "Ne": "!="}
LOGIC = ("And", "Or", "Not")
LEAVES = ("num", "var", "const", "bool")
#: Flat chains of one precedence level: operator character -> the binary node it stands for.
CHAINS = {"Sum": {"+": "Add", "-": "Sub"}, "Product": {"*": "Mul", "/": "Div"}}


@dataclass(frozen=True)
class Node:
    """One node: ``op`` names what it is, ``args`` are its operands.

    Leaves carry ``text``: the literal for ``num`` (as typed, exact), the
    name for ``var`` and ``const``, ``True``/``False`` for ``bool``. ``If``
    has args (value, condition, otherwise) and ``Piecewise`` alternates
    value and condition. ``Sum`` is a chain of three or more terms joined by
    ``+`` and ``-`` (``text`` holds the operators, one per term after the first),
    ``Product`` one of factors joined by ``*`` and ``/``: one flat node instead of
    one level per operand, so a long series or product stays within the nesting
    limit, and every backend still folds it left to right, as typed.
    """

    op: str
    args: tuple[Node, ...] = ()
    text: str = ""
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)

    @property
    def is_condition(self) -> bool:
        return self.op in COMPARISONS or self.op in LOGIC or self.op == "bool"

    def walk(self) -> Iterator[Node]:
        yield self
        for arg in self.args:
            yield from arg.walk()

    def variables(self) -> set[str]:
        return {node.text for node in self.walk() if node.op == "var"}

    def __str__(self) -> str:
        return to_text(self)


# Binding strength, loosest first, as in Python's grammar.
_PRECEDENCE = {
    "If": 0,
    "Or": 1,
    "And": 2,
    "Not": 3,
    **dict.fromkeys(COMPARISONS, 4),
    "Add": 5,
    "Sub": 5,
    "Sum": 5,
    "Mul": 6,
    "Div": 6,
    "Product": 6,
    "Neg": 7,
    "Pow": 8,
}
_ATOM = 9
_INFIX = {
    "Add": " + ",
    "Sub": " - ",
    "Mul": "*",
    "Div": "/",
    "Pow": "**",
    "And": " and ",
    "Or": " or ",
    **{k: f" {v} " for k, v in COMPARISONS.items()},
}


def _precedence(node: Node) -> int:
    return _PRECEDENCE.get(node.op, _ATOM)


def _wrapped(node: Node, tighter_than: int) -> str:
    text = to_text(node)
    return f"({text})" if _precedence(node) <= tighter_than else text


def to_text(node: Node) -> str:
    """The expression as typed, in SymPy's syntax, with minimal parentheses."""
    op, args = node.op, node.args
    if op in LEAVES:
        return node.text
    if op == "Neg":
        return "-" + _wrapped(args[0], _PRECEDENCE["Neg"] - 1 if args[0].op != "Pow" else 0)
    if op == "Not":
        return "not " + _wrapped(args[0], _PRECEDENCE["Not"] - 1)
    if op == "If":
        value, cond, other = args
        return f"{_wrapped(value, 0)} if {_wrapped(cond, 0)} else {_wrapped(other, -1)}"
    if op == "Pow":
        base, exponent = args
        right = to_text(exponent) if _precedence(exponent) == _ATOM else f"({to_text(exponent)})"
        return f"{_wrapped(base, _PRECEDENCE['Pow'])}**{right}"
    if op in CHAINS:
        level = _PRECEDENCE[op]
        rest = [_INFIX[CHAINS[op][sign]] + _wrapped(t, level) for sign, t in zip(node.text, args[1:])]
        return _wrapped(args[0], level - 1) + "".join(rest)
    if op in _INFIX:
        level = _PRECEDENCE[op]
        left, right = args
        return _wrapped(left, level - 1) + _INFIX[op] + _wrapped(right, level)
    if op == "Vector":
        return f"[{', '.join(to_text(a) for a in args)}]"
    if op == "Piecewise":
        pairs = [f"({to_text(v)}, {to_text(c)})" for v, c in zip(args[::2], args[1::2])]
        return f"Piecewise({', '.join(pairs)})"
    return f"{op}({', '.join(to_text(a) for a in args)})"


def short_text(node: Node, width: int = 60) -> str:
    """The expression as typed, cut to ``width`` characters (for messages)."""
    text = to_text(node)
    return text if len(text) <= width else text[: width - 3] + "..."


def fold_chain(node: Node, operands: Sequence[T], table: Mapping[str, Callable[[T, T], T]]) -> T:
    """A ``Sum`` or ``Product`` node's value from its operands' values, left to right as
    typed; ``table`` maps the binary node names (``Add``, ``Sub``, ``Mul``, ``Div``) to functions."""
    result = operands[0]
    for sign, operand in zip(node.text, operands[1:], strict=True):
        result = table[CHAINS[node.op][sign]](result, operand)
    return result


def substitute(node: Node, bindings: dict[str, Node]) -> Node:
    """The tree with each variable named in ``bindings`` replaced by its tree."""
    if node.op == "var" and node.text in bindings:
        return bindings[node.text]
    if not node.args:
        return node
    return Node(node.op, tuple(substitute(a, bindings) for a in node.args), node.text, node.span)
