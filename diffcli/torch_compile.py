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

The function is pure torch and has no data-dependent Python control flow, so
``torch.func`` transforms (grad, hessian, jvp, vmap) compose over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import reduce

import torch

from diffcli.expr import CHAINS, Node, fold_chain

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


class _Evaluation:
    """One evaluation of the tree with one set of variable tensors."""

    def __init__(self, env: dict[str, Tensor], constants: dict[Node, Tensor], exponents: dict[Node, float]):
        self.env = env
        self.constants = constants
        self.exponents = exponents  # constant exponents to pass as Python numbers (forward mode)
        self.memo: dict[Node, Tensor] = {}

    def value(self, node: Node) -> Tensor:
        found = self.memo.get(node)
        if found is None:
            found = self.memo[node] = self._compute(node)
        return found

    def _compute(self, node: Node) -> Tensor:
        if node.op == "var":
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
        if node.op == "Pow" and node.args[1] in self.exponents:
            return torch.pow(self.value(node.args[0]), self.exponents[node.args[1]])
        return TORCH[node.op](*(self.value(a) for a in node.args))

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
        return _Evaluation(env, self.constants, self.exponents)


class Compiled:
    """The compiled expression: call it on a tensor (..., n) (the last axis holds the
    variables, in order) to get the value (...) and the values of the named
    sub-expressions ``aux`` (computed in the same pass, so a sub-expression shared
    with the main expression costs nothing extra)."""

    def __init__(
        self, node: Node, names: list[str], constants: dict[Node, Tensor], aux: dict[str, Node],
        exponents: dict[Node, float] | None = None,
    ):  # fmt: skip
        self.node, self.names, self.constants, self.aux = node, names, constants, aux
        self.exponents = exponents or {}

    def __call__(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.of_columns([x[..., i] for i in range(len(self.names))])

    def of_columns(self, columns: Sequence[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The same on one tensor per variable: contiguous columns are faster in eager mode
        and let torch.compile vectorise, and each can be its own autograd leaf."""
        env = dict(zip(self.names, columns, strict=True))
        evaluation = _Evaluation(env, self.constants, self.exponents)
        return evaluation.value(self.node), {name: evaluation.value(tree) for name, tree in self.aux.items()}

    def for_forward_mode(self, dual: Callable[[Tensor], Tensor]) -> Compiled:
        """The same function for torch's forward mode: every floating-point constant made
        a dual number with a zero tangent by ``dual`` (mixing plain and dual operands
        sends torch down a slow path that imports torch._dynamo, about 0.7 s). Constant
        exponents stay Python numbers (a dual exponent would add log(base) * 0 = NaN to
        the tangent of x**2 at x < 0)."""
        constants = {n: dual(c) if c.is_floating_point() else c for n, c in self.constants.items()}
        return Compiled(self.node, self.names, constants, self.aux, self.exponents)


def _variable_free(roots: Sequence[Node]) -> dict[Node, bool]:
    """Whether each sub-tree of the roots is free of variables, each decided once."""
    free: dict[Node, bool] = {}

    def visit(n: Node) -> bool:
        if n not in free:
            free[n] = n.op != "var" and all([visit(a) for a in n.args])
        return free[n]

    for root in roots:
        visit(root)
    return free


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
    free = _variable_free(roots)  # every distinct sub-tree, once
    constants = {
        n: torch.tensor(_literal(n), dtype=torch.bool if n.op == "bool" else dtype, device=device)
        for n in free
        if n.op in ("num", "const", "bool")
    }
    plain = _Evaluation({}, constants, {})
    # Sub-expressions without variables computed once, here: in forward mode each is then
    # one dual number with a zero tangent, where evaluating it from dual leaves gave
    # 0 * inf = NaN tangents (sqrt(Min(1e-320, 0)) is constant 0, but sqrt' is infinite there).
    for n in _largest_constant_subtrees(roots, free):
        constants[n] = plain.value(n)
    # Constant exponents as Python numbers: torch then takes its x*x, sqrt and
    # reciprocal fast paths (exact or correctly rounded), and torch.compile can
    # specialise them instead of calling a general vector pow.
    exponents = {n.args[1]: plain.value(n.args[1]).item() for n in free if n.op == "Pow" and free[n.args[1]]}
    return Compiled(node, list(variables), constants, aux, exponents)
