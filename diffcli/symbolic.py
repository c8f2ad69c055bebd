"""The symbolic side: SymPy's derivative formulas, and their float64 evaluation at many points.

SymPy objects are built directly from the checked tree (never from text) and
derivatives come from ``sympy.diff`` (never ``simplify``, which can hang).
The formulas are what the reports show beside autodiff's answers, and,
lambdified to numpy, the reference at generated points wherever float64 can
be trusted there (:func:`screen_vectorised` says where it cannot: those
points get the exact reference of :mod:`diffcli.exact`, as hand-given ones do).

SymPy leaves the derivatives of floor, ceiling and Mod unevaluated; the
subclasses below give them the derivative autodiff approximates: zero away
from the jumps and undefined (NaN) on them, where the exact reference decides.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import keyword
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np
import sympy as sp
from sympy.core.parameters import evaluate as sympy_evaluate
from sympy.printing.numpy import NumPyPrinter

from diffcli.errors import DiffcliError
from diffcli.expr import CHAINS, COMPARISONS, LEAVES, Node, fold_chain, free_names, short_text
from diffcli.parser import expand


class DiracComb(sp.Function):
    """The derivative of floor(u): 0 where u is not an integer, undefined where it is.

    ``DiracComb(u, k)`` is its k-th derivative, with the same support.
    """

    nargs = (1, 2)

    @classmethod
    def eval(cls, u, k=None):
        if u.is_number:
            offset = (u - sp.floor(u)).is_zero
            if offset is False:
                return sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        order = self.args[1] + 1 if len(self.args) > 1 else sp.S.One
        return DiracComb(self.args[0], order)


class floor(sp.floor):  # noqa: N801 - keeps SymPy's name in printed formulas
    def fdiff(self, argindex=1):
        return DiracComb(self.args[0])


class ceiling(sp.ceiling):  # noqa: N801
    def fdiff(self, argindex=1):
        return DiracComb(self.args[0])


class Abs(sp.Abs):
    """|u| for real u, even where SymPy cannot prove u real (log(2 + cos(x)))."""

    def _eval_derivative(self, x):
        u = self.args[0]
        return sp.diff(u, x) * sign(u)


class sign(sp.sign):  # noqa: N801
    """sign(u) for real u: derivative 0, undefined at 0 (a Dirac delta)."""

    def _eval_derivative(self, x):
        u = self.args[0]
        return 2 * sp.diff(u, x) * sp.DiracDelta(u)


class cbrt(sp.Function):  # noqa: N801
    """The real cube root (SymPy's cbrt is the principal, complex one for u < 0)."""

    @classmethod
    def eval(cls, u):
        if u.is_number and u.is_extended_real is not False:
            return sign(u) * Abs(u) ** sp.Rational(1, 3)
        return None

    def fdiff(self, argindex=1):
        return 1 / (3 * cbrt(self.args[0]) ** 2)


class Step(sp.Function):
    """The derivative of Max/Min with respect to one argument: 1 where that argument
    alone is the extremum, 0 where another is, undefined at a tie (a kink; SymPy's
    own answer there, Heaviside(0) = 1/2, is only a convention)."""

    @classmethod
    def eval(cls, u):
        if u.is_extended_positive:
            return sp.S.One
        if u.is_extended_negative:
            return sp.S.Zero
        if u.is_zero:
            return sp.nan
        return None

    def fdiff(self, argindex=1):
        return sp.DiracDelta(self.args[0])


class _Extremum(sp.Function):
    """Max/Min kept as typed (SymPy's classes cannot be subclassed safely), with
    values from SymPy's and derivatives through :class:`Step`."""

    sympy_class: type = sp.Max

    @classmethod
    def eval(cls, *args):
        result = cls.sympy_class(*args)
        return None if isinstance(result, cls.sympy_class) else result

    def fdiff(self, argindex=1):
        args = self.args
        this, others = args[argindex - 1], args[: argindex - 1] + args[argindex:]
        rest = others[0] if len(others) == 1 else type(self)(*others)
        return Step(this - rest if self.sympy_class is sp.Max else rest - this)


class Max(_Extremum):
    sympy_class = sp.Max


class Min(_Extremum):
    sympy_class = sp.Min


class Mod(sp.Mod):
    """Mod(a, m) = a - m*floor(a/m), differentiated away from its jumps."""

    @classmethod
    def eval(cls, a, m):
        if m.is_zero:  # SymPy raises ZeroDivisionError; torch gives NaN: undefined, like 1/0
            return sp.nan
        return super().eval(a, m)

    def fdiff(self, argindex=1):
        a, m = self.args
        if argindex == 1:
            return 1 - DiracComb(a / m)
        return -floor(a / m) + (a / m) * DiracComb(a / m)


def _log(x, base=None):
    return sp.log(x) if base is None else sp.log(x, base)


def _piecewise(*args):
    return sp.Piecewise(*zip(args[::2], args[1::2]))


#: Canonical name -> SymPy constructor. Notes beside entries where SymPy's
#: semantics need care; see also the torch table in diffcli.torch_compile.
SYMPY: dict[str, Callable[..., sp.Basic]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mul": operator.mul,
    "Div": operator.truediv,  # Integer/Integer stays an exact Rational
    "Pow": operator.pow,
    "Neg": operator.neg,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "sec": sp.sec,
    "csc": sp.csc,
    "cot": sp.cot,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "atan2": sp.atan2,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "asinh": sp.asinh,
    "acosh": sp.acosh,
    "atanh": sp.atanh,
    "exp": sp.exp,
    "log": _log,
    "sqrt": sp.sqrt,
    "cbrt": cbrt,  # real; sp.cbrt is the principal (complex) root
    "root": sp.root,  # principal root: undefined for x < 0
    "Abs": Abs,  # real-only derivative: sign(u) u'
    "sign": sign,  # derivative 2*DiracDelta(u) u'
    "floor": floor,
    "ceiling": ceiling,
    "Min": Min,
    "Max": Max,  # derivative Heaviside(x - y): undefined at a tie
    "erf": sp.erf,
    "erfc": sp.erfc,
    "gamma": sp.gamma,
    "loggamma": sp.loggamma,  # complex for most x < 0, so undefined there
    "sinc": sp.sinc,  # sin(x)/x; its derivative formula is 0/0 at x = 0 (undefined)
    "Heaviside": sp.Heaviside,  # H(0) = 1/2 unless given; derivative DiracDelta
    "Mod": Mod,
    "Lt": sp.Lt,
    "Le": sp.Le,
    "Gt": sp.Gt,
    "Ge": sp.Ge,
    "Eq": sp.Eq,
    "Ne": sp.Ne,
    "And": sp.And,
    "Or": sp.Or,
    "Not": sp.Not,
    "If": lambda value, cond, other: sp.Piecewise((value, cond), (other, True)),
    "Piecewise": _piecewise,
}

_CONSTANTS = {"pi": sp.pi, "E": sp.E}


def symbols_for(names: Sequence[str]) -> dict[str, sp.Symbol]:
    """Real symbols, made directly so that no name clashes with SymPy's (I, E, S, N...)."""
    return {name: sp.Symbol(name, real=True) for name in names}


def number(text: str) -> sp.Rational:
    """A literal's exact value: 0.1 is 1/10, not the nearest double."""
    return sp.Integer(text) if text.isdigit() else sp.Rational(text)


def _leaf(n: Node, symbols: Mapping[str, sp.Basic]) -> sp.Basic:
    if n.op == "num":
        return number(n.text)
    if n.op in ("var", "bound"):
        return symbols[n.text]
    if n.op == "const":
        return _CONSTANTS[n.text]
    return sp.true if n.text == "True" else sp.false


def _apply(node: Node, args: list) -> sp.Basic:
    """A node's operation on its operands' SymPy values (a chain's operands combined at
    once: folding them pairwise rebuilds the growing Add or Mul at every step)."""
    if node.op == "Sum":
        return sp.Add(*(a if sign == "+" else -a for sign, a in zip("+" + node.text, args, strict=True)))
    if node.op == "Product":
        return sp.Mul(*(a if sign == "*" else 1 / a for sign, a in zip("*" + node.text, args, strict=True)))
    return SYMPY[node.op](*args)


class SympyError(DiffcliError):
    """SymPy failed inside itself on a formula we gave it (an input error, but one that
    :func:`to_sympy`'s ``constant`` fallback can often avoid)."""


def _constant_safe(node: Node, args: list) -> sp.Basic:
    """:func:`_apply`, except that an operation on an undefined constant is NaN: SymPy
    refuses some (``1 if log(0) > 0 else 2`` and ``Max(log(0), x)`` compare zoo) and leaves
    others unevaluated (``Heaviside(zoo)``, which no numpy printer can print). That
    sub-expression is undefined, and the NaN keeps it so where it counts, and only there
    (not in a Piecewise branch not taken)."""
    try:
        result = _apply(node, args)
    except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        # AttributeError: SymPy's cache re-raising a TypeError of exp(asin(sin(10**308)))
        if any(_undefined_constant(a) for a in args):
            return sp.nan
        if node.variables():  # SymPy fails inside its own simplification of the formula
            message = f"SymPy cannot build the formula of '{short_text(node)}' (its {type(exc).__name__})"
        else:  # a finite constant SymPy cannot handle: "undefined" would be a lie
            message = f"SymPy cannot evaluate '{node}' (its {type(exc).__name__})"
        raise SympyError(message) from None
    if isinstance(result, sp.AccumBounds):  # sin(oo): "somewhere in [-1, 1]", no value
        return sp.nan
    if isinstance(result, sp.Function) and any(a in _NOT_FINITE for a in result.args):
        return sp.nan
    return result


_NOT_FINITE = (sp.zoo, sp.nan, sp.oo, -sp.oo)


def _undefined_constant(value) -> bool:
    """Infinite, NaN or non-real (asin(E) is complex): no real value, so undefined."""
    if not isinstance(value, sp.Basic):
        return False
    if value.has(*_NOT_FINITE):
        return True
    try:  # (SymPy's assumptions evaluate numbers too, and mpmath fails on erfc(1e308))
        if not value.is_number or value.is_extended_real is not None:
            return value.is_extended_real is False
        return complex(sp.N(value, 15)).imag != 0  # SymPy cannot tell ((-1)**exp(-1)): ask its numeric value
    except (TypeError, ValueError, ArithmeticError, KeyError):
        return False


def to_sympy(
    node: Node,
    symbols: Mapping[str, sp.Symbol],
    typed: bool = False,
    constant: Callable[[Node], sp.Basic] | None = None,
) -> sp.Basic:
    """The SymPy expression for a tree: SymPy's evaluated, canonical form, or with
    ``typed=True`` the structure as typed (``x/x`` stays a quotient, so numpy
    evaluates it to NaN at 0, as torch does). ``constant``, if given, gives the value of
    every operation on constants (its 30 digits, computed elsewhere), so that SymPy never
    evaluates one: its own evaluation fails on a few (``tanh(erfc(1e308))``)."""
    node = expand(node)
    memo: dict[Node, sp.Basic] = {}
    names: dict[Node, frozenset[str]] = {}

    def build(n: Node) -> sp.Basic:
        if n not in memo:
            if n.op in LEAVES:
                memo[n] = _leaf(n, symbols)
            elif constant is not None and not free_names(n, names) and not n.is_condition:
                memo[n] = constant(n)
            elif n.is_loop:  # a function of the names it uses (see diffcli.loops)
                from diffcli.loops import loop_function

                used = tuple(sorted(free_names(n, names)))
                indices = tuple(bool(symbols[name].is_integer) for name in used)
                memo[n] = loop_function(n, used, indices)(*(symbols[name] for name in used))
            else:
                memo[n] = _constant_safe(n, [build(a) for a in n.args])
        return memo[n]

    if typed:
        with sympy_evaluate(False):
            return build(node)
    return build(node)


def derivative(expr: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
    """sympy.diff, whose failures inside SymPy (it evaluates numbers as it simplifies, and
    mpmath fails on erfc(1e308); a NaN compared) are a clear input error, not a crash."""
    try:
        return sp.diff(expr, symbol)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise SympyError(f"SymPy cannot differentiate this expression in {symbol} (its {type(exc).__name__})") \
            from None  # fmt: skip


def gradient(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> list[sp.Expr]:
    return [derivative(expr, s) for s in symbols]


def hessian(grad: Sequence[sp.Expr], symbols: Sequence[sp.Symbol]) -> list[list[sp.Expr]]:
    """Second derivatives from the gradient's formulas, each pair derived once."""
    n = len(symbols)
    rows: list[list[sp.Expr]] = [[sp.S.Zero] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            rows[i][j] = rows[j][i] = derivative(grad[i], symbols[j])
    return rows


def directional(grad: Sequence[sp.Expr], tangent: Sequence[float]) -> sp.Expr:
    """grad . tangent, with the tangent's exact binary values."""
    return reduce(operator.add, (g * sp.Rational(t) for g, t in zip(grad, tangent) if t != 0), sp.S.Zero)


def formula_text(expr: sp.Basic) -> str:
    """The formula as SymPy prints it; SymPy's printer evaluates some numbers as it goes, and
    mpmath fails on a few (erfc(1e308)): then the formula is not shown, the check goes on."""
    try:
        return str(expr)
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        return f"(SymPy cannot print this formula: its {type(exc).__name__})"


def formula_mathml(expr: sp.Basic) -> str | None:
    """The formula as a MathML ``<math>`` element (SymPy's presentation printer), or None
    where SymPy cannot print it (see :func:`formula_text`)."""
    from sympy.printing.mathml import mathml

    try:
        return f'<math display="block">{mathml(expr, printer="presentation")}</math>'
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError, NotImplementedError):
        return None


# -- vectorised float64 evaluation, for many points -------------------------------


@functools.cache
def _numpy_op(op: str, arity: int):
    """One operation of the language as a float64 numpy function of its operands."""
    operands = [sp.Symbol(f"_a{i}", real=True) for i in range(arity)]
    with sympy_evaluate(False):
        expr = SYMPY[op](*operands)
    if op == "log" and arity == 2:  # unevaluated, it prints as numpy.log(x, base): base taken as `out`
        expr = sp.log(operands[0]) / sp.log(operands[1])
    return _lambdify(operands, expr, dummify=False)


_NUMPY_CHAIN = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


#: A float64 quantity within this relative distance of a boundary (a switch's, or its
#: function's domain's) may be on either side of it in truth: such points are
#: recomputed exactly rather than trusted.
NEAR = 1e-9

#: A sum that loses more than half of float64's bits to cancellation (its result below
#: 2**-CANCELLED times its operands) leaves float64 formulas, and torch, with few or no
#: correct digits: such points are recomputed exactly.
CANCELLED = 26


@dataclass
class Screen:
    """What float64 can say about the expression as typed at many points.

    ``undefined``: certainly no real value (an argument clearly outside its function's
    domain), with ``reason[i]`` an index into ``reasons``; ``suspect``: float64 cannot be
    trusted (an overflow, an indeterminate form, a pole, or a switch at or near its
    boundary), so the exact reference must decide. Elsewhere the float64 formulas are
    evaluated at smooth points of one piece, where they are the derivative of the function.
    """

    undefined: np.ndarray
    suspect: np.ndarray
    reason: np.ndarray
    reasons: list[str]


#: Functions whose real domain is bounded: where its argument is clearly outside, the
#: expression is certainly not real. name -> test of the argument(s) (True: outside).
_OUTSIDE = {
    "log": lambda u, scale: u < -NEAR * scale,
    "sqrt": lambda u, scale: u < -NEAR * scale,
    "loggamma": lambda u, scale: (u < -NEAR * scale) & (np.abs(u - np.round(u)) > NEAR * np.maximum(1, scale)),
    "asin": lambda u, scale: np.abs(u) > 1 + NEAR * np.maximum(1, scale),
    "acos": lambda u, scale: np.abs(u) > 1 + NEAR * np.maximum(1, scale),
    "atanh": lambda u, scale: np.abs(u) > 1 + NEAR * np.maximum(1, scale),
    "acosh": lambda u, scale: u < 1 - NEAR * np.maximum(1, scale),
}


def screen_vectorised(node: Node, variables: Sequence[str], points: np.ndarray) -> Screen:
    """A :class:`Screen` of the expression at many points, in float64."""
    node = expand(node)
    columns = {name: np.ascontiguousarray(points[:, i]) for i, name in enumerate(variables)}
    screen = _Screening(columns, points.shape[0])
    ones = np.ones(points.shape[0], dtype=bool)
    screen.require(node, ones)
    return Screen(screen.undefined, screen.suspect & ~screen.undefined, screen.reason, screen.reasons)


#: Terms times points of a sum screened at once.
_TERMS_AT_ONCE = 1 << 18


class _Screening:
    """The float64 values of the tree's nodes, and what they say about each point. In a
    loop, each step's body is screened by a child with the loop's name bound (``own``),
    which leaves what does not use the name to its parent."""

    def __init__(self, columns: dict[str, np.ndarray], size: int, parent: _Screening | None = None,
                 own: str | None = None, terms: int = 0):  # fmt: skip
        self.columns, self.size = columns, size
        # (terms, size) for a block of a sum's terms screened at once, the index down the first axis
        self.ones = np.ones((terms, size) if terms else size, dtype=bool)
        self.values: dict[Node, np.ndarray] = {}
        self.parent, self.own = parent, own
        self.names: dict[Node, frozenset[str]] = {} if parent is None else parent.names
        if parent is None:
            self.undefined, self.suspect = ~self.ones, ~self.ones
            self.reason = np.full(size, -1)
            self.reasons: list[str] = []

    @property
    def root(self) -> _Screening:
        """The screening the flags go to (a property, not an attribute: a reference to itself
        would keep every chunk's values alive until the cyclic garbage collector ran)."""
        return self if self.parent is None else self.parent.root

    def _delegated(self, n: Node) -> bool:
        return self.parent is not None and self.own not in free_names(n, self.names)

    def value(self, n: Node) -> np.ndarray:
        if self._delegated(n):
            return self.parent.value(n)
        if n not in self.values:
            self.values[n] = self._compute(n)
        return self.values[n]

    def _compute(self, n: Node) -> np.ndarray:
        ones = self.ones
        if n.op in ("var", "bound"):
            return self.columns[n.text]
        if n.op in LEAVES:  # a scalar: x**2 then takes numpy's square, not a general power
            return np.float64(_leaf(n, {})) if n.op != "bool" else np.bool_(n.text == "True")
        if n.is_loop:
            return self._loop(n, None)
        if n.op in ("If", "Piecewise"):
            pieces = _pieces(n)
            conds = [np.broadcast_to(self.value(c), ones.shape) if c is not None else ones for _, c in pieces]
            values = [np.broadcast_to(self.value(p), ones.shape) for p, _ in pieces]
            return np.select(conds, values, default=math.nan)
        args = [self.value(a) for a in n.args]
        # a chain left to right, as torch: an intermediate overflow counts
        apply = (lambda *a: fold_chain(n, a, _NUMPY_CHAIN)) if n.op in CHAINS else _numpy_op(n.op, len(n.args))
        with np.errstate(all="ignore"):
            result = apply(*args)
        # no wider than the operands: of constants and loop indices only, a scalar or a column
        # of the indices (factorial(k) once per term, not once per point)
        return np.broadcast_to(result, np.broadcast_shapes(*(np.shape(a) for a in args)))

    def _loop(self, n: Node, where: np.ndarray | None) -> np.ndarray:
        """The loop's value step by step; with ``where``, each step's body screened there too.
        A sum's (product's) terms are independent: blocks of them are screened at once, the
        index a column (K, 1) against the points, and added (multiplied) left to right."""
        body, shape, steps = n.args[0], self.ones.shape, n.steps()
        if n.op == "iterate":
            state = np.broadcast_to(self.value(n.args[1]), shape)
            for _ in steps:
                state = self._step(n, state, body, where)
            return state
        total = np.full(shape, 0.0 if n.op == "sum" else 1.0)
        block = max(1, _TERMS_AT_ONCE // self.ones.size) if self.ones.ndim == 1 else 1
        with np.errstate(all="ignore"):
            for start in range(steps.start, steps.stop, block):
                ks = np.arange(start, min(start + block, steps.stop), dtype=np.float64)
                bound = ks.reshape(-1, 1) if block > 1 else np.float64(start)  # (a scalar: factorial(k) once)
                terms = self._step(n, bound, body, where, len(ks) if block > 1 else 0)
                for term in terms if block > 1 else [terms]:
                    total = total + term if n.op == "sum" else total * term
        return total

    def _step(self, n: Node, bound, body: Node, where: np.ndarray | None, terms: int = 0) -> np.ndarray:
        child = _Screening({n.text: bound}, self.size, self, n.text, terms)
        if where is not None:
            child.require(body, where)
        return np.broadcast_to(child.value(body), child.ones.shape)

    def scale(self, n: Node) -> np.ndarray:
        """The size of the numbers n was computed from: a sum's operands, or n itself."""
        if n.op in ("Add", "Sub", "Sum"):
            return np.max([np.abs(np.broadcast_to(self.value(a), self.ones.shape)) for a in n.args], axis=0)
        return np.abs(np.broadcast_to(self.value(n), self.ones.shape))

    def near(self, n: Node, where: np.ndarray, boundary: float = 0.0) -> np.ndarray:
        with np.errstate(all="ignore"):
            return where & ~(np.abs(self.value(n) - boundary) > NEAR * np.maximum(self.scale(n), abs(boundary)))

    def flag(self, where: np.ndarray, certain_reason: str | None = None) -> None:
        """Suspect points, or (with a reason) points certainly undefined: that wins over
        any doubt elsewhere on the path, and the innermost certain failure gives the reason."""
        root = self.root
        while where.ndim > 1:  # a block of terms: flagged where any term is
            where = where.any(axis=0)
        where = where & ~root.undefined
        if certain_reason is None:
            root.suspect = root.suspect | where
            return
        if where.any():
            root.reasons.append(certain_reason)
            root.reason[where] = len(root.reasons) - 1
            root.undefined = root.undefined | where

    def switches(self, n: Node, where: np.ndarray) -> None:
        """Points where a switch of n is at or near its boundary."""
        op, args, value, scale, near, flag = n.op, n.args, self.value, self.scale, self.near, self.flag
        ones = self.ones
        with np.errstate(all="ignore"):
            if op in COMPARISONS:
                gap = np.abs(value(args[0]) - value(args[1]))
                size = np.maximum(scale(args[0]), scale(args[1]))
                flag(where & ~(gap > NEAR * size))
            elif op in ("Abs", "sign", "Heaviside"):
                flag(near(args[0], where))
            elif op in ("floor", "ceiling"):
                u = value(args[0])
                flag(where & ~(np.abs(u - np.round(u)) > NEAR * np.maximum(1, scale(args[0]))))
            elif op == "Mod":
                q = value(args[0]) / value(args[1])
                flag(where & ~(np.abs(q - np.round(q)) > NEAR * np.maximum(1, np.abs(q))))
            elif op in ("Max", "Min"):
                stacked = np.sort(np.array([np.broadcast_to(value(a), ones.shape) for a in args]), axis=0)
                top = stacked[-2:] if op == "Max" else stacked[:2]
                gap = np.abs(top[1] - top[0])
                flag(where & ~(gap > NEAR * np.max(np.abs(top), axis=0)))
            elif op == "atan2":
                flag(near(args[0], where) & ~(value(args[1]) > 0))
            elif op in _OUTSIDE:
                u = value(args[0])
                flag(where & _OUTSIDE[op](u, scale(args[0])), f"{short_text(n)} is not real")
                if op == "log":  # log near 1 of a rounded value (log1p's reason to exist): few digits left
                    gap = np.abs(u - 1)
                    flag(where & (gap > 0) & (gap < 2.0**-CANCELLED))
            elif op in ("Add", "Sub", "Sum") and not all(_exact_leaf(a) for a in args):
                size = scale(n)
                flag(where & (size > 0) & ~(np.abs(value(n)) > 2.0**-CANCELLED * size))
            elif op == "Pow":
                b, e = value(args[0]), value(args[1])
                fractional = np.abs(e - np.round(e)) > NEAR * np.maximum(1, np.abs(e))
                outside = (b < -NEAR * scale(args[0])) & fractional
                flag(where & np.broadcast_to(outside, ones.shape), f"{short_text(n)} is not real")

    def require(self, n: Node, where: np.ndarray) -> None:
        if self._delegated(n):
            self.parent.require(n, where)
            return
        if n.op in ("If", "Piecewise"):
            remaining = where
            for piece, cond in _pieces(n):
                taken = remaining if cond is None else remaining & self.value(cond).astype(bool)
                if cond is not None:
                    self.require(cond, remaining)
                self.require(piece, taken)
                remaining = remaining & ~taken
            self.flag(remaining, f"no piece of {short_text(n)} applies")
            return
        if n.is_loop:  # its bounds, then each step's body
            for a in n.args[1:]:
                self.require(a, where)
            self.values[n] = self._loop(n, where)
        else:
            for a in n.args:
                self.require(a, where)
            self.switches(n, where)
        if not n.is_condition:
            self.flag(where & ~np.isfinite(self.value(n)))


def _exact_leaf(n: Node) -> bool:
    """A coordinate, or a literal float64 holds exactly: a sum of such is rounded once."""
    return n.op == "var" or (n.op == "num" and float(number(n.text)) == number(n.text))


def _pieces(n: Node) -> list[tuple[Node, Node | None]]:
    if n.op == "If":
        return [(n.args[0], n.args[1]), (n.args[2], None)]
    return list(zip(n.args[::2], n.args[1::2]))


def _vectorize(fn):
    def safe(*args):
        if any(isinstance(a, complex) and a.imag for a in args):
            return math.nan  # (a non-real argument: float() would drop its imaginary part)
        args = [a.real if isinstance(a, complex) else a for a in args]
        try:
            return float(fn(*args))
        except (ValueError, OverflowError, ZeroDivisionError):
            return math.nan

    return np.vectorize(safe, otypes=[np.float64])


def _polygamma(n, x):
    import torch

    # No numpy or math polygamma; torch's special function (not its autodiff) serves.
    n, x = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(x, dtype=np.float64))
    out = np.full(x.shape, math.nan)
    for order in np.unique(n):
        mask = n == order
        out[mask] = torch.special.polygamma(int(order), torch.from_numpy(np.ascontiguousarray(x[mask]))).numpy()
    return out


#: numpy implementations of the functions SymPy's NumPy printer leaves by name.
NUMPY_FUNCTIONS = {
    "DiracDelta": lambda u, k=0: np.where(np.asarray(u) == 0, math.nan, 0.0),
    "DiracComb": lambda u, k=0: np.where(np.floor(u) == u, math.nan, 0.0),
    "Step": lambda u: np.where(np.asarray(u) > 0, 1.0, np.where(np.asarray(u) < 0, 0.0, math.nan)),
    "cbrt": np.cbrt,
    "erf": _vectorize(math.erf),
    "erfc": _vectorize(math.erfc),
    "gamma": _vectorize(math.gamma),
    "loggamma": _vectorize(lambda x: math.lgamma(x) if x > 0 else math.nan),
    "polygamma": _polygamma,
}


class _Float64Printer(NumPyPrinter):
    """SymPy's NumPy printer, for code that must compute in float64 whatever the numbers.

    It prints exact numbers as typed: ``10**308`` then runs as a Python int (numpy
    makes an object array of it, and its functions fail on that), a big Rational's
    division can raise OverflowError, and ``zoo`` (``gamma(0)``, ``1/0``) has no
    entry in its table of constants (KeyError). Here integers beyond 2**53 and
    rationals with such parts become float64 scalars (inf where too large), and
    ``zoo`` NaN: all undefined in float64, as they should be.
    """

    _EXACT = 1 << 53

    def _float64(self, value: sp.Rational) -> str:
        return (
            f"{self._module_format('numpy.float64')}({float(value)!r})"
            if abs(value) < 1e308
            else (("-" if value < 0 else "") + self._module_format("numpy.inf"))
        )

    def _print_Integer(self, expr: sp.Integer) -> str:  # noqa: N802 - the printer protocol
        return super()._print_Integer(expr) if abs(expr.p) < self._EXACT else self._float64(expr)

    def _print_Rational(self, expr: sp.Rational) -> str:  # noqa: N802
        small = abs(expr.p) < self._EXACT and expr.q < self._EXACT
        return super()._print_Rational(expr) if small else self._float64(expr)

    def _print_ComplexInfinity(self, expr) -> str:  # noqa: N802
        return self._module_format("numpy.nan")


def _lambdify(args, exprs, **options) -> Callable:
    """``sp.lambdify`` to numpy and our functions, with the settings lambdify gives its own printer."""
    printer = _Float64Printer(
        {"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
         "user_functions": {name: name for name in NUMPY_FUNCTIONS}}
    )  # fmt: skip
    return sp.lambdify(args, exprs, modules=[NUMPY_FUNCTIONS, "numpy"], printer=printer, **options)


@functools.cache
def _lambdify_namespace() -> frozenset[str]:
    """The names generated code can refer to (numpy's, ours, Python's builtins)."""
    generated = _lambdify([], 0)
    return frozenset(generated.__globals__) | frozenset(dir(builtins))


def _plain_name(name: str) -> bool:
    """Whether a variable can be an argument of generated code under its own name."""
    return (
        name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
        and name not in _lambdify_namespace()
    )  # fmt: skip


def vectorised(
    exprs: Sequence[sp.Basic], symbols: Sequence[sp.Symbol], cse: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """One float64 numpy function for several formulas, sharing common sub-expressions
    (``cse``: worth its cost, a third of lambdify's, only for many points).

    Arguments keep the user's names where no name of the generated code's
    namespace could be shadowed by them (cse's temporaries avoid names already in
    use); otherwise they are dummified, which rebuilds every formula and costs
    two thirds of lambdify's time. Returns a function of a (P, n) array giving
    (len(exprs), P).
    """
    dummify = not all(_plain_name(s.name) for s in symbols)
    together = _lambdify_or_none(symbols, exprs, cse=cse, dummify=dummify)
    alone = functools.cache(lambda i: _lambdify_or_none(symbols, [exprs[i]], dummify=dummify))

    def evaluate(points: np.ndarray) -> np.ndarray:
        columns = [np.ascontiguousarray(points[:, i]) for i in range(points.shape[1])]
        if together is not None:
            with contextlib.suppress(*_REFUSALS):
                return _float64_rows(together, columns, points.shape[0])
        # A formula numpy cannot print or evaluate in float64: a non-real constant (numpy's
        # floor refuses floor(asin(E)), which is complex). Each formula alone, then, NaN
        # where one fails: where such a constant is on the path taken, the point is
        # undefined anyway.
        return np.concatenate([_rows_or_nan(alone(i), columns, points.shape[0]) for i in range(len(exprs))])

    return evaluate


#: What SymPy's printers and numpy raise on a formula they cannot handle in float64.
_REFUSALS = (TypeError, ValueError, ArithmeticError, NotImplementedError)


def _lambdify_or_none(symbols, exprs, **options) -> Callable | None:
    try:
        return _lambdify(list(symbols), list(exprs), **options)
    except _REFUSALS:
        return None


def _rows_or_nan(fn: Callable | None, columns: list[np.ndarray], size: int) -> np.ndarray:
    if fn is not None:
        with contextlib.suppress(*_REFUSALS):
            return _float64_rows(fn, columns, size)
    return np.full((1, size), math.nan)


def _float64_rows(fn: Callable, columns: list[np.ndarray], size: int) -> np.ndarray:
    """(k, P) float64 from a generated function of k formulas; NaN where a value is not real."""
    with np.errstate(all="ignore"):
        out = fn(*columns)
    rows = [np.broadcast_to(np.real_if_close(np.asarray(o)), (size,)) for o in out]
    result = np.array(rows, dtype=np.complex128 if any(np.iscomplexobj(r) for r in rows) else np.float64)
    if np.iscomplexobj(result):
        result = np.where(result.imag == 0, result.real, math.nan)
    return result.reshape(len(rows), size)
