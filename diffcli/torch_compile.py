"""Compiles the checked tree into a torch function of one vector of variables.

Why not SymPy's torch printer (``lambdify(..., modules="torch")``)? It
leaves constants as Python floats, cannot differentiate Heaviside, and its
Piecewise (``torch.where``) leaks NaN gradients from the branch not taken. This
compiler works from the tree as typed, keeps every literal as a tensor of the
chosen dtype and device, computes each distinct sub-expression once, and
evaluates each Piecewise branch on inputs that are cut from the graph where the
branch is not taken, so the untaken branch contributes exactly zero to every
derivative (``torch.where``'s own backward selects rather than multiplies, so
the NaNs made inside the dead branch never reach the result).

Loops run as Python loops: each step evaluates the body with the index (or the
state) bound, and sub-expressions of the body that do not use it are computed
once, outside the loop. Autograd records every step, so the tape grows linearly
with the number of steps (:func:`diffcli.autodiff.points_per_chunk` takes fewer
points at a time to keep it bounded).

The function is pure torch and has no data-dependent Python control flow, so
``torch.func`` transforms (grad, hessian, jvp, vmap) compose over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce

import torch

from diffcli.expr import CHAINS, Node, fold_chain, free_names

Tensor = torch.Tensor


def _gamma(x: Tensor) -> Tensor:
    # torch has lgamma (log|Gamma|) but no gamma: restore the sign, which is
    # (-1)**floor(x) on the negative axis and +1 on the positive one.
    sign = torch.where(x > 0, torch.ones_like(x), 1 - 2 * torch.remainder(torch.floor(x), 2))
    return sign * torch.exp(torch.lgamma(x))


def _heaviside(x: Tensor, at_zero: Tensor | None = None) -> Tensor:
    # torch.heaviside has no derivative; this one has the right one (0).
    middle = torch.full_like(x, 0.5) if at_zero is None else at_zero.expand_as(x)
    return torch.where(x > 0, torch.ones_like(x), torch.where(x < 0, torch.zeros_like(x), middle))


def _log(x: Tensor, base: Tensor | None = None) -> Tensor:
    return torch.log(x) if base is None else torch.log(x) / torch.log(base)


def _cbrt(x: Tensor) -> Tensor:
    # The real cube root; torch has none, and pow(x, 1/3) is NaN for x < 0.
    return torch.sign(x) * torch.pow(torch.abs(x), 1.0 / 3.0)


#: Canonical name -> torch implementation. Every entry is differentiable to
#: second order by torch.func; notes give the edge cases that differ from
#: the naive mapping.
TORCH: dict[str, Callable[..., Tensor]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Pow": torch.pow,  # negative base with integral exponent is exact, as in SymPy
    "Neg": torch.neg,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "sec": lambda x: torch.reciprocal(torch.cos(x)),  # no torch.sec
    "csc": lambda x: torch.reciprocal(torch.sin(x)),
    "cot": lambda x: torch.cos(x) / torch.sin(x),  # not 1/tan: near pi/2 its Hessian cancels terms of 1e16
    "asin": torch.asin,
    "acos": torch.acos,
    "atan": torch.atan,
    "atan2": torch.atan2,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "asinh": torch.asinh,
    "acosh": torch.acosh,
    "atanh": torch.atanh,
    "exp": torch.exp,
    "log": _log,
    "sqrt": torch.sqrt,
    "cbrt": _cbrt,
    "root": lambda x, n: torch.pow(x, torch.reciprocal(n)),
    "Abs": torch.abs,  # derivative 0 at 0, as SymPy's sign(0)
    "sign": torch.sign,
    "floor": torch.floor,
    "ceiling": torch.ceil,  # derivative 0
    "Min": lambda *a: reduce(torch.minimum, a),  # gradient split 1/2 at a tie, as SymPy
    "Max": lambda *a: reduce(torch.maximum, a),
    "erf": torch.special.erf,
    "erfc": torch.special.erfc,
    "gamma": _gamma,
    "loggamma": torch.lgamma,  # lgamma is log|Gamma|: real where SymPy's is not
    "sinc": lambda x: torch.sinc(x / math.pi),  # torch.sinc is the normalised sin(pi x)/(pi x)
    "log10": torch.log10,
    "log2": torch.log2,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "exp2": torch.exp2,
    "factorial": lambda x: _gamma(x + 1),
    "hypot": torch.hypot,
    "Heaviside": _heaviside,
    "Mod": torch.remainder,  # sign of the divisor, as Python and SymPy
    "Lt": torch.lt,
    "Le": torch.le,
    "Gt": torch.gt,
    "Ge": torch.ge,
    "Eq": torch.eq,
    "Ne": torch.ne,
    "And": torch.logical_and,
    "Or": torch.logical_or,
    "Not": torch.logical_not,
}

_CONSTANTS = {"pi": math.pi, "E": math.e}


def _literal(node: Node) -> float | bool:
    if node.op == "num":
        return float(node.text)
    if node.op == "const":
        return _CONSTANTS[node.text]
    return node.text == "True"


@dataclass
class _Tree:
    """What every evaluation of one compiled tree shares."""

    constants: dict[Node, Tensor]
    exponents: dict[Node, float]  # constant exponents to pass as Python numbers (forward mode)
    like: Tensor  # a number of the dtype and device (a loop's index is made like it)
    lift: Callable[[Tensor], Tensor] | None = None  # forward mode: a constant as a dual number
    names: dict[Node, frozenset[str]] = field(default_factory=dict)  # free_names' memo
    indices: frozenset[str] = frozenset()  # the names loops bind as an index (sum, prod)


class _Evaluation:
    """One evaluation of the tree with one set of variable tensors; in a loop's step, one
    evaluation of its body with the loop's name bound (``parent`` evaluates everything
    that does not use the name, once for all steps)."""

    def __init__(
        self, env: dict[str, Tensor], tree: _Tree, parent: _Evaluation | None = None, own: str | None = None
    ):  # fmt: skip
        self.env = env
        self.tree = tree
        self.constants = tree.constants
        self.parent, self.own = parent, own
        self.memo: dict[Node, Tensor] = {}

    def value(self, node: Node) -> Tensor:
        if self.parent is not None and self.own not in free_names(node, self.tree.names):
            return self.parent.value(node)
        found = self.memo.get(node)
        if found is None:
            found = self.memo[node] = self._compute(node)
        return found

    def _compute(self, node: Node) -> Tensor:
        if node.op in ("var", "bound"):
            return self.env[node.text]
        if node in self.constants:
            return self.constants[node]
        if node.op == "If":
            value, cond, other = node.args
            return self._select([(value, cond), (other, None)])
        if node.op == "Piecewise":
            return self._select(list(zip(node.args[::2], node.args[1::2])))
        if node.op == "Vector":  # (m, ...): the components, broadcast to one shape
            return torch.stack(torch.broadcast_tensors(*(self.value(a) for a in node.args)))
        if node.op in CHAINS:
            return fold_chain(node, [self.value(a) for a in node.args], TORCH)
        if node.op == "Pow":
            exponent = self._number(node.args[1])
            if exponent is not None:
                return torch.pow(self.value(node.args[0]), exponent)
        if node.is_loop:
            return self._loop(node)
        return TORCH[node.op](*(self.value(a) for a in node.args))

    def _number(self, node: Node) -> float | None:
        """An exponent as a Python number where it is one: a constant, or one of loop
        indices only (x**k), so torch takes pow's scalar paths (a tensor exponent adds
        log(base) * 0 = NaN to forward mode's tangent where the base is negative)."""
        if node in self.tree.exponents:
            return self.tree.exponents[node]
        names = free_names(node, self.tree.names)
        if names and names <= self.tree.indices:  # (so no variable)
            return float(self.value(node).detach().item())
        return None

    def _index(self, k: int) -> Tensor:
        like = self.tree.like
        index = torch.tensor(float(k), dtype=like.dtype, device=like.device)
        return index if self.tree.lift is None else self.tree.lift(index)

    def _loop(self, node: Node) -> Tensor:
        """A sum or product of the body's values over the index, left to right, or the
        state after ``n`` steps."""
        body, name = node.args[0], node.text
        if node.op == "iterate":
            state = self.value(node.args[1])
            for _ in node.steps():
                state = _Evaluation({name: state}, self.tree, self, name).value(body)
            return state
        combine = torch.add if node.op == "sum" else torch.mul
        result: Tensor | None = None
        for k in node.steps():
            term = _Evaluation({name: self._index(k)}, self.tree, self, name).value(body)
            result = term if result is None else combine(result, term)
        if result is None:  # no terms
            result = self._index(0 if node.op == "sum" else 1)
        return result

    def _select(self, pieces: list[tuple[Node, Node | None]]) -> Tensor:
        """Piecewise: the first piece whose condition holds; NaN where none does."""
        remaining: Tensor | None = None  # where no earlier condition held (None: everywhere)
        chosen: list[tuple[Tensor, Tensor]] = []
        for value_node, cond_node in pieces:
            cond = None if cond_node is None else self.value(cond_node)
            take = remaining if cond is None else (cond if remaining is None else remaining & cond)
            if take is None:  # an unconditional first piece
                return self.value(value_node)
            chosen.append((take, self._masked(take).value(value_node)))
            if cond is None:
                break
            remaining = ~cond if remaining is None else remaining & ~cond
        result = torch.full_like(chosen[0][1], math.nan)
        for take, branch in reversed(chosen):
            result = torch.where(take, branch, result)
        return result

    def _masked(self, take: Tensor) -> _Evaluation:
        env = {name: torch.where(take, x, x.detach()) for name, x in self.env.items()}
        parent = None if self.parent is None else self.parent._masked(take)  # (in a loop: its inputs too)
        return _Evaluation(env, self.tree, parent, self.own)


class Compiled:
    """The compiled expression: call it on a tensor (..., n) (the last axis holds the
    variables, in order) to get the value (...) and the values of the named
    sub-expressions ``aux`` (computed in the same pass, so a sub-expression shared
    with the main expression costs nothing extra)."""

    def __init__(self, node: Node, names: list[str], tree: _Tree, aux: dict[str, Node]):
        self.node, self.names, self.tree, self.aux = node, names, tree, aux

    def __call__(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.of_columns([x[..., i] for i in range(len(self.names))])

    def of_columns(self, columns: Sequence[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The same on one tensor per variable: contiguous columns are faster in eager mode
        and let torch.compile vectorise, and each can be its own autograd leaf."""
        env = dict(zip(self.names, columns, strict=True))
        evaluation = _Evaluation(env, self.tree)
        return evaluation.value(self.node), {name: evaluation.value(tree) for name, tree in self.aux.items()}

    def for_forward_mode(self, dual: Callable[[Tensor], Tensor]) -> Compiled:
        """The same function for torch's forward mode: every floating-point constant made
        a dual number with a zero tangent by ``dual`` (mixing plain and dual operands
        sends torch down a slow path that imports torch._dynamo, about 0.7 s). Constant
        exponents stay Python numbers (a dual exponent would add log(base) * 0 = NaN to
        the tangent of x**2 at x < 0)."""
        constants = {n: dual(c) if c.is_floating_point() else c for n, c in self.tree.constants.items()}
        return Compiled(self.node, self.names, replace(self.tree, constants=constants, lift=dual), self.aux)


def _variable_free(roots: Sequence[Node], names: dict[Node, frozenset[str]]) -> dict[Node, bool]:
    """Whether each sub-tree of the roots is free of variables (and of the names loops
    around it bind), each decided once; ``names`` gets free_names' answers."""
    for root in roots:
        free_names(root, names)
    return {n: not used for n, used in names.items()}


def _largest_constant_subtrees(roots: Sequence[Node], free: dict[Node, bool]) -> list[Node]:
    """The largest variable-free sub-trees that are not leaves (those are constants already)."""
    found, stack = [], list(roots)
    while stack:
        n = stack.pop()
        if free[n]:
            if n.args:
                found.append(n)
        else:
            stack.extend(n.args)
    return found


def compile_torch(
    node: Node,
    variables: Sequence[str],
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    aux: Mapping[str, Node] | None = None,
) -> Compiled:
    """Compile a checked tree (and named sub-expressions) for torch; see :class:`Compiled`."""
    aux = dict(aux or {})
    roots = (node, *aux.values())
    names: dict[Node, frozenset[str]] = {}
    free = _variable_free(roots, names)  # every distinct sub-tree, once
    constants = {
        n: torch.tensor(_literal(n), dtype=torch.bool if n.op == "bool" else dtype, device=device)
        for n in free
        if n.op in ("num", "const", "bool")
    }
    like = torch.zeros((), dtype=dtype, device=device)
    indices = frozenset(n.text for n in free if n.op in ("sum", "prod"))
    tree = _Tree(constants, {}, like, names=names, indices=indices)
    plain = _Evaluation({}, tree)
    # Sub-expressions without variables computed once, here: in forward mode each is then
    # one dual number with a zero tangent, where evaluating it from dual leaves gave
    # 0 * inf = NaN tangents (sqrt(Min(1e-320, 0)) is constant 0, but sqrt' is infinite there).
    for n in _largest_constant_subtrees(roots, free):
        constants[n] = plain.value(n)
    # Constant exponents as Python numbers: torch then takes its x*x, sqrt and
    # reciprocal fast paths (exact or correctly rounded), and torch.compile can
    # specialise them instead of calling a general vector pow.
    tree.exponents.update({n.args[1]: plain.value(n.args[1]).item() for n in free if n.op == "Pow" and free[n.args[1]]})
    return Compiled(node, list(variables), tree, aux)
