"""Loops on the symbolic side: SymPy functions that stand for a loop and its derivatives.

SymPy cannot be given an unrolled loop: 50 Newton steps of ``(s + x/s)/2`` are
a formula that doubles with every step, and its derivatives grow faster still.
So a loop (``sum``, ``prod``, ``iterate``) enters SymPy's formulas as a function
of the names it uses (its variables, and the names of loops around it), and
SymPy's chain rule leaves its derivatives as further such functions, one per
multi-index (printed ``Derivative(iterate(...), x)``).

Their values, in float64 at many points, come from the loop run forward with
Taylor coefficients: the body is differentiated symbolically once, by SymPy, to
the order asked (for ``iterate`` its partial derivatives in the state and the
variables, for ``sum`` and ``prod`` the term's), and each step carries the
truncated Taylor polynomial of the loop's value in the variables differentiated
by: a sum adds the terms' polynomials, a product multiplies them, a step of an
iteration composes the step's expansion with the state's. The work is linear in
the number of steps. At hand-given points (and wherever float64 cannot be
trusted) the exact reference of :mod:`diffcli.exact` follows the loop instead.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache, lru_cache

import numpy as np
import sympy as sp

from diffcli.expr import Node, to_text

#: Terms of a sum or product evaluated together (times the points), vectorised over the index.
BLOCK = 1 << 20


class LoopFunction(sp.Function):
    """One loop (``loop``) as a function of ``names`` (the names it uses, in order),
    differentiated ``alpha`` times by each (zero: the loop's value)."""

    loop: Node
    names: tuple[str, ...]
    alpha: tuple[int, ...]
    indices: tuple[bool, ...]  # which names are indices of loops around it (integers, never varied)

    @classmethod
    def eval(cls, *args):
        return None  # never evaluated symbolically

    def _eval_is_extended_real(self):
        return True

    def fdiff(self, argindex=1):
        alpha = list(self.alpha)
        alpha[argindex - 1] += 1
        return loop_function(self.loop, self.names, self.indices, tuple(alpha))(*self.args)

    def _sympystr(self, printer) -> str:
        text = to_text(self.loop)
        wrt = [name if k == 1 else f"({name}, {k})" for name, k in zip(self.names, self.alpha) if k]
        if wrt:
            text = f"Derivative({text}, {', '.join(wrt)})"
        at = [f"{name} = {printer._print(a)}" for name, a in zip(self.names, self.args) if str(a) != name]
        return text + (f" at {', '.join(at)}" if at else "")

    def _mathml_presentation(self, printer):
        """As it prints in text (a loop has no standard notation to typeset)."""
        element = printer.dom.createElement("mtext")
        element.appendChild(printer.dom.createTextNode(sp.sstr(self)))
        return element


_CLASSES: dict[tuple, type] = {}
_SERIALS: dict[tuple, int] = {}


def loop_function(
    loop: Node, names: tuple[str, ...], indices: tuple[bool, ...], alpha: tuple[int, ...] | None = None
) -> type:
    """The SymPy function class of a loop's value (or of one of its derivatives) as a
    function of ``names``; ``indices`` marks those that are indices of loops around it."""
    alpha = alpha or (0,) * len(names)
    key = (loop, names, indices, alpha)
    if key not in _CLASSES:
        serial = _SERIALS.setdefault(key[:3], len(_SERIALS))
        suffix = "_d" + "_".join(map(str, alpha)) if any(alpha) else ""

        def implementation(*arrays):
            return evaluate(loop, names, indices, alpha, arrays)

        attributes = {"loop": loop, "names": names, "indices": indices, "alpha": alpha, "nargs": len(names),
                      "_imp_": staticmethod(implementation)}  # fmt: skip
        _CLASSES[key] = type(f"loop{serial}{suffix}", (LoopFunction,), attributes)
    return _CLASSES[key]


# -- truncated Taylor polynomials of arrays ---------------------------------------------


class _Monomials:
    """The monomials in d variables of total degree <= order, lowest degree first, and
    the index tables that multiply and shift polynomials of that shape."""

    def __init__(self, d: int, order: int):
        self.d, self.order = d, order
        self.exponents = sorted(
            (e for e in itertools.product(range(order + 1), repeat=d) if sum(e) <= order),
            key=lambda e: (sum(e), tuple(-c for c in e)),
        )
        self.index = {e: i for i, e in enumerate(self.exponents)}
        pairs = [(self.index[_add(a, b)], i, j) for i, a in enumerate(self.exponents)
                 for j, b in enumerate(self.exponents) if sum(a) + sum(b) <= order]  # fmt: skip
        pairs.sort()
        self.into, self.left, self.right = (np.array(c) for c in zip(*pairs))
        self.starts = np.searchsorted(self.into, np.arange(len(self.exponents)))

    def multiply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(self.exponents) == 1:
            return a * b
        return np.add.reduceat(a[self.left] * b[self.right], self.starts, axis=0)

    @cache  # noqa: B019 - one per shape, kept for the process
    def shift(self, by: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Where each coefficient goes when multiplied by the monomial ``by`` (those that stay)."""
        moves = [(i, self.index[_add(e, by)]) for i, e in enumerate(self.exponents) if sum(e) + sum(by) <= self.order]
        source, target = zip(*moves) if moves else ((), ())
        return np.array(source, dtype=int), np.array(target, dtype=int)


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b))


@cache
def monomials(d: int, order: int) -> _Monomials:
    return _Monomials(d, order)


# -- the loop run forward with Taylor coefficients -------------------------------------------


class _Propagator:
    """A loop's body differentiated once, lambdified: for ``sum`` and ``prod`` the term's
    Taylor coefficients in the free variables, for ``iterate`` the step's in the state and
    the free variables (and the initial value's)."""

    def __init__(self, loop: Node, names: tuple[str, ...], indices: frozenset[str], free: tuple[int, ...],
                 order: int):  # fmt: skip
        from diffcli import symbolic

        self.loop, self.shape = loop, monomials(len(free), order)
        symbols = {**symbolic.symbols_for(names), **{n: sp.Symbol(n, integer=True) for n in indices}}
        own = sp.Symbol(loop.text, integer=True) if loop.op != "iterate" else sp.Symbol(loop.text, real=True)
        arguments = [own, *(symbols[n] for n in names)]
        by = [symbols[names[i]] for i in free]
        body = symbolic.to_sympy(loop.args[0], {**symbols, loop.text: own})
        if loop.op == "iterate":
            init = symbolic.to_sympy(loop.args[1], symbols)
            self.init = _coefficients_function(init, by, self.shape.exponents, [symbols[n] for n in names])
            self.terms = [(a, e) for a in range(order + 1) for e in self.shape.exponents if a + sum(e) <= order]
            self.step = _coefficients_function(body, [own, *by], [(a, *e) for a, e in self.terms], arguments)
        else:
            self.step = _coefficients_function(body, by, self.shape.exponents, arguments)

    def run(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """(M, *shape): the loop's Taylor coefficients at the points."""
        with np.errstate(all="ignore"):
            if self.loop.op == "iterate":
                return self._iterate(arrays)
            return self._reduce(arrays)

    def _reduce(self, arrays) -> np.ndarray:
        shape, monomial = np.broadcast(*arrays, 0).shape, self.shape
        total = np.zeros((len(monomial.exponents), *shape))
        if self.loop.op == "prod":
            total[0] = 1.0
        indices = np.arange(self.loop.steps().start, self.loop.steps().stop, dtype=np.float64)
        block = max(1, BLOCK // max(1, math.prod(shape)))
        for start in range(0, len(indices), block):
            ks = indices[start : start + block].reshape(-1, *(1,) * len(shape))
            terms = np.stack([np.broadcast_to(t, (len(ks), *shape)) for t in self.step(ks, *arrays)], axis=1)
            if self.loop.op == "sum":
                total += terms.sum(axis=0)
            else:
                for term in terms:
                    total = monomial.multiply(total, term)
        return total

    def _iterate(self, arrays) -> np.ndarray:
        shape, monomial = np.broadcast(*arrays, 0).shape, self.shape
        state = np.stack([np.broadcast_to(c, shape) for c in self.init(*arrays)]).astype(np.float64)
        one = np.zeros_like(state)
        one[0] = 1.0
        for _ in self.loop.steps():
            coefficients = self.step(state[0], *arrays)
            change = state.copy()
            change[0] = 0.0
            powers, new = [one], np.zeros_like(state)
            for (a, e), c in zip(self.terms, coefficients):
                while len(powers) <= a:
                    powers.append(change if len(powers) == 1 else monomial.multiply(powers[-1], change))
                source, target = monomial.shift(e)
                new[target] += c * powers[a][source]
            state = new
        return state


def _coefficients_function(expr: sp.Expr, by: list[sp.Symbol], exponents, arguments) -> Callable:
    """A float64 function of ``arguments`` giving the Taylor coefficients D^e expr / e! for
    each multi-index e over ``by``, each derivative taken once from a lower one."""
    from diffcli import symbolic

    derived: dict[tuple[int, ...], sp.Expr] = {(0,) * len(by): expr}
    for e in sorted(exponents, key=sum):
        if e not in derived:
            i = next(i for i, c in enumerate(e) if c)
            lower = tuple(c - (j == i) for j, c in enumerate(e))
            derived[e] = symbolic.derivative(derived[lower], by[i])
    formulas = [derived[e] / math.prod(math.factorial(c) for c in e) for e in exponents]
    return symbolic._lambdify(arguments, formulas, cse=True, dummify=True)


@lru_cache(maxsize=64)
def _propagator(
    loop: Node, names: tuple[str, ...], indices: frozenset[str], free: tuple[int, ...], order: int
) -> _Propagator:
    return _Propagator(loop, names, indices, free, order)


#: The last Taylor coefficients computed for each loop function: (arrays, order, coefficients),
#: for the loops used most recently. A Hessian's formulas ask for every second derivative of
#: a loop at the same points: one run of the loop serves them all.
_LAST: OrderedDict[tuple, tuple] = OrderedDict()
_KEPT = 8


def evaluate(
    loop: Node, names: tuple[str, ...], indices: tuple[bool, ...], alpha: tuple[int, ...], arrays
) -> np.ndarray:
    """The loop's derivative ``alpha`` (by its names) in float64 at the points ``arrays``:
    from its Taylor coefficients in every name that is not an index, to the highest order
    asked at these points so far."""
    key, order = (loop, names, indices), sum(alpha)
    free = tuple(i for i, index in enumerate(indices) if not index)
    last = _LAST.get(key)
    same = last is not None and len(last[0]) == len(arrays) and all(a is b for a, b in zip(last[0], arrays))
    if not same or last[1] < order:
        bound = frozenset(n for n, index in zip(names, indices) if index)
        floats = [np.asarray(a, dtype=np.float64) for a in arrays]
        coefficients = _propagator(loop, names, bound, free, order).run(floats)
        _LAST[key] = last = (tuple(arrays), order, coefficients)
        while len(_LAST) > _KEPT:
            _LAST.popitem(last=False)
    _LAST.move_to_end(key)
    beta = tuple(alpha[i] for i in free)
    scale = math.prod(math.factorial(k) for k in beta)
    return last[2][monomials(len(free), last[1]).index[beta]] * scale
