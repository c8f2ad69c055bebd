"""The symbolic side of a check: formulas for the command, evaluated per point.

Where the function itself is undefined at a point, so is every derivative
there; and a second derivative is undefined where the first derivatives it
differentiates are (``cbrt(x)`` has no Hessian at x = 0, not even its
y-column, because its x-derivative is infinite there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from diffcli import symbolic

if TYPE_CHECKING:
    import sympy

    from diffcli.check import Request


@dataclass
class Reference:
    formulas: Any  # strings, in the quantity's shape
    values: list[np.ndarray]  # one array per point


@dataclass
class Formulas:
    symbols: dict[str, sympy.Symbol]
    expr: sympy.Expr
    grad: list[sympy.Expr] | None
    quantity: Any  # SymPy expressions in the quantity's shape


def _map(fn, nested):
    return [_map(fn, item) for item in nested] if isinstance(nested, list) else fn(nested)


def formulas(request: Request) -> Formulas:
    """The expression, its gradient (when the command needs it), and the command's quantity."""
    symbols = symbolic.symbols_for(request.variables)
    ordered = [symbols[v] for v in request.variables]
    expr = symbolic.to_sympy(request.tree, symbols)
    if request.command == "value":
        return Formulas(symbols, expr, None, expr)
    grad = symbolic.gradient(expr, ordered)
    if request.command == "grad":
        quantity = grad
    elif request.command == "hessian":
        quantity = symbolic.hessian(grad, ordered)
    else:
        quantity = symbolic.directional(grad, request.tangent)
    return Formulas(symbols, expr, grad, quantity)


def evaluate_point(f: Formulas, command: str, at: dict) -> np.ndarray:
    evaluate = partial(symbolic.evaluate, point=at)
    shape = np.shape(f.quantity) if isinstance(f.quantity, list) else ()
    if command != "value" and not math.isfinite(evaluate(f.expr)):
        return np.full(shape, math.nan)
    values = np.asarray(_map(evaluate, f.quantity), dtype=np.float64).reshape(shape)
    if command == "hessian":
        first = np.isfinite(np.asarray([evaluate(g) for g in f.grad], dtype=np.float64))
        values[~(first[:, None] & first[None, :])] = math.nan
    return values


def compute(request: Request) -> Reference:
    f = formulas(request)
    values = [
        evaluate_point(f, request.command, {f.symbols[v]: c for v, c in zip(request.variables, point)})
        for point in request.points
    ]
    return Reference(_map(symbolic.formula_text, f.quantity), values)
