"""The symbolic side of a check: formulas for the command, evaluated per point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from diffcli import symbolic

if TYPE_CHECKING:
    from diffcli.check import Request


@dataclass
class Reference:
    formulas: Any  # strings, in the quantity's shape
    values: list[np.ndarray]  # one array per point


def _map(fn, nested):
    return [_map(fn, item) for item in nested] if isinstance(nested, list) else fn(nested)


def formulas(request: Request):
    """The SymPy expression of the expression itself and of the command's quantity."""
    symbols = symbolic.symbols_for(request.variables)
    ordered = [symbols[v] for v in request.variables]
    expr = symbolic.to_sympy(request.tree, symbols)
    if request.command == "value":
        return symbols, expr, expr
    grad = symbolic.gradient(expr, ordered)
    if request.command == "grad":
        return symbols, expr, grad
    if request.command == "hessian":
        return symbols, expr, symbolic.hessian(grad, ordered)
    return symbols, expr, symbolic.directional(grad, request.tangent)


def compute(request: Request) -> Reference:
    symbols, expr, quantity = formulas(request)
    values = []
    for point in request.points:
        at = {symbols[v]: c for v, c in zip(request.variables, point)}
        value = symbolic.evaluate(expr, at)
        if request.command != "value" and not math.isfinite(value):
            # No derivative where the function itself is undefined.
            values.append(np.full(np.shape(quantity), math.nan))
        else:
            values.append(np.asarray(_map(partial(symbolic.evaluate, point=at), quantity), dtype=np.float64))
    return Reference(_map(symbolic.formula_text, quantity), values)
