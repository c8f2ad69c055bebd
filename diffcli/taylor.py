"""Truncated Taylor arithmetic with error bounds: the numbers behind the exact reference.

Three layers, all on mpmath at a working precision that :mod:`diffcli.exact`
raises until the answer has the digits it needs:

- :class:`Num`: an mpmath value with a bound on its distance from the truth
  (as a power of two; exact values have none). Every operation propagates the
  bound to first order and adds its own rounding, so a result knows how many
  of its bits are right, and cancellation (``(exp(1000) + 1) - exp(1000)``),
  ill-conditioned functions (``log`` near 1, ``sec`` of ``x - 1e308``) and
  exact ties (``x - x``, ``Abs(x)`` at 0) are told apart from ordinary values.
- :class:`Jet`: a Taylor polynomial in several variables, truncated at a
  total order: the value, gradient and Hessian (and any order) of a smooth
  composition at a point, in one pass.
- :class:`Series`: a one-sided expansion in one variable ``s >= 0`` along a
  ray from the point, with rational exponents (``sqrt(s)``), poles and
  removable singularities (``sin(s)/s``), ``log(s)`` terms, functions flatter
  than any power (``exp(-1/s**2)``), and a truncation that says which
  coefficients are known. This is what decides derivatives at kinks, jumps,
  domain boundaries and piece boundaries.

The Taylor coefficients of each function of the language at a point come from
power-series recurrences (:data:`COEFFICIENTS`); SymPy is not involved.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from fractions import Fraction
from functools import cache

import mpmath
from mpmath import libmp

INF = math.inf

#: A quantity known only to lie within 2**-ZERO_BITS of zero is taken to be zero when a
#: sign must be decided: a true value that small rounds to 0 in float64 anyway.
ZERO_BITS = 1100

#: Extra bits for the Taylor coefficients of a function, over the working precision.
GUARD = 24

#: Correct significant digits of every reference value, and the bits that takes (with a margin):
#: two values that cannot be told apart and agree to DIGIT_BITS are equal.
DIGITS = 30
DIGIT_BITS = math.ceil(DIGITS * math.log2(10)) + 4

#: Integer powers up to this one are computed by multiplication (exactly, where the base is exact).
SMALL_POWER = 16


class NeedPrecision(Exception):  # noqa: N818 - a signal to the evaluator
    """The working precision cannot decide or deliver something: raise it by ``bits``."""

    def __init__(self, bits: float):
        super().__init__(bits)
        self.bits = bits


class NeedTerms(Exception):  # noqa: N818 - a signal to the evaluator
    """A series is known to too low an order to decide something: expand further."""


class Unresolvable(Exception):  # noqa: N818 - a signal to the evaluator
    """Nothing this arithmetic can represent settles the question (the reason says what)."""


class Infinite(Exception):  # noqa: N818 - a signal to the evaluator
    """A value grows without bound near the point (``exp(1/s)``)."""


# -- numbers with error bounds ---------------------------------------------------------

_local = threading.local()


def _context() -> mpmath.ctx_mp.MPContext:
    """A private mpmath context per thread: its precision is ours alone."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = mpmath.MPContext()
    return ctx


def magnitude(v) -> float:
    """log2 of an upper bound of |v| (|v| lies in [2**(m-1), 2**m)); -inf for 0. Exponents
    beyond +-ASTRONOMICAL (exp(-exp(1250)) has one of about -10**543) are held as that."""
    return _tuple_magnitude(v._mpf_)


#: Magnitudes (in bits) beyond this are held as +-ASTRONOMICAL: a float still tells
#: m - 200 from m there. Such a value is 0 or +-inf in float64 whatever its digits.
ASTRONOMICAL = float(2**44)


def _tuple_magnitude(t) -> float:
    """:func:`magnitude` of a raw mpf tuple."""
    _, man, exp, bc = t
    if not man:
        return -INF
    m = exp + bc
    return float(m) if -ASTRONOMICAL < m < ASTRONOMICAL else ASTRONOMICAL if m > 0 else -ASTRONOMICAL


def lse(*es: float) -> float:
    """log2(sum(2**e)): the bound of a sum of errors, each given as a power of two."""
    m = max(es)
    if m == -INF:
        return -INF
    return m + math.log2(sum(2.0 ** (e - m) for e in es))


class Num:
    """A value (an mpf of the working context) and ``e``: log2 of a bound on its error."""

    __slots__ = ("e", "v")

    def __init__(self, v, e: float = -INF):
        self.v = v
        self.e = e

    @property
    def exact(self) -> bool:
        return self.e == -INF

    @property
    def is_zero(self) -> bool:
        """Exactly zero (not: close to zero)."""
        return self.e == -INF and not self.v._mpf_[1]

    def accurate_bits(self) -> float:
        """Correct leading bits (inf for exact values)."""
        return magnitude(self.v) - self.e

    def __repr__(self) -> str:
        return f"Num({mpmath.nstr(self.v, 20)}, 2**{self.e})"


class Arith:
    """Arithmetic on :class:`Num` at one working precision (bits)."""

    def __init__(self, prec: int):
        ctx = _context()
        ctx.prec = prec
        self.ctx, self.prec = ctx, prec
        self.zero, self.one = Num(ctx.zero), Num(ctx.one)
        #: The exponent below which series are expanded (set by whoever evaluates them).
        self.target = Fraction(4)

    # -- making numbers

    def exact(self, value: int | float | Fraction) -> Num:
        """An exact Num where the value is a finite binary fraction, else the nearest."""
        if isinstance(value, Fraction):
            if value.denominator & (value.denominator - 1) == 0:  # a power of two
                t = libmp.from_man_exp(value.numerator, -(value.denominator.bit_length() - 1))
                return Num(self.ctx.make_mpf(t))
            return self.div(self.exact(value.numerator), self.exact(value.denominator))
        if isinstance(value, int):
            return Num(self.ctx.make_mpf(libmp.from_int(value)))
        return Num(self.ctx.make_mpf(libmp.from_float(value)))

    def rounded(self, v, e: float = -INF, extra: float = 0) -> Num:
        """``v`` (an mpf, possibly of more bits) rounded to the working precision; ``e``
        is its error before rounding, ``extra`` ulps (of the working precision) of error
        it carries already (a computed function value)."""
        t = v._mpf_
        if t[1] and (extra or t[3] > self.prec):
            e = lse(e, magnitude(v) - self.prec + math.log2(extra + 1))
            t = libmp.mpf_pos(t, self.prec, "n")
        return Num(self.ctx.make_mpf(t), e)

    def exponent(self, a: Num) -> Fraction:
        """A constant as an exponent of s: the integer it is, when it certainly is one
        (or cannot be told from one), else its value as an exact binary fraction."""
        n, exact = self.nearest_integer(a)
        if exact:
            return Fraction(n)
        man, exp = a.v.man_exp
        return Fraction(man) * Fraction(2) ** exp

    def constant(self, name: str) -> Num:
        v = {"pi": self.ctx.pi, "E": self.ctx.e}[name]
        return Num(+v, magnitude(v) - self.prec)

    # -- the four operations

    def add(self, a: Num, b: Num) -> Num:
        x, y = a.v._mpf_, b.v._mpf_
        if not y[1] and b.e == -INF:
            return a
        if not x[1] and a.e == -INF:
            return b
        if a.e == b.e == -INF and abs((x[2] + x[3]) - (y[2] + y[3])) <= 2 * self.prec:
            t = libmp.mpf_add(x, y, 0)
            if t[3] <= self.prec:
                return Num(self.ctx.make_mpf(t))
        t = libmp.mpf_add(x, y, self.prec, "n")
        return Num(self.ctx.make_mpf(t), lse(a.e, b.e, _tuple_magnitude(t) - self.prec))

    def neg(self, a: Num) -> Num:
        return Num(-a.v, a.e)

    def sub(self, a: Num, b: Num) -> Num:
        if a is b:  # one computed value less itself: exactly 0, however inexact the value
            return self.zero
        return self.add(a, self.neg(b))

    def mul(self, a: Num, b: Num) -> Num:
        x, y = a.v._mpf_, b.v._mpf_
        if a.e == b.e == -INF:
            if not x[1] or not y[1]:
                return self.zero
            if x[3] + y[3] <= self.prec:
                return Num(self.ctx.make_mpf(libmp.mpf_mul(x, y, 0)))
        t = libmp.mpf_mul(x, y, self.prec, "n")
        ma, mb = magnitude(a.v), magnitude(b.v)
        e = lse(ma + b.e, mb + a.e, a.e + b.e, _tuple_magnitude(t) - self.prec)
        return Num(self.ctx.make_mpf(t), e)

    def div(self, a: Num, b: Num) -> Num:
        """a / b; b's sign must be certain (see :meth:`sign`)."""
        x, y = a.v._mpf_, b.v._mpf_
        t = libmp.mpf_div(x, y, self.prec, "n")
        if a.e == b.e == -INF and (not t[1] or libmp.mpf_mul(t, y, 0) == x):
            return Num(self.ctx.make_mpf(t))
        mb, mr = magnitude(b.v), _tuple_magnitude(t)
        e = lse(a.e - mb + 1, mr + b.e - mb + 2, mr - self.prec)
        return Num(self.ctx.make_mpf(t), e)

    def scale(self, a: Num, k: int | Fraction) -> Num:
        return self.mul(a, self.exact(k)) if isinstance(k, int) else self.div(self.mul(a, self.exact(k.numerator)),
                                                                             self.exact(k.denominator))  # fmt: skip

    # -- deciding

    def sign(self, a: Num) -> int:
        """The sign of the true value, or NeedPrecision while the bound straddles zero.
        A value within 2**-ZERO_BITS of zero that cannot be told from it is zero."""
        m = magnitude(a.v)
        if m == -INF:
            if a.e == -INF or a.e < -ZERO_BITS:
                return 0
            raise NeedPrecision(a.e + ZERO_BITS + 16)
        if abs(m) == ASTRONOMICAL or a.e < m - 2:  # (an astronomical value: its error is relative)
            return -1 if a.v._mpf_[0] else 1
        if a.e < -ZERO_BITS:
            return 0
        raise NeedPrecision(min(a.e - m + 16, a.e + ZERO_BITS + 16))

    def compare(self, a: Num, b: Num) -> int:
        return self.sign(self.sub(a, b))

    def equal(self, a: Num, b: Num) -> bool:
        """Whether two values agree: False when they certainly differ, True when they
        cannot be told apart and agree to DIGIT_BITS (or within 2**-ZERO_BITS)."""
        d = self.sub(a, b)
        m = magnitude(d.v)
        if m > d.e + 1:
            return False
        scale = max(magnitude(a.v), magnitude(b.v))
        if d.e <= scale - DIGIT_BITS or d.e < -ZERO_BITS:
            return True
        raise NeedPrecision(min(d.e - scale + DIGIT_BITS, d.e + ZERO_BITS) + 8)

    def nearest_integer(self, a: Num) -> tuple[int, bool]:
        """(n, whether a is that integer): the integer nearest a, and whether the true
        value is it (NeedPrecision while that cannot be told)."""
        n = int(self.ctx.nint(a.v))
        return n, self.sign(self.sub(a, self.exact(n))) == 0

    def is_integer(self, a: Num) -> bool:
        return self.nearest_integer(a)[1]

    # -- functions of one number

    def apply(self, fn: Callable, a: Num, derivative: Callable) -> Num:
        """fn(a), computed with GUARD extra bits by functions of the working context
        (``fn(ctx, x)``); its error comes from a's through ``derivative(ctx, x)``."""
        ctx = self.ctx
        with ctx.extraprec(GUARD):
            v = fn(ctx, a.v)
            if a.e == -INF:
                if not v._mpf_[1]:
                    return self.zero
                return self.rounded(v, extra=4)
            d_mag = magnitude(derivative(ctx, a.v))
        return self.rounded(v, d_mag + a.e + 1, extra=4)


# -- Taylor coefficients of the functions of the language, at a point -----------------
# Plain mpf power series (lists, truncated at n terms) at GUARD extra bits. Each
# function's series at u0 is its Taylor expansion in t of f(u0 + t).


def _ps_mul(ctx, a, b, n):
    return [ctx.fsum(a[i] * b[k - i] for i in range(k + 1) if i < len(a) and k - i < len(b)) for k in range(n)]


def _ps_div(ctx, a, b, n):
    """a / b; leading zeros common to both are divided out first (sin(t)/t at 0)."""
    while b and not b[0]:
        if a and a[0]:
            raise ZeroDivisionError
        a, b = a[1:], b[1:]
    if not b:
        raise ZeroDivisionError
    a = a + [ctx.zero] * (n - len(a))
    b = b + [ctx.zero] * (n - len(b))
    out = []
    for k in range(n):
        out.append((a[k] - ctx.fsum(b[i] * out[k - i] for i in range(1, k + 1))) / b[0])
    return out


def _ps_pow(ctx, a, alpha, n):
    """a**alpha, a[0] > 0 (any a[0] != 0 for an integer alpha)."""
    a = a + [ctx.zero] * (n - len(a))
    out = [ctx.power(a[0], alpha)]
    for k in range(1, n):
        out.append(ctx.fsum((alpha * i - (k - i)) * a[i] * out[k - i] for i in range(1, k + 1)) / (k * a[0]))
    return out


def _ps_exp(ctx, a, n):
    a = a + [ctx.zero] * (n - len(a))
    out = [ctx.exp(a[0])]
    for k in range(1, n):
        out.append(ctx.fsum(i * a[i] * out[k - i] for i in range(1, k + 1)) / k)
    return out


def _ps_integral(ctx, a, c0, n):
    return [c0] + [a[k - 1] / k for k in range(1, n)]


def _line(ctx, u0):
    return [u0, ctx.one]


def _square(ctx, u0, n):
    return _ps_mul(ctx, _line(ctx, u0), _line(ctx, u0), n)


def _cyclic(values, n):
    """c_j = values[j % len] / j!"""
    out, fact = [], 1
    for j in range(n):
        fact *= max(j, 1)
        out.append(values[j % len(values)] / fact)
    return out


def _sin(ctx, u0, n):
    s, c = ctx.sin(u0), ctx.cos(u0)
    return _cyclic([s, c, -s, -c], n)


def _cos(ctx, u0, n):
    s, c = ctx.sin(u0), ctx.cos(u0)
    return _cyclic([c, -s, -c, s], n)


def _sinh(ctx, u0, n):
    return _cyclic([ctx.sinh(u0), ctx.cosh(u0)], n)


def _cosh(ctx, u0, n):
    return _cyclic([ctx.cosh(u0), ctx.sinh(u0)], n)


def _exp(ctx, u0, n):
    return _cyclic([ctx.exp(u0)], n)


def _log(ctx, u0, n):
    return [ctx.log(u0)] + [(-1) ** (j + 1) / (j * u0**j) for j in range(1, n)]


def _power(alpha: Fraction):
    def series(ctx, u0, n):
        a = ctx.mpf(alpha.numerator) / alpha.denominator
        out, binom = [], ctx.one
        base = ctx.power(u0, a)
        for j in range(n):
            out.append(base * binom / u0**j)
            binom = binom * (a - j) / (j + 1)
        return out

    return series


def _cbrt(ctx, u0, n):
    sign = -1 if u0 < 0 else 1
    return [sign * c for c in _ps_pow(ctx, [abs(u0), ctx.mpf(sign)], ctx.mpf(1) / 3, n)]


def _reciprocal(ctx, u0, n):
    return [(-1) ** j / u0 ** (j + 1) for j in range(n)]


def _asin(ctx, u0, n):
    one_minus = [ctx.one - c for c in _square(ctx, u0, n)[:1]] + [-c for c in _square(ctx, u0, n)[1:]]
    return _ps_integral(ctx, _ps_pow(ctx, one_minus, ctx.mpf(-0.5), n), ctx.asin(u0), n)


def _acos(ctx, u0, n):
    return [ctx.acos(u0)] + [-c for c in _asin(ctx, u0, n)[1:]]


def _atan(ctx, u0, n):
    one_plus = _square(ctx, u0, n)
    one_plus[0] += 1
    return _ps_integral(ctx, _ps_div(ctx, [ctx.one], one_plus, n), ctx.atan(u0), n)


def _asinh(ctx, u0, n):
    one_plus = _square(ctx, u0, n)
    one_plus[0] += 1
    return _ps_integral(ctx, _ps_pow(ctx, one_plus, ctx.mpf(-0.5), n), ctx.asinh(u0), n)


def _acosh(ctx, u0, n):
    minus_one = _square(ctx, u0, n)
    minus_one[0] -= 1
    return _ps_integral(ctx, _ps_pow(ctx, minus_one, ctx.mpf(-0.5), n), ctx.acosh(u0), n)


def _atanh(ctx, u0, n):
    one_minus = [-c for c in _square(ctx, u0, n)]
    one_minus[0] += 1
    return _ps_integral(ctx, _ps_div(ctx, [ctx.one], one_minus, n), ctx.atanh(u0), n)


def _tan(ctx, u0, n):
    return _ps_div(ctx, _sin(ctx, u0, n), _cos(ctx, u0, n), n)


def _sec(ctx, u0, n):
    return _ps_div(ctx, [ctx.one], _cos(ctx, u0, n), n)


def _csc(ctx, u0, n):
    return _ps_div(ctx, [ctx.one], _sin(ctx, u0, n), n)


def _cot(ctx, u0, n):
    return _ps_div(ctx, _cos(ctx, u0, n), _sin(ctx, u0, n), n)


def _tanh(ctx, u0, n):
    if abs(u0) > 2**64:  # +-1 within 2*exp(-2**65), and so flat; sinh and cosh would not fit
        return [ctx.sign(u0)] + [ctx.zero] * (n - 1)
    return _ps_div(ctx, _sinh(ctx, u0, n), _cosh(ctx, u0, n), n)


def _erf_near(ctx, u0, n):
    minus_square = [-c for c in _square(ctx, u0, n)]
    density = [2 / ctx.sqrt(ctx.pi) * c for c in _ps_exp(ctx, minus_square, n)]
    return _ps_integral(ctx, density, ctx.erf(u0), n)


#: Beyond this, erfc(x) is its asymptotic series (mpmath's own fails past about 2**500).
_ERFC_ASYMPTOTIC = 2**64


def _erf(ctx, u0, n):
    if abs(u0) > _ERFC_ASYMPTOTIC:  # +-1 and derivatives of exp(-u0**2): below 2**-(2**128)
        if abs(u0) > 2**2048:
            raise Unresolvable("erf or erfc of a number beyond 2**2048")
        return [ctx.sign(u0) * (1 - _erfc_far(ctx, abs(u0))), *_erf_near(ctx, u0, n)[1:]]
    return _erf_near(ctx, u0, n)


def _erfc_far(ctx, x):
    """erfc(x) for x > 2**64: exp(-x**2)/(x sqrt(pi)) (1 - 1/(2x**2) + ...), the next term below 2**-256."""
    return ctx.exp(-x * x) / (x * ctx.sqrt(ctx.pi)) * (1 - 1 / (2 * x * x))


def _erfc(ctx, u0, n):
    value = _erfc_far(ctx, u0) if u0 > _ERFC_ASYMPTOTIC else 2 - _erfc_far(ctx, -u0) if u0 < -_ERFC_ASYMPTOTIC \
        else ctx.erfc(u0)  # fmt: skip
    return [value] + [-c for c in _erf(ctx, u0, n)[1:]]


def _polygammas(ctx, u0, n):
    """[0, psi(0, u0)/1!, psi(1, u0)/2!, ...]: the series of loggamma(u0 + t) - loggamma(u0)."""
    out, fact = [ctx.zero], 1
    for j in range(1, n):
        fact *= j
        out.append(ctx.psi(j - 1, u0) / fact)
    return out


def _gamma(ctx, u0, n):
    return [ctx.gamma(u0) * c for c in _ps_exp(ctx, _polygammas(ctx, u0, n), n)]


def _loggamma(ctx, u0, n):
    return [ctx.loggamma(u0), *_polygammas(ctx, u0, n)[1:]]


def _sinc(ctx, u0, n):
    return _ps_div(ctx, _sin(ctx, u0, n + 1), _line(ctx, u0), n)


#: name -> series(ctx, u0, n): the first n Taylor coefficients of the function at u0,
#: where it is analytic (the caller checks the domain).
COEFFICIENTS: dict[str, Callable] = {
    "exp": _exp, "log": _log, "sqrt": _power(Fraction(1, 2)), "cbrt": _cbrt, "reciprocal": _reciprocal,
    "sin": _sin, "cos": _cos, "tan": _tan, "sec": _sec, "csc": _csc, "cot": _cot,
    "asin": _asin, "acos": _acos, "atan": _atan,
    "sinh": _sinh, "cosh": _cosh, "tanh": _tanh, "asinh": _asinh, "acosh": _acosh, "atanh": _atanh,
    "erf": _erf, "erfc": _erfc, "gamma": _gamma, "loggamma": _loggamma, "sinc": _sinc,
}  # fmt: skip


_NAMES = {series: name for name, series in COEFFICIENTS.items()}


def power_coefficients(alpha: Num) -> Callable:
    """The series of t -> (u0 + t)**alpha (u0 > 0, or any u0 != 0 for an integer alpha)."""
    return lambda ctx, u0, n: _ps_pow(ctx, [u0, ctx.one], alpha.v, n)


#: Functions whose value at an exact 0 is exactly 1 (an exact tie or integer can depend on it).
_ONE_AT_ZERO = frozenset(("exp", "cos", "cosh", "sinc", "erfc"))


def coefficients(ar: Arith, series: Callable, u0: Num, n: int) -> list[Num]:
    """The first n Taylor coefficients at u0 as Nums: each one's error comes from u0's
    through the next coefficient (d c_j / d u0 = (j + 1) c_{j+1}), plus rounding."""
    ctx = ar.ctx
    with ctx.extraprec(GUARD):
        raw = series(ctx, u0.v, n + 1)
    out = []
    for j in range(n):
        c = raw[j]
        if u0.exact and (not c._mpf_[1] or (j == 0 and u0.is_zero and _NAMES.get(series) in _ONE_AT_ZERO)):
            out.append(ar.rounded(c))  # an exact zero, or exactly 1
            continue
        propagated = magnitude(raw[j + 1]) + math.log2(j + 1) + u0.e if j + 1 < len(raw) else -INF
        out.append(ar.rounded(c, propagated, extra=16))
    return out


# -- multivariate jets ----------------------------------------------------------------


class _Monomials:
    """Exponent tuples of n variables up to total degree K, graded, with the product table."""

    def __init__(self, n: int, order: int):
        by_degree = [[tuple([0] * n)]]
        for _ in range(order):
            level = sorted(
                {tuple(e + (k == i) for k, e in enumerate(m)) for m in by_degree[-1] for i in range(n)}, reverse=True
            )
            by_degree.append(level)
        monomials = [m for level in by_degree for m in level]
        self.n, self.order = n, order
        self.list = monomials
        self.index = {m: i for i, m in enumerate(monomials)}
        self.degree = [sum(m) for m in monomials]
        self.products = [
            [(j, self.index[tuple(a + b for a, b in zip(m, o))]) for j, o in enumerate(monomials)
             if self.degree[i] + self.degree[j] <= order]
            for i, m in enumerate(monomials)
        ]  # fmt: skip


@cache
def monomials(n: int, order: int) -> _Monomials:
    return _Monomials(n, order)


class Jet:
    """f(p + h) = sum over monomials of c_a h^a, to total order K; ``None`` is an exact zero.

    ``varies``: whether it was computed from a variable. A truncated polynomial cannot tell
    a constant from a function flat to order K (cos(x) - 1 at 0, to order 1), so only one
    computed from constants alone is taken to be constant."""

    __slots__ = ("ar", "c", "shape", "varies")

    def __init__(self, ar: Arith, shape: _Monomials, c: list, varies: bool = True):
        self.ar, self.shape, self.c, self.varies = ar, shape, c, varies

    @classmethod
    def constant(cls, ar: Arith, shape: _Monomials, value: Num) -> Jet:
        return cls(ar, shape, [None if value.is_zero else value] + [None] * (len(shape.list) - 1), False)

    @classmethod
    def variable(cls, ar: Arith, shape: _Monomials, i: int, value: Num) -> Jet:
        jet = cls.constant(ar, shape, value)
        jet.varies = True
        if shape.order:
            jet.c[1 + i] = ar.one
        return jet

    @property
    def base(self) -> Num:
        return self.c[0] or self.ar.zero

    @property
    def locally_constant(self) -> bool:
        return not self.varies

    def _zip(self, other: Jet, op) -> Jet:
        out = []
        for a, b in zip(self.c, other.c):
            out.append(b if a is None else a if b is None else _nonzero(op(a, b)))
        return Jet(self.ar, self.shape, out, self.varies or other.varies)

    def __add__(self, other: Jet) -> Jet:
        return self._zip(other, self.ar.add)

    def __sub__(self, other: Jet) -> Jet:
        if other is self:  # the same sub-expression twice (Max(sin(x), sin(x))): exactly 0
            return Jet(self.ar, self.shape, [None] * len(self.c), self.varies)
        return self + (-other)

    def __neg__(self) -> Jet:
        return Jet(self.ar, self.shape, [None if c is None else self.ar.neg(c) for c in self.c], self.varies)

    def __mul__(self, other: Jet) -> Jet:
        ar, out = self.ar, [None] * len(self.c)
        if all(c is None for c in self.c[1:]):
            return other.scaled(self.base, self.varies)
        if all(c is None for c in other.c[1:]):
            return self.scaled(other.base, other.varies)
        products = self.shape.products
        for i, a in enumerate(self.c):
            if a is None:
                continue
            for j, k in products[i]:
                b = other.c[j]
                if b is not None:
                    term = ar.mul(a, b)
                    out[k] = term if out[k] is None else ar.add(out[k], term)
        return Jet(ar, self.shape, [_nonzero(c) for c in out])

    def scaled(self, k: Num, varies: bool = False) -> Jet:
        """self * k (``varies``: k was computed from a variable)."""
        varies = varies or self.varies
        if k.is_zero:
            return Jet(self.ar, self.shape, [None] * len(self.c), varies)
        return Jet(self.ar, self.shape, [None if c is None else _nonzero(self.ar.mul(c, k)) for c in self.c], varies)

    def compose(self, coeffs: list[Num]) -> Jet:
        """sum_j coeffs[j] (self - base)**j: a function of self, from its Taylor coefficients at base."""
        result = Jet.constant(self.ar, self.shape, coeffs[0])
        result.varies = self.varies
        delta = Jet(self.ar, self.shape, [None, *self.c[1:]], self.varies)
        power = delta
        for j in range(1, min(self.shape.order, len(coeffs) - 1) + 1):
            result = result + power.scaled(coeffs[j])
            power = power * delta
        return result

    def coefficient(self, exponents: tuple[int, ...]) -> Num:
        return self.c[self.shape.index[exponents]] or self.ar.zero


def _nonzero(c: Num | None) -> Num | None:
    return None if c is None or c.is_zero else c


# -- one-sided series in one variable -------------------------------------------------


class Series:
    """f(p + s d) for s -> 0+: sum of c_e s**e (rational e, possibly negative), plus
    ``log`` * log(s) when ``log`` is set, known for exponents below ``cut``.

    ``hard``: cut is intrinsic (a log(s) term, an oscillation: no more terms exist to
    compute), not a truncation that a longer expansion would lift. ``flat``: the sign of a
    remainder smaller than every power (exp(-1/s)), 0 when there is none, 2 when its sign
    is unknown. With no terms, cut = 0 and ``hard``, the series is bounded with no limit (sin(1/s)).
    """

    __slots__ = ("ar", "cut", "flat", "hard", "log", "terms")

    def __init__(self, ar: Arith, terms: dict, cut=INF, hard: bool = False, log: Num | None = None, flat: int = 0):
        self.ar = ar
        self.terms = {e: c for e, c in terms.items() if e < cut and not c.is_zero}
        self.cut, self.hard, self.log, self.flat = cut, hard, log, flat

    @classmethod
    def constant(cls, ar: Arith, value: Num) -> Series:
        return cls(ar, {Fraction(0): value})

    @classmethod
    def line(cls, ar: Arith, base: Num, slope: Num) -> Series:
        return cls(ar, {Fraction(0): base, Fraction(1): slope})

    def copy(self, **changes) -> Series:
        fields = {"terms": self.terms, "cut": self.cut, "hard": self.hard, "log": self.log, "flat": self.flat}
        return Series(self.ar, **(fields | changes))

    # -- shape

    @property
    def exactly_zero(self) -> bool:
        return not self.terms and self.cut == INF and self.log is None and not self.flat

    @property
    def locally_constant(self) -> bool:
        return set(self.terms) <= {0} and self.cut == INF and self.log is None and not self.flat

    def valuation(self):
        """The lowest exponent present (cut when none is: everything below cut is zero)."""
        return min(self.terms, default=self.cut)

    def base(self) -> Num:
        """The limit as s -> 0+, for a series that has one (no pole, no log term)."""
        return self.terms.get(Fraction(0), self.ar.zero)

    def present(self, exponents: Callable[[Fraction], bool]) -> bool:
        """Whether a term of one of these exponents has a coefficient that is not zero within
        its error bound (one that cancelled to within 2**-ZERO_BITS is no pole and no
        fractional power)."""
        return any(self.ar.sign(c) for e, c in self.terms.items() if exponents(e))

    def has_limit(self) -> bool:
        return self.log is None and not self.present(lambda e: e < 0) and self.cut > 0

    def leading(self):
        """(exponent, coefficient) of the first term that is certainly not zero; None when
        there is none (an exact zero, or only a flat remainder)."""
        ar = self.ar
        for e in sorted(self.terms):
            if ar.sign(self.terms[e]):
                return e, self.terms[e]
        if self.cut == INF:
            return None
        if self.hard:
            raise Unresolvable("it oscillates or has no expansion there")
        raise NeedTerms

    def sign(self) -> int:
        """The sign of f(p + s d) for all small s > 0."""
        if self.log is not None and not self.present(lambda e: e < 0):
            return -self.ar.sign(self.log)  # log(s) -> -inf dominates every power
        lead = self.leading()
        if lead is not None:
            return self.ar.sign(lead[1])
        if self.flat == 2:
            raise Unresolvable("cannot tell the sign of a remainder flatter than any power")
        return self.flat

    def infinite(self) -> int:
        """+-1 when f -> +-inf as s -> 0+ (a pole, or a log term), else 0."""
        if self.log is None and not self.present(lambda e: e < 0):
            return 0
        return self.sign()

    # -- arithmetic

    def __neg__(self) -> Series:
        ar = self.ar
        return self.copy(terms={e: ar.neg(c) for e, c in self.terms.items()},
                         log=None if self.log is None else ar.neg(self.log),
                         flat=-self.flat if self.flat in (1, -1) else self.flat)  # fmt: skip

    def __add__(self, other: Series) -> Series:
        ar = self.ar
        cut, hard = _min_truncation((self.cut, self.hard), (other.cut, other.hard))
        terms = dict(self.terms)
        for e, c in other.terms.items():
            terms[e] = ar.add(terms[e], c) if e in terms else c
        if self.log is None or other.log is None:
            log = self.log if other.log is None else other.log
        else:
            log = ar.add(self.log, other.log)
        log = None if log is None or log.is_zero else log
        return Series(ar, terms, cut, hard, log, _flat_sum(self.flat, other.flat))

    def __sub__(self, other: Series) -> Series:
        if other is self:  # the same sub-expression twice (Max(sin(x), sin(x))): exactly 0
            return Series(self.ar, {})
        return self + (-other)

    def __mul__(self, other: Series) -> Series:
        if self.log is not None and other.log is not None:
            raise Unresolvable("a product of two logarithms that both grow near the point")
        if other.log is not None:
            return other * self
        ar = self.ar
        va, vb = self.valuation(), other.valuation()
        cut, hard = _min_truncation((self.cut + vb, self.hard), (other.cut + va, other.hard))
        if self.cut == INF and other.cut == INF and len(self.terms) * len(other.terms) > 256:
            cut, hard = _min_truncation((cut, hard), (ar.target, False))
        terms: dict = {}
        for e1, c1 in self.terms.items():
            for e2, c2 in other.terms.items():
                e = e1 + e2
                if e < cut:
                    term = ar.mul(c1, c2)
                    terms[e] = ar.add(terms[e], term) if e in terms else term
        flat = _flat_product(self, other)
        result = Series(ar, terms, cut, hard, flat=flat)
        if self.log is None:
            return result
        # (L log s) * other: L*other_0 log s, plus L*(other - other_0) log s, a term
        # s**v log s (v the valuation of other - other_0) that no power series holds.
        rest = other.copy(terms={e: c for e, c in other.terms.items() if e != 0})
        if rest.terms and min(rest.terms) < 0:
            raise Unresolvable("a logarithm times a pole")
        if not rest.exactly_zero:
            v = rest.valuation()
            result = result.copy(cut=min(result.cut, v), hard=result.hard or v <= result.cut)
        base = other.terms.get(Fraction(0))
        log = None if base is None else ar.mul(self.log, base)
        return result.copy(log=log)

    def scaled(self, k: Num) -> Series:
        return self * Series.constant(self.ar, k)

    def shifted(self, exponent: Fraction) -> Series:
        """self * s**exponent."""
        if self.log is not None:
            raise Unresolvable("a logarithm times a power")
        return self.copy(terms={e + exponent: c for e, c in self.terms.items()}, cut=self.cut + exponent)

    def split(self, v, c: Num) -> Series:
        """w such that self = c s**v (1 + w), for its leading term c s**v (terms below it,
        if any, are zero within their error bounds: see :meth:`leading`)."""
        ar = self.ar
        rest = self.copy(terms={e: x for e, x in self.terms.items() if e > v})
        return rest.shifted(-v).scaled(ar.div(ar.one, c))

    def reciprocal(self) -> Series:
        """1/self near s = 0+: a pole where self vanishes."""
        if self.log is not None:
            raise Unresolvable("the reciprocal of a logarithm")
        lead = self.leading()
        if lead is None:
            if self.flat:  # exp(1/s**2): no power series holds it, and a quotient of flat values may be finite
                raise Unresolvable("the reciprocal of a value flatter than any power")
            raise ZeroDivisionError
        v, c = lead
        ar = self.ar
        inverse = self.split(v, c).compose(COEFFICIENTS["reciprocal"], ar.one)
        return inverse.shifted(-v).scaled(ar.div(ar.one, c))

    def __truediv__(self, other: Series) -> Series:
        return self * other.reciprocal()

    def compose(self, series: Callable, u0: Num | None = None) -> Series:
        """g(self), from the Taylor coefficients of g at the limit u0 = self's constant term
        (or at the u0 given, when self is the increment from u0)."""
        ar = self.ar
        if u0 is None:
            u0 = self.base()
            delta = self.copy(terms={e: c for e, c in self.terms.items() if e != 0})
        else:
            delta = self
        if delta.exactly_zero:
            return Series.constant(ar, coefficients(ar, series, u0, 1)[0])
        v = delta.valuation()
        if v <= 0:
            raise Unresolvable("an argument with no limit")
        cut, hard = _min_truncation((delta.cut, delta.hard), (ar.target, False))
        count = max(0, math.ceil(cut / v) - 1)
        coeffs = coefficients(ar, series, u0, count + 1)
        result = Series.constant(ar, coeffs[0])
        if delta.flat and not delta.terms:  # g(u0 + flat): g(u0) plus a flat part of g'(u0)'s sign
            slope = coefficients(ar, series, u0, 2)[1]
            return result.copy(flat=_flat_sum(0, delta.flat * ar.sign(slope)) if ar.sign(slope) else 0)
        power = delta
        for j in range(1, count + 1):
            result = result + power.scaled(coeffs[j])
            power = power * delta
        cut, hard = _min_truncation((result.cut, result.hard), (cut, hard))
        return result.copy(cut=cut, hard=hard)

    # -- the functions that need more than a Taylor expansion near the point

    def power(self, alpha: Num, alpha_exponent: Fraction, integer: bool) -> Series:
        """self**alpha for a constant alpha: c**alpha s**(v alpha) (1 + w)**alpha."""
        ar = self.ar
        if self.log is not None:
            raise Unresolvable("a power of a logarithm that grows near the point")
        lead = self.leading()
        if lead is None:
            if self.flat and ar.sign(alpha) > 0:
                return Series(ar, {}, flat=self.flat if integer or self.flat > 0 else 2)
            if self.flat:
                raise Infinite("a negative power of a value flatter than any power")
            if ar.sign(alpha) > 0:
                return Series(ar, {})
            if ar.sign(alpha) == 0:
                return Series.constant(ar, ar.one)
            raise ZeroDivisionError
        v, c = lead
        if ar.sign(c) < 0 and not integer:
            raise ValueError("not real")
        if integer and 0 <= alpha_exponent <= SMALL_POWER:  # by multiplication: exact where self is
            result = Series.constant(ar, ar.one)
            for _ in range(int(alpha_exponent)):
                result = result * self
            return result
        grown = self.split(v, c).compose(power_coefficients(alpha), ar.one)
        magnitude = ar.apply(
            lambda ctx, x: ctx.power(abs(x), alpha.v), c, lambda ctx, x: alpha.v * ctx.power(abs(x), alpha.v - 1)
        )
        if ar.sign(c) < 0 and alpha_exponent.denominator == 1 and alpha_exponent.numerator % 2:
            magnitude = ar.neg(magnitude)
        return grown.scaled(magnitude).shifted(v * alpha_exponent)

    def logarithm(self) -> Series:
        ar = self.ar
        if self.log is not None:
            raise Unresolvable("the logarithm of a logarithm that grows near the point")
        lead = self.leading()
        if lead is None:
            if self.flat:
                raise Unresolvable("the logarithm of a value flatter than any power")
            raise ZeroDivisionError
        v, c = lead
        if ar.sign(c) < 0:
            raise ValueError("not real")
        log_c = ar.apply(lambda ctx, x: ctx.log(x), c, lambda ctx, x: 1 / x)
        result = self.split(v, c).compose(COEFFICIENTS["log"], ar.one) + Series.constant(ar, log_c)
        return result.copy(log=None if v == 0 else ar.exact(v))

    def exponential(self) -> Series:
        ar = self.ar
        finite = self.copy(log=None, terms={e: c for e, c in self.terms.items() if e >= 0})
        poles = self.copy(log=None, terms={e: c for e, c in self.terms.items() if e < 0}, cut=INF, hard=False, flat=0)
        if poles.terms:
            if poles.sign() < 0:
                return Series(ar, {}, flat=1)
            raise Infinite("exp of a value that grows without bound")
        result = finite.compose(COEFFICIENTS["exp"]) if finite.has_limit() else None
        if result is None:
            raise Unresolvable("exp of a value with no limit")
        if self.log is not None:  # exp(L log s + H) = s**L exp(H)
            result = result.shifted(ar.exponent(self.log))
        return result


def _min_truncation(*pairs):
    """(cut, hard) of the lowest truncation; hard when a hard one attains it."""
    cut = min(t for t, _ in pairs)
    return cut, any(h for t, h in pairs if t == cut)


def _flat_sum(a: int, b: int) -> int:
    if not a or a == b:
        return b
    if not b:
        return a
    return 2


def _flat_product(x: Series, y: Series) -> int:
    """The sign of the flat part of a product, from each factor's flat part and the other's sign."""
    if not x.flat and not y.flat:
        return 0
    signs = set()
    for f, other in ((x.flat, y), (y.flat, x)):
        if f:
            if f == 2:
                return 2
            lead = min(other.terms, default=None)
            if lead is not None:
                s = other.ar.sign(other.terms[lead])
                signs.add(f * s if s else 2)
            elif other.flat in (1, -1):
                signs.add(f * other.flat)
            elif other.flat == 2:
                return 2
    return signs.pop() if len(signs) == 1 else 2
