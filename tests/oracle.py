"""An independent oracle for the property tests: the expression's value at a point with
mpmath, as typed, and its derivatives by one-sided finite differences at high precision.

It shares nothing with diffcli's reference but the parsed tree: values come from mpmath's
own functions, derivatives from differences at steps of about 1e-60 with 1,100 digits, on
each side separately, so that kinks and jumps show as one-sided estimates that differ.
"""

from __future__ import annotations

import mpmath
from mpmath import mp

from diffcli.expr import COMPARISONS, Node
from diffcli.parser import parse_expression

DPS = 1100  # (exp(x + y) + 1) - exp(x + y) at x + y = 2000 needs about 2,900 bits, and the differences more
STEP = mpmath.mpf(2) ** -200  # a term like s**(4/3) leaves an error of STEP**(1/3), about 1e-20


class NoValueError(Exception):
    """The expression has no real value at this point."""


def _real(x):
    if isinstance(x, mpmath.mpc):
        if x.imag != 0:
            raise NoValueError
        x = x.real
    if not mpmath.isfinite(x):
        raise NoValueError
    return x


def _heaviside(u, h0=None):
    return mpmath.mpf(1) if u > 0 else mpmath.mpf(0) if u < 0 else (mpmath.mpf(0.5) if h0 is None else h0)


def _atan2(y, x):
    if x == 0 and y == 0:
        raise NoValueError
    return mpmath.atan2(y, x)


def _log(x, base=None):
    if x <= 0:
        raise NoValueError
    if base is None:
        return mpmath.log(x)
    if base <= 0 or base == 1:
        raise NoValueError
    return mpmath.log(x) / mpmath.log(base)


def _pow(b, e):
    if b == 0:
        if e < 0:
            raise NoValueError
        return mpmath.mpf(1) if e == 0 else mpmath.mpf(0)
    if b < 0 and e != mpmath.floor(e):
        raise NoValueError
    return b**e


def _exp(u):
    """exp, but a fixed positive speck far below anything a difference can see:
    exp(-1/exp(-1/h**2)**2) would otherwise be computed to its astronomically negative exponent."""
    if u < -(10**6):
        return mpmath.ldexp(1, -(10**7))
    if u > 10**6:
        raise NoValueError
    return mpmath.exp(u)


def _checked(fn, domain=lambda *a: True):
    def call(*args):
        if not domain(*args):
            raise NoValueError
        return fn(*args)

    return call


FUNCTIONS = {
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "sec": mpmath.sec, "csc": mpmath.csc,
    "cot": mpmath.cot, "asin": _checked(mpmath.asin, lambda u: abs(u) <= 1),
    "acos": _checked(mpmath.acos, lambda u: abs(u) <= 1), "atan": mpmath.atan, "atan2": _atan2,
    "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh, "asinh": mpmath.asinh,
    "acosh": _checked(mpmath.acosh, lambda u: u >= 1), "atanh": _checked(mpmath.atanh, lambda u: abs(u) < 1),
    "exp": _exp, "log": _log, "sqrt": _checked(mpmath.sqrt, lambda u: u >= 0),
    "cbrt": lambda u: mpmath.sign(u) * mpmath.cbrt(abs(u)), "root": lambda x, n: _pow(x, 1 / n),
    "Abs": abs, "sign": mpmath.sign, "floor": mpmath.floor, "ceiling": mpmath.ceil,
    "Min": min, "Max": max, "erf": mpmath.erf, "erfc": mpmath.erfc,
    "gamma": _checked(mpmath.gamma, lambda u: not (u <= 0 and u == mpmath.floor(u))),
    "loggamma": _checked(mpmath.loggamma, lambda u: u > 0), "sinc": mpmath.sinc, "Heaviside": _heaviside,
    "Mod": _checked(lambda a, m: a - m * mpmath.floor(a / m), lambda a, m: m != 0),
    "log10": _checked(mpmath.log10, lambda u: u > 0), "log2": _checked(lambda u: mpmath.log(u, 2), lambda u: u > 0),
    "log1p": _checked(mpmath.log1p, lambda u: u > -1), "expm1": mpmath.expm1, "exp2": lambda u: mpmath.power(2, u),
    "hypot": mpmath.hypot, "factorial": _checked(mpmath.factorial, lambda u: not (u <= -1 and u == mpmath.floor(u))),
}  # fmt: skip
ARITHMETIC = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b, "Div": lambda a, b: a / b,
    "Pow": _pow,
}  # fmt: skip
TESTS = {"Lt": lambda a, b: a < b, "Le": lambda a, b: a <= b, "Gt": lambda a, b: a > b, "Ge": lambda a, b: a >= b,
         "Eq": lambda a, b: a == b, "Ne": lambda a, b: a != b}  # fmt: skip


def value(node: Node, point: dict):
    """The expression's value at ``point`` (mpf coordinates), or NoValueError."""
    op = node.op
    if op == "num":
        return mpmath.mpf(mpmath.fraction(*_ratio(node.text)))
    if op in ("var", "bound"):
        return point[node.text]
    if node.is_loop:  # as a plain Python loop, the index (state) in the point
        body = node.args[0]
        if op == "iterate":
            state = value(node.args[1], point)
            for _ in node.steps():
                state = value(body, {**point, node.text: state})
            return state
        total = mpmath.mpf(0 if op == "sum" else 1)
        for k in node.steps():
            term = value(body, {**point, node.text: mpmath.mpf(k)})
            total = total + term if op == "sum" else total * term
        return total
    if op == "const":
        return mp.pi if node.text == "pi" else mp.e
    if op == "bool":
        return node.text == "True"
    if op in COMPARISONS:
        return TESTS[op](value(node.args[0], point), value(node.args[1], point))
    if op in ("And", "Or"):
        results = [value(a, point) for a in node.args]
        return all(results) if op == "And" else any(results)
    if op == "Not":
        return not value(node.args[0], point)
    if op in ("If", "Piecewise"):
        pieces = [(node.args[0], node.args[1]), (node.args[2], None)] if op == "If" else \
            list(zip(node.args[::2], node.args[1::2]))  # fmt: skip
        for piece, cond in pieces:
            if cond is None or value(cond, point):
                return value(piece, point)
        raise NoValueError
    args = [value(a, point) for a in node.args]
    if op in ("Sum", "Product"):
        from diffcli.expr import CHAINS

        result = args[0]
        for sign, arg in zip(node.text, args[1:]):
            if CHAINS[op][sign] == "Div" and arg == 0:
                raise NoValueError
            result = _real(ARITHMETIC[CHAINS[op][sign]](result, arg))
        return result
    if op == "Div" and args[1] == 0:
        raise NoValueError
    if op == "Neg":
        return -args[0]
    fn = ARITHMETIC.get(op) or FUNCTIONS[op]
    try:
        return _real(fn(*args))
    except (ZeroDivisionError, ValueError):
        raise NoValueError from None


def _ratio(text: str) -> tuple[int, int]:
    from fractions import Fraction

    f = Fraction(text)
    return f.numerator, f.denominator


def at(tree: Node, names, coordinates):
    """f at a point given as mpf coordinates, or None where it has no real value."""
    try:
        return value(tree, dict(zip(names, coordinates)))
    except NoValueError:
        return None


def parse(text: str) -> Node:
    return parse_expression(text)
