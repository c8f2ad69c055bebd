"""The reference side of a check: the symbolic formulas, and the true answer at every point.

Points given by hand (up to 16 ``--at`` points, a case's ``at``; every point
with ``--precise``) get the exact reference of :mod:`diffcli.exact`: the
derivative of the function as typed, to 30 digits, or the reason it does not
exist. Generated points (grids, samples, CSV tables) get SymPy's formulas
lambdified to float64 numpy, thousands of times faster and accurate to a few
ulps at smooth points of one piece; where float64 cannot be trusted (it
overflows, meets 0/0 or 0*inf, or a switch is at or near its boundary) those
points are recomputed exactly too, up to :data:`~diffcli.limits.EXACT_POINTS`
per check, and past that they are ``unknown``, never silently ``undefined``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from diffcli import exact, symbolic
from diffcli.commands import NONE, Extra
from diffcli.expr import short_text
from diffcli.limits import EXACT_POINTS
from diffcli.report import Reference, quantity_shape

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
    the Hessian is derived from the gradient's formulas and nothing twice, and an
    exact answer at a point is computed once for every check that asks for it.
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
        except symbolic.SympyError:  # SymPy fails on a constant of its own making: give it ours
            self.expr = self._frozen()
        self._answers: dict[tuple, exact.Answer] = {}  # exact answers, by (command, extra, point)
        self._vectorised: dict[tuple, Any] = {}  # lambdified once, reused for every chunk of points
        self._arrays: dict[Any, np.ndarray] = {}  # float64 values at the last points evaluated, per formula
        self._arrays_at: bytes = b""
        self._text: dict[Any, str] = {}  # printed once (a Hessian's mirrored entries are one formula)
        self._partials: dict[tuple[str, ...], Any] = {}  # diff's formulas, by the variables in order
        self._directional: dict[tuple, list] = {}  # taylor's: (t . grad)^k f, k = 0, 1, ..., by tangent

    def text(self, expr) -> str:
        if expr not in self._text:
            self._text[expr] = symbolic.formula_text(expr)
        return self._text[expr]

    def answer(self, command: str, extra: Extra, point: tuple[float, ...]) -> exact.Answer:
        key = (command, extra, point)
        if key not in self._answers:
            self._answers[key] = exact.answer(self.tree, self.variables, point, command, extra)
        return self._answers[key]

    def vectorised(self, exprs: list, points: np.ndarray) -> np.ndarray:
        """(len(exprs), P) float64 values; formulas already evaluated at these same points
        (by another check of the case) are not lambdified or evaluated again."""
        if not exprs or not points.shape[0]:
            return np.zeros((len(exprs), points.shape[0]))
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

    def screen(self, points: np.ndarray) -> symbolic.Screen:
        parts = [
            symbolic.screen_vectorised(self.tree, self.variables, points[i : i + CHUNK])
            for i in range(0, points.shape[0], CHUNK)
        ]
        reasons = [r for part in parts for r in part.reasons]
        offsets = np.cumsum([0] + [len(part.reasons) for part in parts])
        return symbolic.Screen(
            np.concatenate([p.undefined for p in parts]),
            np.concatenate([p.suspect for p in parts]),
            np.concatenate([np.where(p.reason >= 0, p.reason + k, -1) for p, k in zip(parts, offsets)]),
            reasons,
        )

    def _frozen(self) -> sympy.Basic:
        """The formula with every operation on constants replaced by its exact value."""
        return symbolic.to_sympy(self.tree, self.symbols, constant=_exact_constant)

    @cached_property
    def grad(self) -> list[sympy.Expr]:
        try:
            return symbolic.gradient(self.expr, self.ordered)
        except symbolic.SympyError:  # (SymPy evaluates constants as it differentiates: erfc(1e308))
            self.expr = self._frozen()
            return symbolic.gradient(self.expr, self.ordered)

    @cached_property
    def hessian(self) -> list[list[sympy.Expr]]:
        return symbolic.hessian(self.grad, self.ordered)

    def partial(self, wrt: tuple[str, ...]) -> sympy.Expr:
        """The partial derivative by the variables in order, from the gradient's formula
        (and each lower derivative of the sequence derived once across checks)."""
        if wrt not in self._partials:
            if len(wrt) == 1:
                self._partials[wrt] = self.grad[self.variables.index(wrt[0])]
            else:
                self._partials[wrt] = symbolic.derivative(self.partial(wrt[:-1]), self.symbols[wrt[-1]])
        return self._partials[wrt]

    def taylor(self, tangent: tuple[float, ...], order: int) -> list[sympy.Expr]:
        """c_k = (t . grad)^k f / k!, k = 0..order: the Taylor coefficients of f(p + s t) in s
        (each directional derivative derived once per tangent, for every check and chunk)."""
        derivatives = self._directional.setdefault(tangent, [self.expr])
        while len(derivatives) <= order:
            derivatives.append(symbolic.directional(symbolic.gradient(derivatives[-1], self.ordered), tangent))
        return [d / math.factorial(k) for k, d in enumerate(derivatives[: order + 1])]

    def quantity(self, command: str, extra: Extra = NONE) -> Any:
        """SymPy's formulas of the command, in its shape."""
        return SYMBOLIC[command].formulas(self, extra)


@dataclass(frozen=True)
class _Symbolic:
    """A command's SymPy formulas, and how they are evaluated in float64 at many points:
    ``via`` is the command whose formulas are evaluated, ``then`` what turns their values
    (P, *shape) into this command's (the JVP as grad . t: the gradient's values are shared
    with the grad check of the same case)."""

    formulas: Callable[[Formulas, Any], Any]
    via: str | None = None
    then: Callable[[np.ndarray, Any], np.ndarray] | None = None


def _dot_tangent(values: np.ndarray, extra: Extra) -> np.ndarray:
    with np.errstate(all="ignore"):
        return values @ np.asarray(extra.tangent, dtype=np.float64)


#: SymPy's side, per command.
SYMBOLIC = {
    "value": _Symbolic(lambda f, t: f.expr),
    "grad": _Symbolic(lambda f, t: f.grad),
    "hessian": _Symbolic(lambda f, t: f.hessian),
    "jvp": _Symbolic(lambda f, e: symbolic.directional(f.grad, e.tangent), via="grad", then=_dot_tangent),
    "diff": _Symbolic(lambda f, e: f.partial(e.wrt)),
    "taylor": _Symbolic(lambda f, e: f.taylor(e.tangent, e.order)),
}


def _exact_constant(tree: Node) -> sympy.Basic:
    """A constant sub-expression as a SymPy number of :data:`exact.DIGITS` digits (NaN if undefined)."""
    found = exact.answer(tree, (), (), "value")
    if found.unknown.any():
        raise symbolic.SympyError(f"cannot evaluate '{short_text(tree)}': {found.reason}")
    if not found.defined.all():
        return symbolic.sp.nan
    return symbolic.sp.Float(found.digits[0], exact.DIGITS)


@dataclass
class Budget:
    """How many generated points a check may still recompute exactly, and until when."""

    points: int = EXACT_POINTS
    seconds: float | None = None
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = math.inf if self.seconds is None else time.monotonic() + self.seconds

    def take(self) -> str | None:
        """None when one more point may be recomputed, else why not."""
        if self.points <= 0:
            return f"more than {EXACT_POINTS} points of this check need it"
        if time.monotonic() > self.deadline:
            return "out of time"
        self.points -= 1
        return None


def _fill_exact(ref: Reference, i: int, formulas: Formulas, command: str, point, extra) -> None:
    found = formulas.answer(command, extra, tuple(map(float, point)))
    ref.values[i], ref.defined[i], ref.unknown[i] = found.values, found.defined, found.unknown
    ref.reasons[i], ref.exact[i] = found.reason or found.note, True


def _float64(formulas: Formulas, command: str, points: np.ndarray, extra) -> np.ndarray:
    """(P, *shape) SymPy's formulas in float64 (see :class:`_Symbolic`)."""
    rule = SYMBOLIC[command]
    evaluated = rule.via or command
    shape = quantity_shape(evaluated, len(formulas.variables), 0, extra)
    leaves = _flatten(formulas.quantity(evaluated, extra))
    values = formulas.vectorised(leaves, points).T.reshape(points.shape[0], *shape).copy()
    return values if rule.then is None else rule.then(values, extra)


def compute(
    formulas: Formulas, command: str, points: np.ndarray, extra: Extra = NONE, exact_rows: int = 0,
    budget: Budget | None = None,
) -> Reference:  # fmt: skip
    """The reference at every point: the first ``exact_rows`` exactly, the rest in float64
    where it can be trusted and exactly where it cannot (see the module's docstring)."""
    budget = budget or Budget()
    shape = quantity_shape(command, len(formulas.variables), 0, extra)
    ref = Reference.empty(_map(formulas.text, formulas.quantity(command, extra)), points.shape[0], shape)
    for i in range(min(exact_rows, points.shape[0])):
        _fill_exact(ref, i, formulas, command, points[i], extra)
    generated = points[exact_rows:]
    if not generated.shape[0]:
        return ref
    rows = np.arange(exact_rows, points.shape[0])
    values = _float64(formulas, command, generated, extra)
    screen = formulas.screen(generated)
    finite = np.isfinite(values).reshape(len(rows), -1).all(axis=1)
    trusted = finite & ~screen.suspect & ~screen.undefined
    ref.values[rows[trusted]] = values[trusted]
    ref.defined[rows[trusted]] = True
    certain = rows[screen.undefined]
    ref.reasons[certain] = [screen.reasons[k] for k in screen.reason[screen.undefined]]
    recompute(ref, rows[~trusted & ~screen.undefined], formulas, command, points, extra, budget)
    return ref


def recompute(ref: Reference, rows, formulas: Formulas, command: str, points: np.ndarray, extra, budget: Budget):
    """Rows ``rows`` get the exact reference while the budget lasts; the rest are unknown."""
    for i in rows:
        why = budget.take()
        if why is not None:
            ref.unknown[i], ref.defined[i], ref.values[i] = True, False, math.nan
            ref.reasons[i] = f"float64 cannot be trusted here and the point was not recomputed to 30 digits: {why}" \
                " (--precise recomputes every point)"  # fmt: skip
            continue
        _fill_exact(ref, i, formulas, command, points[i], extra)


def exactly(formulas: Formulas, command: str, points: np.ndarray, extra, budget: Budget) -> Reference:
    """The exact reference at points whose float64 verdict is a mismatch, while the budget
    lasts (``exact`` marks those done; the others keep their float64 verdict)."""
    shape = quantity_shape(command, len(formulas.variables), 0, extra)
    ref = Reference.empty(None, points.shape[0], shape)
    for i in range(points.shape[0]):
        if budget.take() is not None:
            break
        _fill_exact(ref, i, formulas, command, points[i], extra)
    return ref


#: Formulas longer than this (as text) are not typeset: MathML of a long formula is
#: many times its size, and nobody reads it; the report shows the text instead.
MATHML_CHARS = 3_000


def typeset(formulas: Formulas, command: str, extra: Extra = NONE, limit: int | None = None) -> dict[str, Any]:
    """MathML of the expression and of the command's formulas (in its shape; None for a
    formula that is too long or that SymPy cannot print), for an HTML report. Each distinct
    formula is typeset once (a Hessian's mirrored entries are one), and only the first
    ``limit`` distinct ones, in row-major order (the rest: None)."""
    done: dict[Any, str | None] = {}

    def one(expr) -> str | None:
        if expr not in done:
            wanted = limit is None or len(done) < limit
            done[expr] = symbolic.formula_mathml(expr) if wanted and len(formulas.text(expr)) <= MATHML_CHARS else None
        return done[expr]

    quantity = formulas.quantity(command, extra)
    return {"formulas": _map(one, quantity), "expression": symbolic.formula_mathml(formulas.expr)
            if len(formulas.text(formulas.expr)) <= MATHML_CHARS else None}  # fmt: skip
