"""The symbolic side of a check: formulas for the command, evaluated at every point.

Points given by hand (up to 16 ``--at`` points, a case's ``at``; every point
with ``--precise``) are evaluated exactly and rounded from 30 digits: those are
the awkward points people pick. Generated points (grids, samples, CSV tables)
are evaluated vectorised: the formulas lambdified to float64 numpy with common
sub-expression elimination, accurate to a few ulps for well-conditioned
formulas and thousands of times faster.

Where the function itself is undefined at a point, so is every derivative
there; and a second derivative is undefined where the first derivatives it
differentiates are (``cbrt(x)`` has no Hessian at x = 0, not even its
y-column, because its x-derivative is infinite there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from diffcli import symbolic
from diffcli.report import quantity_shape

if TYPE_CHECKING:
    import sympy

    from diffcli.expr import Node

#: Points per vectorised evaluation.
CHUNK = 1 << 16

#: From this many points on, formulas share common sub-expressions (SymPy's cse)
#: before they are lambdified: below, evaluating is cheaper than cse (a batch
#: case's ten points).
CSE_FROM = 4096


def _map(fn, nested):
    return [_map(fn, item) for item in nested] if isinstance(nested, list) else fn(nested)


def _flatten(nested) -> list:
    return [leaf for item in nested for leaf in _flatten(item)] if isinstance(nested, list) else [nested]


class Formulas:
    """The symbolic expression of one tree and its derivatives, each derived once.

    A batch runs several checks on one expression; they share this object, so
    the Hessian is derived from the gradient's formulas and nothing twice.
    """

    def __init__(self, tree: Node, variables: tuple[str, ...]):
        self.tree = tree
        self.variables = variables
        self.symbols = symbolic.symbols_for(variables)
        self.ordered = [self.symbols[v] for v in variables]
        try:
            self.expr = symbolic.to_sympy(tree, self.symbols)
        except (TypeError, ValueError):  # a constant condition on a non-real value: acosh(0.5) > 0
            self.expr = symbolic.sp.nan
        # 30-digit values already computed, by (formula, point): the checks of one case
        # share the value and gradient, and a Hessian's mirrored entries are one formula.
        self._values: dict[tuple[Any, tuple[float, ...]], float] = {}
        self._defined: dict[tuple[float, ...], bool] = {}
        self._vectorised: dict[tuple, Any] = {}  # lambdified once, reused for every chunk of points
        self._arrays: dict[Any, np.ndarray] = {}  # float64 values at the last points evaluated, per formula
        self._arrays_at: bytes = b""
        self._text: dict[Any, str] = {}  # printed once (a Hessian's mirrored entries are one formula)

    def text(self, expr) -> str:
        if expr not in self._text:
            self._text[expr] = symbolic.formula_text(expr)
        return self._text[expr]

    def evaluate(self, exprs: list, points: np.ndarray, precise: bool) -> np.ndarray:
        """(len(exprs), P) float64 values: exactly (rounded from 30 digits), or vectorised."""
        if not exprs or not points.shape[0]:
            return np.zeros((len(exprs), points.shape[0]))
        if not precise:
            return self._vectorised_values(exprs, points)
        rows = [tuple(map(float, p)) for p in points]
        out = np.empty((len(exprs), len(rows)))
        for i, expr in enumerate(exprs):
            for j, row in enumerate(rows):
                key = (expr, row)
                if key not in self._values:
                    self._values[key] = symbolic.evaluate(expr, dict(zip(self.ordered, row)))
                out[i, j] = self._values[key]
        return out

    def _vectorised_values(self, exprs: list, points: np.ndarray) -> np.ndarray:
        """Float64 values; formulas already evaluated at these same points (by another check
        of the case) are not lambdified or evaluated again."""
        at = points.tobytes()
        if at != self._arrays_at:
            self._arrays, self._arrays_at = {}, at
        todo = list(dict.fromkeys(e for e in exprs if e not in self._arrays))
        if todo:
            cse = points.shape[0] >= CSE_FROM
            key = (tuple(todo), cse)
            if key not in self._vectorised:
                self._vectorised[key] = symbolic.vectorised(todo, self.ordered, cse)
            fn = self._vectorised[key]
            # In chunks, so the temporaries of long formulas stay bounded.
            parts = [fn(points[i : i + CHUNK]) for i in range(0, points.shape[0], CHUNK)]
            self._arrays.update(zip(todo, np.concatenate(parts, axis=1)))
        return np.array([self._arrays[e] for e in exprs]).reshape(len(exprs), points.shape[0])

    def defined(self, points: np.ndarray, precise: bool) -> np.ndarray:
        """(P,) bool: where the expression as typed has a real value (see symbolic.defined_at)."""
        if precise:
            rows = [tuple(map(float, p)) for p in points]
            for row in rows:
                if row not in self._defined:
                    self._defined[row] = symbolic.defined_at(self.tree, dict(zip(self.variables, row)))
            return np.array([self._defined[row] for row in rows], dtype=bool)
        parts = [
            symbolic.defined_vectorised(self.tree, self.variables, points[i : i + CHUNK])
            for i in range(0, points.shape[0], CHUNK)
        ]
        return np.concatenate(parts) if parts else np.ones(0, dtype=bool)

    @cached_property
    def grad(self) -> list[sympy.Expr]:
        return symbolic.gradient(self.expr, self.ordered)

    @cached_property
    def hessian(self) -> list[list[sympy.Expr]]:
        return symbolic.hessian(self.grad, self.ordered)

    def quantity(self, command: str, tangent: tuple[float, ...] | None = None) -> Any:
        if command == "value":
            return self.expr
        if command == "grad":
            return self.grad
        if command == "hessian":
            return self.hessian
        return symbolic.directional(self.grad, tangent)


@dataclass
class Reference:
    formulas: Any  # strings, in the quantity's shape
    values: np.ndarray  # (P, *shape)


def _part(formulas: Formulas, command: str, points: np.ndarray, tangent, exact: bool) -> np.ndarray:
    """The quantity's values at some points, all exact or all float64 (P, *shape)."""
    quantity = formulas.quantity(command, tangent) if exact or command != "jvp" else formulas.grad
    shape = quantity_shape("grad" if command == "jvp" and not exact else command, len(formulas.variables))
    leaves = _flatten(quantity)
    needed = leaves + ([formulas.expr] if command != "value" else [])
    needed += formulas.grad if command == "hessian" else []
    evaluated = formulas.evaluate(needed, points, exact)
    values = evaluated[: len(leaves)].T.reshape(points.shape[0], *shape).copy()
    if command == "jvp" and not exact:  # float64 anyway: grad . t, with the gradient shared with grad's check
        values = values @ np.asarray(tangent, dtype=np.float64)
    # No value, and no derivative, where the expression as typed is undefined.
    values[~formulas.defined(points, exact)] = math.nan
    if command != "value":
        values[~np.isfinite(evaluated[len(leaves)])] = math.nan
    if command == "hessian":
        first = np.isfinite(evaluated[len(leaves) + 1 :].T)  # (P, n)
        values[~(first[:, :, None] & first[:, None, :])] = math.nan
    return values


def compute(formulas: Formulas, command: str, points: np.ndarray, tangent=None, exact_rows: int = 0) -> Reference:
    """The reference at every point: the first ``exact_rows`` to 30 digits, the rest in float64."""
    parts = [(points[:exact_rows], True), (points[exact_rows:], False)]
    values = np.concatenate([_part(formulas, command, rows, tangent, exact) for rows, exact in parts if len(rows)])
    return Reference(_map(formulas.text, formulas.quantity(command, tangent)), values)
