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

from diffcli.language import LOOPS

T = TypeVar("T")

#: Operator node names; every other ``op`` is a function from the language.
COMPARISONS = {"Lt": "<", "Le": "<=", "Gt": ">", "Ge": ">=", "Eq": "==", "Ne": "!="}
LOGIC = ("And", "Or", "Not")
#: ``bound`` is a name a loop binds (its index or state): not a variable of the function.
LEAVES = ("num", "var", "const", "bool", "bound")
#: Flat chains of one precedence level: operator character -> the binary node it stands for.
CHAINS = {"Sum": {"+": "Add", "-": "Sub"}, "Product": {"*": "Mul", "/": "Div"}}


@dataclass(frozen=True)
class Node:
    """One node: ``op`` names what it is, ``args`` are its operands.

    Leaves carry ``text``: the literal for ``num`` (as typed, exact), the
    name for ``var`` and ``const``, ``True``/``False`` for ``bool``. ``If``
    has args (value, condition, otherwise) and ``Piecewise`` alternates
    value and condition. A loop (``sum``, ``prod``, ``iterate``: see
    :data:`~diffcli.language.LOOPS`) holds the name it binds in ``text`` and has
    args (body, first, last) for ``sum`` and ``prod`` and (step, init, steps) for
    ``iterate``, the bounds as integer ``num`` leaves; inside the body that name is
    a ``bound`` leaf. ``Sum`` is a chain of three or more terms joined by
    ``+`` and ``-`` (``text`` holds the operators, one per term after the first),
    ``Product`` one of factors joined by ``*`` and ``/``: one flat node instead of
    one level per operand, so a long series or product stays within the nesting
    limit, and every backend still folds it left to right, as typed.
    """

    op: str
    args: tuple[Node, ...] = ()
    text: str = ""
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    # The hash, computed once from the operands' (every backend memoises by node, and a
    # loop's body is looked up once per step): hashing would otherwise walk the subtree.
    _hash: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.op, self.args, self.text)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def is_condition(self) -> bool:
        return self.op in COMPARISONS or self.op in LOGIC or self.op == "bool"

    def walk(self) -> Iterator[Node]:
        yield self
        for arg in self.args:
            yield from arg.walk()

    def variables(self) -> set[str]:
        return {node.text for node in self.walk() if node.op == "var"}

    @property
    def is_loop(self) -> bool:
        return self.op in LOOPS

    def steps(self) -> range:
        """A loop's runs of its body: the index values of ``sum``/``prod``, 0..n-1 for ``iterate``."""
        if self.op == "iterate":
            return range(int(self.args[2].text))
        return range(int(self.args[1].text), int(self.args[2].text) + 1)

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
        a, b = args
        return _wrapped(a, level - 1) + _INFIX[op] + _wrapped(b, level)
    if op == "Vector":
        return f"[{', '.join(to_text(a) for a in args)}]"
    if op in LOOPS:
        body, *rest = (to_text(a) for a in args)
        return f"{op}({body}, {node.text}, {', '.join(rest)})"
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


def work(node: Node) -> int:
    """Nodes evaluated to compute the tree once, a loop's body counted once per step
    (the size of autodiff's tape, per point)."""
    if node.is_loop:
        return 1 + sum(work(a) for a in node.args[1:]) + len(node.steps()) * work(node.args[0])
    return 1 + sum(work(a) for a in node.args)


def free_names(node: Node, memo: dict[Node, frozenset[str]] | None = None) -> frozenset[str]:
    """The names a subtree uses without binding them: its variables and the loop names
    (index, state) bound outside it. A subtree without any is the same at every step of
    every loop around it. ``memo`` keeps the answers for the subtrees (pass one dict to
    ask about many nodes of one tree)."""
    memo = {} if memo is None else memo
    stack = [(node, False)]
    while stack:  # post-order without recursion (a loop body may be deep)
        n, ready = stack.pop()
        if n in memo:
            continue
        if not ready:
            stack.append((n, True))
            stack.extend((a, False) for a in n.args if a not in memo)
            continue
        if n.op in ("var", "bound"):
            memo[n] = frozenset((n.text,))
        else:
            names = frozenset().union(*(memo[a] for a in n.args))
            if n.op in LOOPS:  # the index (state) is bound in the body (step) only
                names = (memo[n.args[0]] - {n.text}).union(*(memo[a] for a in n.args[1:]))
            memo[n] = names
    return memo[node]


def substitute(node: Node, bindings: dict[str, Node]) -> Node:
    """The tree with each variable named in ``bindings`` replaced by its tree."""
    if node.op == "var" and node.text in bindings:
        return bindings[node.text]
    if not node.args:
        return node
    return Node(node.op, tuple(substitute(a, bindings) for a in node.args), node.text, node.span)
