"""The exact reference at one point: the derivative of the function as typed, to 30 digits.

The expression tree (the one torch compiles) is evaluated with mpmath on the
Taylor expansions of :mod:`diffcli.taylor`, at a working precision raised until
every answer has :data:`DIGITS` correct digits (or is zero to within
2**-1100), so float64's range and rounding never decide a verdict:
``log(exp(x))`` at 710 is 710, and ``(exp(1000) + 1) - exp(1000)`` is 1.

Where the expression is smooth at the point (every switch decided, every
function analytic there) one multivariate Taylor expansion gives the value,
gradient and Hessian. Elsewhere (a piece boundary, a kink of Abs, a jump of
floor, a tie of Max, atan2's branch cut, sqrt at 0, a removable 0/0) the
function is followed along rays: for each direction d the one-sided
expansions of f(p + s d) and f(p - s d), s -> 0+, are compared. A derivative
exists where the sides agree with each other and with the value at the point
to the order asked; a side on which the function is not real (outside its
domain) does not count. Partial derivatives come from the coordinate
directions, mixed second derivatives from e_i + e_j and e_i - e_j (and those
must satisfy the parallelogram law, or the function is not twice
differentiable there), a JVP from the tangent itself.

Every result that does not exist says why (``reason``); one that exists but
cannot be computed (``cos(sinh(x))`` at 1e10 needs billions of digits) is
``unknown`` with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import numpy as np

from diffcli.commands import COMMANDS, NONE, Extra, partial_label
from diffcli.expr import CHAINS, COMPARISONS, Node, free_names, short_text
from diffcli.language import DEFINITIONS
from diffcli.parser import definition
from diffcli.taylor import (
    COEFFICIENTS,
    DIGIT_BITS,
    DIGITS,
    INF,
    SMALL_POWER,
    ZERO_BITS,
    Arith,
    Infinite,
    Jet,
    NeedPrecision,
    NeedTerms,
    Num,
    Series,
    Unresolvable,
    coefficients,
    magnitude,
    monomials,
    power_coefficients,
)

#: Working precision: where it starts, and where it gives up (about 6,000 digits).
START_BITS, MAX_BITS = 160, 20_000
#: Terms beyond the order asked that a ray may expand before it gives up.
MAX_EXTRA_TERMS = 16
#: An argument this many bits long (|x| >= 2**MAX_ARGUMENT_BITS) is beyond what a
#: periodic or exponential function can be evaluated at.
MAX_ARGUMENT_BITS = 4_096  # mpmath's exp takes 16 s at 2**15000, milliseconds at 2**4000


class Undefined(Exception):  # noqa: N818 - a verdict, not an error
    """The expression has no real value here (at the point, or on one side of it)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Awkward(Exception):  # noqa: N818 - a signal to change method
    """A Taylor expansion at the point cannot represent the function here: follow rays."""


# -- the two algebras: Taylor polynomials at the point, or one-sided series on a ray --


class _Jets:
    """Multivariate Taylor polynomials at the point, to ``order``. Order 0 is the value
    as typed: a switch at its boundary takes its value there (Abs(0) = 0). At higher
    orders a switch at its boundary, or a function at a singular point, is Awkward."""

    def __init__(self, ar: Arith, point: Sequence[Num], order: int, free: Sequence[int] | None = None):
        self.ar, self.order = ar, order
        self.free = list(range(len(point))) if free is None else list(free)  # the variables it varies in
        self.shape = monomials(len(self.free), order)
        self.point = point

    def variable(self, i: int) -> Jet:
        if i not in self.free:  # held at the point's coordinate
            return Jet.constant(self.ar, self.shape, self.point[i])
        return Jet.variable(self.ar, self.shape, self.free.index(i), self.point[i])

    def constant(self, value: Num) -> Jet:
        return Jet.constant(self.ar, self.shape, value)

    def base(self, u: Jet) -> Num:
        return u.base

    def infinite(self, u: Jet) -> int:
        return 0

    def locally_constant(self, u: Jet) -> bool:
        return u.locally_constant

    def near_sign(self, u: Jet) -> int:
        s = self.ar.sign(u.base)
        if s or self.order == 0 or u.locally_constant:
            return s
        raise Awkward

    def compose(self, u: Jet, series: Callable) -> Jet:
        return u.compose(coefficients(self.ar, series, u.base, self.order + 1))

    def singular(self, u: Jet) -> None:
        """A function at a singular point of its argument: only its value is known here."""
        if self.order and not u.locally_constant:
            raise Awkward

    def reciprocal(self, u: Jet) -> Jet:
        if not self.ar.sign(u.base):
            raise ZeroDivisionError
        return self.compose(u, COEFFICIENTS["reciprocal"])

    def integer_power(self, u: Jet, n: int) -> Jet:
        """u**n for n >= 0 where u vanishes at the point."""
        result = self.constant(self.ar.one)
        for _ in range(min(n, self.order + 1)):
            result = result * u
        return result if n <= self.order else u.scaled(self.ar.zero)


class _Ray:
    """One-sided series of f(p + s d), s -> 0+."""

    def __init__(self, ar: Arith, point: Sequence[Num], direction: Sequence[Num]):
        self.ar, self.point, self.direction = ar, point, direction

    def variable(self, i: int) -> Series:
        return Series.line(self.ar, self.point[i], self.direction[i])

    def constant(self, value: Num) -> Series:
        return Series.constant(self.ar, value)

    def base(self, u: Series) -> Num:
        if not u.has_limit():
            raise Unresolvable("an argument with no limit at the point")
        return u.base()

    def infinite(self, u: Series) -> int:
        return u.infinite()

    def locally_constant(self, u: Series) -> bool:
        return u.locally_constant

    def near_sign(self, u: Series) -> int:
        return u.sign()

    def compose(self, u: Series, series: Callable) -> Series:
        self.base(u)  # it has a limit
        return u.compose(series)

    def singular(self, u: Series) -> None:
        pass

    def reciprocal(self, u: Series) -> Series:
        return u.reciprocal()


# -- the functions of the language -------------------------------------------------------


def _positive(ar: Arith, u0: Num) -> str:
    s = ar.sign(u0)
    if s < 0:
        raise ValueError
    return "regular" if s else "singular"


def _interior(ar: Arith, u0: Num) -> str:
    """|u0| < 1 regular, = 1 singular, > 1 not real."""
    s = ar.compare(ar.one, Num(abs(u0.v), u0.e))
    if s < 0:
        raise ValueError
    return "regular" if s else "singular"


def _always(ar: Arith, u0: Num) -> str:
    return "regular"


def _nonzero(ar: Arith, u0: Num) -> str:
    return "regular" if ar.sign(u0) else "singular"


def _unless_zero_of(fn: str):
    def domain(ar: Arith, u0: Num) -> str:
        v = ar.apply(lambda ctx, x: getattr(ctx, fn)(x), u0, lambda ctx, x: ctx.one)
        return "regular" if ar.sign(v) else "singular"

    return domain


def _gamma_domain(ar: Arith, u0: Num) -> str:
    n, integer = ar.nearest_integer(u0)
    return "singular" if integer and n <= 0 else "regular"


def _loggamma_domain(ar: Arith, u0: Num) -> str:
    return _positive(ar, u0)


def _acosh_domain(ar: Arith, u0: Num) -> str:
    return _positive(ar, ar.sub(u0, ar.one))


@dataclass(frozen=True)
class Function:
    """How one function of the language is evaluated exactly: its Taylor coefficients
    where analytic, where that is (``domain``: regular, singular, or ValueError for not
    real), and, on a ray, how it behaves near a singular point (``near``) and as its
    argument grows without bound (``infinite``, given the sign)."""

    series: Callable
    domain: Callable[[Arith, Num], str] = _always
    near: Callable | None = None  # (ray, u) -> Series
    infinite: Callable | None = None  # (ray, u, sign) -> Series
    value: Callable | None = None  # (ar, u0) -> Num at a singular point, or ZeroDivisionError (a pole)


def _pole(ar, u0):
    raise ZeroDivisionError


def _series_of(name: str) -> Callable:
    return COEFFICIENTS[name]


def _sqrt_near(ray, u):
    half = ray.ar.exact(Fraction(1, 2))
    return u.power(half, Fraction(1, 2), False)


def _root_of_half(ray, w):
    """sqrt(w/2), for w -> 0 from above (not real where w < 0)."""
    return _sqrt_near(ray, w.scaled(ray.ar.exact(Fraction(1, 2))))


def _acos_near(ray, u):
    ar = ray.ar
    one = Series.constant(ar, ar.one)
    if ar.sign(u.base()) > 0:  # acos(u) = 2 asin(sqrt((1 - u)/2)) near 1
        return _root_of_half(ray, one - u).compose(COEFFICIENTS["asin"], ar.zero).scaled(ar.exact(2))
    # acos(u) = pi - 2 asin(sqrt((1 + u)/2)) near -1
    inner = _root_of_half(ray, one + u).compose(COEFFICIENTS["asin"], ar.zero).scaled(ar.exact(2))
    return Series.constant(ar, ar.constant("pi")) - inner


def _asin_near(ray, u):
    ar = ray.ar
    half_pi = ar.scale(ar.constant("pi"), Fraction(1, 2))
    return Series.constant(ar, half_pi) - _acos_near(ray, u)


def _acosh_near(ray, u):  # acosh(u) = 2 asinh(sqrt((u - 1)/2)) near 1
    ar = ray.ar
    w = u - Series.constant(ar, ar.one)
    return _root_of_half(ray, w).compose(COEFFICIENTS["asinh"], ar.zero).scaled(ar.exact(2))


def _atanh_near(ray, u):  # (log(1 + u) - log(1 - u))/2
    ar = ray.ar
    one = Series.constant(ar, ar.one)
    return ((one + u).logarithm() - (one - u).logarithm()).scaled(ar.exact(Fraction(1, 2)))


def _ratio(numerator: str, denominator: str):
    def near(ray, u):
        return u.compose(COEFFICIENTS[numerator]) / u.compose(COEFFICIENTS[denominator])

    return near


def _reciprocal_of(name: str):
    def near(ray, u):
        return u.compose(COEFFICIENTS[name]).reciprocal()

    return near


def _gamma_near(ray, u):  # gamma(u) = gamma(u + m) / (u (u + 1) ... (u + m - 1))
    ar = ray.ar
    m = 1 - ar.nearest_integer(u.base())[0]
    shifted = u + Series.constant(ar, ar.exact(m))
    product = Series.constant(ar, ar.one)
    for k in range(m):
        product = product * (u + Series.constant(ar, ar.exact(k)))
    return shifted.compose(COEFFICIENTS["gamma"]) / product


def _loggamma_near(ray, u):  # loggamma(u) = loggamma(u + 1) - log(u) near 0
    ar = ray.ar
    return (u + Series.constant(ar, ar.one)).compose(COEFFICIENTS["loggamma"]) - u.logarithm()


def _limit(value):
    """At +-inf: the constant ``value(ar, sign)`` plus a remainder flatter than any power."""

    def infinite(ray, u, sign):
        limit, flat = value(ray.ar, sign)
        return Series.constant(ray.ar, limit).copy(flat=flat)

    return infinite


def _atan_infinite(ray, u, sign):  # sign*pi/2 - atan(1/u)
    ar = ray.ar
    inverse = u.reciprocal()
    half_pi = ar.scale(ar.constant("pi"), Fraction(sign, 2))
    return Series.constant(ar, half_pi) - inverse.compose(COEFFICIENTS["atan"], ar.zero)


def _bounded(ray, u, sign):
    return Series(ray.ar, {}, cut=Fraction(0), hard=True)


def _grows(ray, u, sign):
    raise Infinite("it grows without bound")


def _by_log(plus: int):
    """asinh(u) = log(u + sqrt(u**2 + 1)), acosh(u) = log(u + sqrt(u**2 - 1)), as u -> +inf."""

    def infinite(ray, u, sign):
        ar = ray.ar
        if sign < 0:
            if plus < 0:
                raise ValueError
            return -infinite(ray, -u, 1)
        return (u + _sqrt_near(ray, u * u + Series.constant(ar, ar.exact(plus)))).logarithm()

    return infinite


FUNCTIONS: dict[str, Function] = {
    "exp": Function(_series_of("exp"), infinite=lambda ray, u, sign: u.exponential()),
    "log": Function(_series_of("log"), _positive, near=lambda ray, u: u.logarithm(), value=_pole,
                    infinite=lambda ray, u, sign: u.logarithm()),
    "sqrt": Function(_series_of("sqrt"), _positive, near=_sqrt_near, value=lambda ar, u0: ar.zero,
                     infinite=lambda ray, u, sign: _sqrt_near(ray, u)),
    "cbrt": Function(_series_of("cbrt"), _nonzero, value=lambda ar, u0: ar.zero,
                     near=lambda ray, u: _cbrt_near(ray, u), infinite=lambda ray, u, sign: _cbrt_near(ray, u)),
    "sin": Function(_series_of("sin"), infinite=_bounded),
    "cos": Function(_series_of("cos"), infinite=_bounded),
    "tan": Function(_series_of("tan"), _unless_zero_of("cos"), near=_ratio("sin", "cos"), value=_pole),
    "sec": Function(_series_of("sec"), _unless_zero_of("cos"), near=_reciprocal_of("cos"), value=_pole),
    "csc": Function(_series_of("csc"), _unless_zero_of("sin"), near=_reciprocal_of("sin"), value=_pole),
    "cot": Function(_series_of("cot"), _unless_zero_of("sin"), near=_ratio("cos", "sin"), value=_pole),
    "asin": Function(_series_of("asin"), _interior, near=_asin_near,  # +-pi/2 at +-1
                     value=lambda ar, u0: ar.scale(ar.constant("pi"), Fraction(ar.sign(u0), 2))),
    "acos": Function(_series_of("acos"), _interior, near=_acos_near,  # 0 at 1, pi at -1
                     value=lambda ar, u0: ar.zero if ar.sign(u0) > 0 else ar.constant("pi")),
    "atan": Function(_series_of("atan"), infinite=_atan_infinite),
    "sinh": Function(_series_of("sinh"), infinite=_grows),
    "cosh": Function(_series_of("cosh"), infinite=_grows),
    "tanh": Function(_series_of("tanh"), infinite=_limit(lambda ar, s: (ar.exact(s), -s))),
    "asinh": Function(_series_of("asinh"), infinite=_by_log(1)),
    "acosh": Function(_series_of("acosh"), _acosh_domain, near=_acosh_near, value=lambda ar, u0: ar.zero,
                      infinite=_by_log(-1)),
    "atanh": Function(_series_of("atanh"), _interior, near=_atanh_near, value=_pole),
    "erf": Function(_series_of("erf"), infinite=_limit(lambda ar, s: (ar.exact(s), -s))),
    "erfc": Function(_series_of("erfc"),
                     infinite=_limit(lambda ar, s: (ar.zero, 1) if s > 0 else (ar.exact(2), -1))),
    "gamma": Function(_series_of("gamma"), _gamma_domain, near=_gamma_near, value=_pole),
    "loggamma": Function(_series_of("loggamma"), _loggamma_domain, near=_loggamma_near, value=_pole),
    "sinc": Function(_series_of("sinc"), infinite=lambda ray, u, sign: _bounded(ray, u, sign) * u.reciprocal()),
}  # fmt: skip


def _cbrt_near(ray, u):
    ar = ray.ar
    third = ar.exact(Fraction(1, 3))
    s = u.sign()
    if s == 0:
        return Series(ar, {})
    magnitude = (u if s > 0 else -u).power(third, Fraction(1, 3), False)
    return magnitude if s > 0 else -magnitude


# -- the evaluator -------------------------------------------------------------------------


class _Within:
    """A loop step's record of switch decisions: keyed by the switch and the step (a
    switch in a loop decides once per step)."""

    def __init__(self, target: dict, context: tuple):
        self.target, self.context = target, context

    def __setitem__(self, node: Node, decision: object) -> None:
        self.target[(node, self.context)] = decision


class Evaluator:
    """The tree evaluated on one algebra; ``switches`` records each switch's decision.

    A loop's body is evaluated once per step by a child evaluator with the loop's name
    bound (``own``): what does not use that name is its parent's, computed once. So an
    iteration is followed step by step, and its derivatives (the jets' or the rays'
    coefficients) are carried along: linear in the number of steps."""

    def __init__(self, algebra, variables: Sequence[str], parent: Evaluator | None = None,
                 own: tuple[str, object] | None = None, context: tuple = ()):  # fmt: skip
        self.alg = algebra
        self.ar: Arith = algebra.ar
        self.index = {name: i for i, name in enumerate(variables)} if parent is None else parent.index
        self.memo: dict[Node, object] = {}
        self.parent, self.own = parent, own
        self.names: dict[Node, frozenset[str]] = {} if parent is None else parent.names  # free_names' memo
        self.root: dict = {} if parent is None else parent.root
        self.switches = self.root if parent is None else _Within(self.root, context)
        self.context = context

    def __call__(self, node: Node):
        if self.parent is not None and self.own[0] not in free_names(node, self.names):
            return self.parent(node)
        if node not in self.memo:
            self.memo[node] = self._evaluate(node)
        return self.memo[node]

    def _step(self, loop: Node, j: int, value) -> Evaluator:
        return Evaluator(self.alg, (), self, (loop.text, value), (*self.context, (loop, j)))

    def _loop(self, node: Node):
        """The terms' sum or product (left to right), or the state after the steps; where one
        has no value, the reason says which (not the initial value's: that is no step)."""
        alg, ar, body = self.alg, self.ar, node.args[0]
        at = ""
        try:
            if node.op == "iterate":
                state = self(node.args[1])
                for j in node.steps():
                    at = f"step {j + 1} of"
                    state = self._step(node, j + 1, state)(body)
                return state
            result = None
            for k in node.steps():
                at = f"the term {node.text} = {k} of"
                term = self._step(node, k, alg.constant(ar.exact(k)))(body)
                result = term if result is None else (result + term if node.op == "sum" else result * term)
        except Undefined as exc:
            if not at:
                raise
            raise Undefined(f"{exc.reason} (at {at} {short_text(node, 40)})") from None
        return alg.constant(ar.exact(0 if node.op == "sum" else 1)) if result is None else result

    def _evaluate(self, node: Node):
        op, alg, ar = node.op, self.alg, self.ar
        if op in DEFINITIONS:  # log1p(x) as log(1 + x): its definition, evaluated exactly
            return self(definition(node))
        if op == "bound":
            return self.own[1]
        if node.is_loop:
            return self._loop(node)
        if op == "num":
            return alg.constant(ar.exact(_number(node.text)))
        if op == "var":
            return alg.variable(self.index[node.text])
        if op == "const":
            return alg.constant(ar.constant(node.text))
        if op == "bool":
            return node.text == "True"
        if op in COMPARISONS:
            s = alg.near_sign(self(node.args[0]) - self(node.args[1]))
            self.switches[node] = s
            return {"Lt": s < 0, "Le": s <= 0, "Gt": s > 0, "Ge": s >= 0, "Eq": s == 0, "Ne": s != 0}[op]
        if op in ("And", "Or"):
            values = [self(a) for a in node.args]  # as typed: every operand is evaluated
            return all(values) if op == "And" else any(values)
        if op == "Not":
            return not self(node.args[0])
        if op in ("If", "Piecewise"):
            pieces = [(node.args[0], node.args[1]), (node.args[2], None)] if op == "If" else \
                list(zip(node.args[::2], node.args[1::2]))  # fmt: skip
            for k, (piece, cond) in enumerate(pieces):
                if cond is None or self(cond):
                    self.switches[node] = k
                    return self(piece)
            raise Undefined(f"no piece of {short_text(node)} applies")
        try:
            return self._operation(node)
        except ValueError:
            raise Undefined(f"{short_text(node)} is not real") from None
        except ZeroDivisionError:
            text = short_text(node)
            message = f"division by zero in {text}" if op in ("Div", "Product") else f"{text} is infinite"
            raise Undefined(message) from None

    def _operation(self, node: Node):
        op, alg, ar = node.op, self.alg, self.ar
        if op in CHAINS:
            result = self(node.args[0])
            for sign, arg in zip(node.text, node.args[1:]):
                result = self._binary(CHAINS[op][sign], result, self(arg))
            return result
        if op in ("Add", "Sub", "Mul", "Div"):
            return self._binary(op, self(node.args[0]), self(node.args[1]))
        if op == "Neg":
            return -self(node.args[0])
        if op == "Pow":
            return self._power(self(node.args[0]), self(node.args[1]))
        if op == "root":
            return self._power(self(node.args[0]), self._binary("Div", alg.constant(ar.one), self(node.args[1])))
        if op == "log" and len(node.args) == 2:
            return self._binary("Div", self._function("log", self(node.args[0])),
                                self._function("log", self(node.args[1])))  # fmt: skip
        if op in FUNCTIONS:
            return self._function(op, self(node.args[0]))
        return getattr(self, _SWITCHES[op])(node)

    def _binary(self, op: str, a, b):
        if op == "Add":
            return a + b
        if op == "Sub":
            return a - b
        if op == "Mul":
            return a * b
        return a * self.alg.reciprocal(b)

    def _function(self, name: str, u):
        alg, ar, fn = self.alg, self.ar, FUNCTIONS[name]
        sign = alg.infinite(u)
        if sign:
            if fn.infinite is None:
                raise Unresolvable(f"{name} of an argument that grows without bound")
            return fn.infinite(alg, u, sign)
        u0 = alg.base(u)
        if name in ("exp", "sin", "cos", "sinh", "cosh", "tan", "sec", "csc", "cot", "sinc", "erf", "erfc", "gamma"):
            _check_argument(u0)
        if fn.domain(ar, u0) == "regular":
            return alg.compose(u, fn.series)
        alg.singular(u)  # Awkward unless only the value is needed
        if isinstance(alg, _Jets):
            return alg.constant(fn.value(ar, u0))
        if u.locally_constant:
            return alg.constant(fn.value(ar, u0))
        return fn.near(alg, u)

    def _power(self, b, e):
        alg, ar = self.alg, self.ar
        if alg.locally_constant(e):
            alpha = alg.base(e)
            n, integer = ar.nearest_integer(alpha)
            return self._constant_power(b, alpha, n, integer)
        # a variable exponent: b**e = exp(e log b), real where b > 0
        if isinstance(alg, _Ray):
            if b.exactly_zero:  # 0**e: 0 where e > 0, a pole where e < 0
                s = e.sign()
                if s < 0:
                    raise ZeroDivisionError
                return alg.constant(ar.zero if s > 0 else ar.one)
            if b.sign() < 0:
                raise ValueError
            return (e * b.logarithm()).exponential()
        s = ar.sign(b.base)
        if s > 0:
            return alg.compose(e * alg.compose(b, COEFFICIENTS["log"]), COEFFICIENTS["exp"])
        e0 = e.base
        n, integer = ar.nearest_integer(e0)
        if s < 0:
            if not integer:
                raise ValueError
            if alg.order:
                raise Awkward  # real only where e is an integer: no derivative in e
            return self._constant_power(b, e0, n, True)
        if alg.order and not (b.locally_constant and ar.sign(e0) > 0):
            raise Awkward
        es = ar.sign(e0)
        if es < 0:
            raise ZeroDivisionError
        return alg.constant(ar.zero if es > 0 else ar.one)

    def _constant_power(self, b, alpha: Num, n: int, integer: bool):
        alg, ar = self.alg, self.ar
        if integer and 0 <= n <= SMALL_POWER:  # by multiplication: exact where b is (x**2 - 1 at 1 is 0)
            result = alg.constant(ar.one)
            for _ in range(n):
                result = result * b
            return result
        if isinstance(alg, _Ray):
            return b.power(alpha, ar.exponent(alpha), integer)
        s = ar.sign(b.base)
        if s > 0 or (s < 0 and integer):
            return alg.compose(b, power_coefficients(alpha))
        if s < 0:
            raise ValueError
        # the base vanishes at the point
        sa = ar.sign(alpha)
        if sa < 0:
            raise ZeroDivisionError
        if sa == 0:
            return alg.constant(ar.one)
        if integer:
            return alg.integer_power(b, n)
        alg.singular(b)
        return alg.constant(ar.zero)

    # -- the switches

    def _decide(self, node: Node, u) -> int:
        s = self.alg.near_sign(u)
        self.switches[node] = s
        return s

    def _abs(self, node: Node):
        u = self(node.args[0])
        return -u if self._decide(node, u) < 0 else u

    def _sign(self, node: Node):
        return self.alg.constant(self.ar.exact(self._decide(node, self(node.args[0]))))

    def _heaviside(self, node: Node):
        s = self._decide(node, self(node.args[0]))
        if s:
            return self.alg.constant(self.ar.one if s > 0 else self.ar.zero)
        return self(node.args[1]) if len(node.args) > 1 else self.alg.constant(self.ar.exact(Fraction(1, 2)))

    def _integer_part(self, node: Node, u, ceiling: bool):
        alg, ar = self.alg, self.ar
        if alg.infinite(u):
            raise Infinite("it grows without bound")
        u0 = alg.base(u)
        _check_argument(u0)
        n, integer = ar.nearest_integer(u0)
        if not integer:
            below = ar.compare(u0, ar.exact(n)) < 0
            k = n - (below and not ceiling) + (not below and ceiling)
            self.switches[node] = (k, None)
            return alg.constant(ar.exact(k))
        s = alg.near_sign(u - alg.constant(ar.exact(n)))
        self.switches[node] = (n, s)
        k = n + (s > 0) if ceiling else n - (s < 0)
        return alg.constant(ar.exact(k))

    def _floor(self, node: Node):
        return self._integer_part(node, self(node.args[0]), ceiling=False)

    def _ceiling(self, node: Node):
        return self._integer_part(node, self(node.args[0]), ceiling=True)

    def _mod(self, node: Node):
        a, m = self(node.args[0]), self(node.args[1])
        if self.alg.locally_constant(m) and not self.ar.sign(self.alg.base(m)):
            raise Undefined(f"{short_text(node)}: division by zero")
        quotient = self._binary("Div", a, m)
        return a - m * self._integer_part(node, quotient, ceiling=False)

    def _extremum(self, node: Node, larger: int):
        values = [self(a) for a in node.args]
        best, k = values[0], 0
        for i, v in enumerate(values[1:], 1):
            if self.alg.near_sign(v - best) * larger > 0:
                best, k = v, i
        self.switches[node] = k
        return best

    def _max(self, node: Node):
        return self._extremum(node, 1)

    def _min(self, node: Node):
        return self._extremum(node, -1)

    def _atan2(self, node: Node):
        alg, ar = self.alg, self.ar
        y, x = self(node.args[0]), self(node.args[1])
        sx = ar.sign(alg.base(x)) if not alg.infinite(x) else alg.infinite(x)
        sy = ar.sign(alg.base(y)) if not alg.infinite(y) else alg.infinite(y)
        if sx > 0:
            self.switches[node] = 0
            return self._function("atan", self._binary("Div", y, x))
        if sy:  # sign(y) pi/2 - atan(x/y), smooth wherever y != 0
            self.switches[node] = sy
            half_pi = ar.scale(ar.constant("pi"), Fraction(sy, 2))
            return alg.constant(half_pi) - self._function("atan", self._binary("Div", x, y))
        if sx < 0:  # on the branch cut: pi from above (and on it), -pi from below
            s = self._decide(node, y)
            pi = ar.constant("pi")
            turn = alg.constant(pi if s >= 0 else ar.neg(pi))
            return turn + self._function("atan", self._binary("Div", y, x))
        if isinstance(alg, _Jets):
            raise Undefined(f"{short_text(node)} is undefined at the origin")
        ny, nx = alg.near_sign(y), alg.near_sign(x)  # a ray from the origin
        self.switches[node] = (ny, nx)
        if ny:
            half_pi = ar.scale(ar.constant("pi"), Fraction(ny, 2))
            return alg.constant(half_pi) - self._function("atan", self._binary("Div", x, y))
        if nx:
            return alg.constant(ar.zero if nx > 0 else ar.constant("pi"))
        raise Undefined(f"{short_text(node)} is undefined at the origin")


#: Switch operations -> the Evaluator method that decides them.
_SWITCHES = {"Abs": "_abs", "sign": "_sign", "Heaviside": "_heaviside", "floor": "_floor", "ceiling": "_ceiling",
             "Mod": "_mod", "Max": "_max", "Min": "_min", "atan2": "_atan2"}  # fmt: skip


def _number(text: str) -> Fraction:
    return Fraction(text)


def _check_argument(u0: Num) -> None:
    if magnitude(u0.v) > MAX_ARGUMENT_BITS:
        digits = int(magnitude(u0.v) * math.log10(2))
        raise Unresolvable(f"an argument of about 10**{digits} is beyond what can be evaluated")


# -- from expansions to the quantities ------------------------------------------------------


@dataclass
class Answer:
    """One point's reference: values in the quantity's shape (NaN where none), which
    elements exist, which could not be computed, and why."""

    values: np.ndarray
    defined: np.ndarray
    unknown: np.ndarray
    reason: str | None = None  # why an element does not exist, or is unknown
    digits: list[str] = field(default_factory=list)  # each element to DIGITS significant digits ('' if none)
    note: str | None = None  # where all exist but some at a boundary: how the reference was found


@dataclass
class _Directional:
    """The two-sided Taylor coefficients a_j of t -> f(p + t d), as far as they exist."""

    coefficients: list[Num] = field(default_factory=list)  # a_1, a_2, ...: those that exist
    reason: str | None = None  # why the next one does not
    unknown: str | None = None  # why the next one could not be computed
    boundary: str = ""  # " at the kink of Abs(x)": where a switch changes across the point


class _Point:
    """Everything computed at one point and one working precision."""

    def __init__(self, tree: Node, variables: Sequence[str], point: Sequence[float], prec: int):
        self.tree, self.variables = tree, variables
        self.ar = Arith(prec)
        self.point = [self.ar.exact(float(v)) for v in point]
        self._rays: dict[tuple, tuple] = {}
        self.value_switches: dict[Node, object] = {}

    def value(self) -> Num:
        ev = Evaluator(_Jets(self.ar, self.point, 0), self.variables)
        result = ev(self.tree)
        self.value_switches = ev.switches
        return result.base

    def jet(self, order: int, free: Sequence[int] | None = None) -> Jet:
        """The Taylor polynomial of total order ``order`` in the variables ``free`` (default: all),
        the others held at the point."""
        return Evaluator(_Jets(self.ar, self.point, order, free), self.variables)(self.tree)

    def ray(self, direction: tuple[Fraction, ...], order: int):
        """(series or None, reason, switches) along p + s d."""
        key = (direction, order)
        if key not in self._rays:
            self._rays[key] = self._expand(direction, order)
        return self._rays[key]

    def _expand(self, direction, order):
        ar = self.ar
        d = [ar.exact(c) for c in direction]
        extra = 2
        while True:
            ar.target = Fraction(order + 1 + extra)
            ev = Evaluator(_Ray(ar, self.point, d), self.variables)
            try:
                series = ev(self.tree)
                if series.cut <= order and not series.hard:
                    raise NeedTerms
                return series, None, ev.switches
            except NeedTerms:
                extra += 4
                if extra > MAX_EXTRA_TERMS:
                    raise Unresolvable("cannot tell whether some quantity vanishes identically near the point") \
                        from None  # fmt: skip
            except Undefined as exc:
                return None, exc.reason, ev.switches
            except ValueError:
                return None, "not real", ev.switches
            except ZeroDivisionError:
                return None, "infinite", ev.switches
            except Infinite as exc:
                return None, f"infinite on this side ({exc})", ev.switches

    def directional(self, direction: tuple[Fraction, ...], order: int, f0: Num) -> _Directional:
        ar = self.ar
        out = _Directional()
        minus = tuple(-c for c in direction)
        try:
            right, left = self.ray(direction, order), self.ray(minus, order)
        except Unresolvable as exc:
            out.unknown = str(exc)
            return out
        sides = [(s, side) for s, side in ((1, right), (-1, left)) if side[0] is not None]
        if not sides:
            out.reason = f"not defined on either side of the point ({right[1]})"
            return out
        switch = _switch(self.value_switches, right[2], left[2])
        label = out.boundary = _at(switch)
        for _, (series, _, _) in sides:
            if not series.has_limit():
                out.reason = "infinite on one side" + label
                return out
            if not ar.equal(series.base(), f0):
                if switch is not None and switch.op not in COMPARISONS and switch.op not in ("If", "Piecewise"):
                    out.reason = f"jump of {short_text(switch)}"
                else:
                    out.reason = f"jump (limits {_g(f0)} and {_g(series.base())})" + label
                return out
        for j in range(1, order + 1):
            values = []
            for s, (series, _, _) in sides:
                fractional = series.present(lambda e, j=j: e < j and e.denominator != 1)
                if fractional or series.cut <= j:
                    out.reason = ("infinite one-sided derivative" if fractional else "no one-sided derivative") + label
                    return out
                c = series.terms.get(Fraction(j), ar.zero)
                values.append(c if s > 0 or j % 2 == 0 else ar.neg(c))
            if len(values) == 2 and not ar.equal(*values):
                factorial = math.factorial(j)
                a, b = (_g(ar.scale(v, factorial)) for v in reversed(values))
                kind = "derivatives" if j == 1 else f"derivatives of order {j}"
                out.reason = f"one-sided {kind} differ ({a} and {b})" + label
                return out
            out.coefficients.append(values[0])
        return out


def _g(x: Num) -> str:
    return f"{float(x.v):.10g}"


def _switch(point: dict, right: dict, left: dict) -> Node | None:
    """The first switch decided differently on the two sides (or at the point); in a loop,
    at any one step."""
    for key in {**right, **left}:
        if len({repr(d[key]) for d in (point, right, left) if key in d}) > 1:
            return key if isinstance(key, Node) else key[0]
    return None


def _at(node: Node | None) -> str:
    if node is None:
        return ""
    if node.op in COMPARISONS:
        return f" at the boundary {short_text(node)}"
    if node.op in ("If", "Piecewise"):
        return f" where the pieces of {short_text(node)} meet"
    kind = {"Abs": "kink", "Max": "tie", "Min": "tie", "atan2": "branch cut"}.get(node.op, "jump")
    return f" at the {kind} of {short_text(node)}"


def _unit(n: int, *entries: tuple[int, int]) -> tuple[Fraction, ...]:
    d = [Fraction(0)] * n
    for i, c in entries:
        d[i] += c
    return tuple(d)


@dataclass
class _Entries:
    """The quantity's elements as they are found: values (None where there is none), which
    exist, which could not be computed, why not, and notes on those found at a boundary."""

    values: list = field(default_factory=list)
    defined: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def found(self, value: Num, note: str | None = None) -> None:
        self.values.append(value), self.defined.append(True), self.unknown.append(False)
        if note:
            self.notes.append(note)

    def missing(self, reason: str, unknown: bool = False) -> None:
        self.values.append(None), self.defined.append(False), self.unknown.append(unknown)
        self.reasons.append(reason)

    def copy_of(self, k: int) -> None:
        self.values.append(self.values[k]), self.defined.append(self.defined[k]), self.unknown.append(self.unknown[k])

    def collect(self, found: _Directional, order: int, label: str, scale: int = 1) -> None:
        """The order-th directional derivative (times ``scale``), or why there is none."""
        if len(found.coefficients) >= order:
            c = found.coefficients[order - 1]
            note = (
                found.boundary and f"{label}: the derivative of the function{found.boundary}, whose pieces agree there"
            )
            self.found(Num(c.v * scale, c.e + math.log2(scale)), note)
        else:
            self.missing(f"{label}: {found.unknown or found.reason}", found.unknown is not None)


def _quantity(point: _Point, command: str, f0: Num, extra: Extra) -> _Entries:
    """The elements of a derivative: from one Taylor polynomial where the function is
    smooth (for the rules that have one), else along rays."""
    rule = EXACT[command]
    if rule.from_jet is None:
        return rule.along_rays(point, f0, extra)
    try:
        jet = point.jet(COMMANDS[command].order(extra), None if rule.free is None else rule.free(point, extra))
    except Awkward:
        return rule.along_rays(point, f0, extra)
    entries = _Entries()
    for v in rule.from_jet(point, jet, extra):
        entries.found(v)
    return entries


def _axes(n: int) -> list[tuple[int, ...]]:
    return [tuple(int(i == k) for k in range(n)) for i in range(n)]


def _grad_from_jet(point: _Point, jet, extra: Extra) -> list:
    return [jet.coefficient(e) for e in _axes(len(point.variables))]


def _jvp_from_jet(point: _Point, jet, extra: Extra) -> list:
    ar, total = point.ar, point.ar.zero
    for e, t in zip(_axes(len(point.variables)), extra.tangent):
        total = ar.add(total, ar.mul(jet.coefficient(e), ar.exact(float(t))))
    return [total]


def _hessian_from_jet(point: _Point, jet, extra: Extra) -> list:
    e, ar = _axes(len(point.variables)), point.ar
    return [ar.scale(jet.coefficient(tuple(2 * c for c in a)), 2) if a == b else
            jet.coefficient(tuple(x + y for x, y in zip(a, b)))
            for a in e for b in e]  # fmt: skip


def _first_along(point: _Point, f0: Num, directions: list, labels: list[str]) -> _Entries:
    entries = _Entries()
    for d, label in zip(directions, labels):
        if not any(d):
            entries.found(point.ar.zero)
        else:
            entries.collect(point.directional(d, 1, f0), 1, label)
    return entries


def _grad_along_rays(point: _Point, f0: Num, extra: Extra) -> _Entries:
    n = len(point.variables)
    return _first_along(point, f0, [_unit(n, (i, 1)) for i in range(n)], [f"∂f/∂{v}" for v in point.variables])


def _jvp_along_rays(point: _Point, f0: Num, extra: Extra) -> _Entries:
    return _first_along(point, f0, [_exact_direction(extra.tangent)], ["∂f·t"])


def _exact_direction(tangent) -> tuple[Fraction, ...]:
    return tuple(Fraction(float(t)) for t in tangent)


def _hessian_along_rays(point: _Point, f0: Num, extra: Extra) -> _Entries:
    n = len(point.variables)
    entries = _Entries()
    second = {i: point.directional(_unit(n, (i, 1)), 2, f0) for i in range(n)}
    for i in range(n):
        for j in range(n):
            if i == j:
                entries.collect(second[i], 2, f"∂²f/∂{point.variables[i]}²", scale=2)
            elif j < i:  # symmetric
                entries.copy_of(j * n + i)
            else:
                _mixed(point, i, j, second, f0, f"∂²f/∂{point.variables[i]}∂{point.variables[j]}", entries)
    return entries


def _counts(point: _Point, wrt: tuple[str, ...]) -> tuple[int, ...]:
    """The multi-index of a partial derivative: how many times by each variable."""
    return tuple(wrt.count(v) for v in point.variables)


def _diff_variables(point: _Point, extra: Extra) -> list[int]:
    """The variables a partial derivative is by: its value depends on the function near the
    point in their directions only, so the Taylor polynomial need vary in them alone."""
    return [i for i, v in enumerate(point.variables) if v in extra.wrt]


def _diff_from_jet(point: _Point, jet, extra: Extra) -> list:
    """d^a f = a! c_a, c_a the Taylor coefficient of the monomial x^a (in the variables it is by)."""
    a = [k for k in _counts(point, extra.wrt) if k]
    return [point.ar.scale(jet.coefficient(tuple(a)), math.prod(math.factorial(k) for k in a))]


def _diff_along_rays(point: _Point, f0: Num, extra: Extra) -> _Entries:
    """A pure partial along its axis (the iterated derivative of the function on that line);
    a mixed one of order 2 as the Hessian's; one of higher order is not computed here."""
    n, wrt, entries = len(point.variables), extra.wrt, _Entries()
    label = partial_label("f", wrt)
    axes = sorted({point.variables.index(v) for v in wrt})
    if len(axes) == 1:
        entries.collect(point.directional(_unit(n, (axes[0], 1)), len(wrt), f0), len(wrt), label,
                        scale=math.factorial(len(wrt)))  # fmt: skip
    elif len(wrt) == 2:
        second = {k: point.directional(_unit(n, (k, 1)), 2, f0) for k in axes}
        _mixed(point, *axes, second, f0, label, entries)
    else:
        entries.missing(f"{label}: mixed partial derivatives of order 3 or more are not computed exactly at a "
                        "point where the expression switches or is not smooth", unknown=True)  # fmt: skip
    return entries


def _taylor_along_rays(point: _Point, f0: Num, extra: Extra) -> _Entries:
    """c_0 = f(p), then the two-sided Taylor coefficients of s -> f(p + s t) for as long as
    they exist (each says why where it does not)."""
    entries = _Entries()
    entries.found(f0)
    direction = _exact_direction(extra.tangent)
    if not any(direction):
        for _ in range(extra.order):
            entries.found(point.ar.zero)
        return entries
    found = point.directional(direction, extra.order, f0) if extra.order else None
    for k in range(1, extra.order + 1):
        entries.collect(found, k, f"c{k}")
    return entries


@dataclass(frozen=True)
class _Rule:
    """How the exact reference finds a command's derivative: its entries from the Taylor
    polynomial of the command's order where the function is smooth (None: always along
    rays), and along rays where it may not be."""

    from_jet: Callable | None
    along_rays: Callable
    free: Callable | None = None  # (point, extra) -> the variables the polynomial varies in (None: all)


#: The exact reference, per command (value is the point's value: see :func:`_attempt`).
EXACT = {
    "grad": _Rule(_grad_from_jet, _grad_along_rays),
    "hessian": _Rule(_hessian_from_jet, _hessian_along_rays),
    "jvp": _Rule(_jvp_from_jet, _jvp_along_rays),
    "diff": _Rule(_diff_from_jet, _diff_along_rays, _diff_variables),
    # f(p + s t) as one series in s: the multivariate polynomial of order N is not needed
    "taylor": _Rule(None, _taylor_along_rays),
}


def _mixed(point: _Point, i: int, j: int, second: dict, f0: Num, label: str, entries: _Entries) -> None:
    """d2f/dxi dxj = (D2 along e_i + e_j - D2 along e_i - e_j) / 4, where f is twice
    differentiable in the plane of the two axes: along both axes, both diagonals and two
    more lines (e_i + 2 e_j, 2 e_i - e_j), with first directional derivatives linear in the
    direction and second ones that fit one Hessian (on the diagonals alone that is the
    parallelogram law, which x y (x^2 - y^2)/(x^2 + y^2) at 0 passes: its second
    derivatives along lines are 0 on the axes and diagonals, -12/5 along (1, 2), and its
    mixed partials are -1 and 1). Where a second derivative along an axis does not
    exist, neither does the mixed one: pieces that differ to second order near the point
    can hide between the four lines (log(1 + Min(tanh(x + y), Heaviside(x - y))**2) at 0)."""
    n, ar = len(point.variables), point.ar
    lacking = [first for first in (second[i], second[j]) if not first.coefficients]
    if lacking:  # no first partial: no derivative of it either
        entries.collect(lacking[0], 1, label)
        return
    plus = point.directional(_unit(n, (i, 1), (j, 1)), 2, f0)
    minus = point.directional(_unit(n, (i, 1), (j, -1)), 2, f0)
    for found in (plus, minus):
        if len(found.coefficients) < 2:
            entries.collect(found, 2, label)
            return
    for found in (second[i], second[j]):  # twice differentiable along both axes, too
        if len(found.coefficients) < 2:
            entries.collect(found, 2, label)
            return
    gi, gj = second[i].coefficients[0], second[j].coefficients[0]
    linear = ar.equal(plus.coefficients[0], ar.add(gi, gj)) and ar.equal(minus.coefficients[0], ar.sub(gi, gj))
    diagonal = ar.scale(ar.add(second[i].coefficients[1], second[j].coefficients[1]), 2)
    fits = linear and ar.equal(ar.add(plus.coefficients[1], minus.coefficients[1]), diagonal)
    mixed = ar.scale(ar.sub(plus.coefficients[1], minus.coefficients[1]), Fraction(1, 2))
    if linear and fits:  # two more lines, off the axes and diagonals, that one Hessian must fit too
        for a, b in ((1, 2), (2, -1)):
            probe = point.directional(_unit(n, (i, a), (j, b)), 2, f0)
            if len(probe.coefficients) < 2:
                entries.collect(probe, 2, label)
                return
            first = ar.add(ar.scale(gi, a), ar.scale(gj, b))
            # s^2 coefficient of f(p + s d): (H_ii a^2 + 2 H_ij a b + H_jj b^2)/2, H_ii/2 the axes' coefficients
            expected = ar.add(ar.add(ar.scale(second[i].coefficients[1], a * a), ar.scale(second[j].coefficients[1],
                              b * b)), ar.scale(mixed, a * b))  # fmt: skip
            linear = linear and ar.equal(probe.coefficients[0], first)
            fits = fits and linear and ar.equal(probe.coefficients[1], expected)
    if not (linear and fits):
        why = "not differentiable here" if not linear else "not twice differentiable here"
        entries.missing(f"{label}: {why} (the directional derivatives do not fit one derivative)")
        return
    entries.found(mixed, _note(label, plus.boundary or minus.boundary))


def _note(label: str, boundary: str) -> str | None:
    """Why a reference found at a boundary may differ from the formula of the piece taken."""
    return boundary and f"{label}: the derivative of the function{boundary}, whose pieces agree there"


def _accurate(values: list) -> int:
    """0 when every value has DIGIT_BITS correct bits (or is within 2**-1100 of zero),
    else the bits of precision still missing."""
    missing = 0
    for v in values:
        if v is None or v.exact or v.e < -ZERO_BITS or 2**20 < abs(magnitude(v.v)) < INF:
            continue  # (a value beyond 2**(2**20) or below its reciprocal is inf or 0 in float64 anyway)
        # a zero, give or take its error, until that error is below 2**-ZERO_BITS
        missing = max(missing, v.e + ZERO_BITS + 1 if not v.v else DIGIT_BITS - v.accurate_bits())
    return math.ceil(missing)


def answer(tree: Node, variables: Sequence[str], point: Sequence[float], command: str, extra: Extra = NONE) -> Answer:
    """The reference of ``command`` at one point (see the module's docstring)."""
    n = len(variables)
    shape = COMMANDS[command].shape(n, 0, extra)  # (components of a vector are answered one by one)
    size = int(np.prod(shape)) if shape else 1
    prec = START_BITS
    while True:
        try:
            entries = _attempt(tree, variables, point, command, extra, prec)
            missing = _accurate([v for v in entries.values if v is not None])
            if missing:
                raise NeedPrecision(missing)
            break
        except NeedPrecision as exc:
            prec = max(prec + math.ceil(exc.bits) + 32, prec * 3 // 2)
            if prec > MAX_BITS:
                return _unknown(shape, size, f"needs more than {int(MAX_BITS * math.log10(2))} digits")
        except Unresolvable as exc:
            return _unknown(shape, size, f"the reference cannot be computed here: {exc}")
        except Undefined as exc:
            return Answer(np.full(shape, math.nan), np.zeros(shape, bool), np.zeros(shape, bool), exc.reason)
    values = entries.values
    floats = np.array([math.nan if v is None else _float(v) for v in values], dtype=np.float64).reshape(shape)
    digits = ["" if v is None else mpmath.nstr(v.v, DIGITS, strip_zeros=False) for v in values]
    reason = entries.reasons[0] if entries.reasons else None
    note = entries.notes[0] if entries.notes and not reason else None
    defined, unknown = (np.array(mask, bool).reshape(shape) for mask in (entries.defined, entries.unknown))
    return Answer(floats, defined, unknown, reason, digits, note)


def _float(v: Num) -> float:
    """The nearest float64, also for values far beyond its range (exp(-exp(1250)) is 0.0)."""
    m = magnitude(v.v)
    if m < -1100:
        return math.copysign(0.0, v.v)
    if m > 1100:
        return math.copysign(math.inf, v.v)
    return float(v.v)


def _unknown(shape, size, reason: str) -> Answer:
    return Answer(np.full(shape, math.nan), np.zeros(shape, bool), np.ones(shape, bool), reason)


def _attempt(tree, variables, point, command, extra, prec) -> _Entries:
    p = _Point(tree, variables, point, prec)
    f0 = p.value()
    if command == "value":
        entries = _Entries()
        entries.found(f0)
        return entries
    return _quantity(p, command, f0, extra)


def constant(tree: Node) -> float:
    """A constant expression's value (NaN where it has none; ValueError where it cannot be computed)."""
    result = answer(tree, (), (), "value")
    if result.unknown.any():
        raise ArithmeticError(result.reason)
    return float(result.values)
