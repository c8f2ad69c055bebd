"""The exact reference at one point, against values derived independently: by hand (the
comment says how), or with mpmath at a precision far beyond the 30 digits asked for.

U stands for "undefined" (the derivative does not exist), ? for "unknown" (it may, but it
cannot be computed).
"""

import math

import mpmath
import numpy as np
import pytest

from diffcli import exact
from diffcli.commands import Extra
from diffcli.parser import parse_expression

U, UNKNOWN = "undefined", "unknown"
mp = mpmath.mp


def hp(fn, dps=400):
    """fn() evaluated with mpmath at ``dps`` digits, as a float."""
    with mpmath.workdps(dps):
        return float(fn())


def answer(command, text, point, tangent=None, wrt=(), order=0):
    tree = parse_expression(text)
    names = sorted(tree.variables() | set(point))
    extra = Extra(tuple(tangent) if tangent is not None else None, tuple(wrt), order)
    return exact.answer(tree, names, [point[n] for n in names], command, extra)


def flat(found):
    values = np.ravel(found.values)
    defined, unknown = np.ravel(found.defined), np.ravel(found.unknown)
    return [UNKNOWN if u else U if not d else float(v) for v, d, u in zip(values, defined, unknown)]


CASES = [
    # -- the piece taken is not the function
    ("grad", "x if x != 0 else 0", {"x": 0}, [1.0]),  # x everywhere
    ("hessian", "sin(x)/x if x != 0 else 1", {"x": 0}, [-1 / 3]),  # 1 - x**2/6 + ...
    ("grad", "floor(x)^2", {"x": 0}, [U]),  # 1 on the left, 0 at and right of 0: a jump
    ("grad", "x*Heaviside(x)", {"x": 0}, [U]),  # slopes 0 and 1
    ("grad", "atan2(y, x)", {"x": -1, "y": 0}, [0.0, U]),  # pi along y = 0; jumps to -pi below
    ("hessian", "abs(log(x))^2", {"x": 1}, [2.0]),  # log(x)**2: (2 - 2 log x)/x**2 = 2
    ("grad", "Abs(x)", {"x": 0}, [U]),
    ("grad", "Abs(x)^3", {"x": 0}, [0.0]),
    ("hessian", "Abs(x)^3", {"x": 0}, [0.0]),  # 6|x| at 0
    ("grad", "x*Abs(x)", {"x": 0}, [0.0]),
    ("hessian", "x*Abs(x)", {"x": 0}, [U]),  # 2 sign(x): -2 and 2
    ("grad", "Piecewise((sqrt(x), x > 0), (0, True))", {"x": 0}, [U]),  # slopes 0 and +inf
    ("grad", "Max(x, 0)", {"x": 0}, [U]),
    ("grad", "Max(x^3, 0)", {"x": 0}, [0.0]),
    ("grad", "x**2 if x < 1 else 2*x - 1", {"x": 1}, [2.0]),  # the pieces meet with slope 2
    ("hessian", "x**2 if x < 1 else 2*x - 1", {"x": 1}, [U]),  # second derivatives 2 and 0
    ("grad", "x if x != 0.5 else 0.5", {"x": 0.5}, [1.0]),  # a one-point piece that matches
    ("grad", "x if x != 0.5 else 0", {"x": 0.5}, [U]),  # one that does not: a jump
    # -- float64 overflow is not undefined
    ("value", "log(exp(x))", {"x": 710}, [710.0]),
    ("grad", "log(exp(x)+exp(y))", {"x": 1000, "y": 1000}, [0.5, 0.5]),  # e**x/(e**x + e**y)
    ("hessian", "log(exp(x)+exp(y))", {"x": 1000, "y": 1000}, [0.25, -0.25, -0.25, 0.25]),
    ("value", "exp(x)", {"x": 800}, [math.inf]),  # exists: beyond float64's range, so inf
    ("value", "exp(-1/exp(-1/y**2)**2)", {"y": -0.04}, [0.0]),  # exp(-exp(1250)): beyond float64, 0
    # -- derivatives that exist where SymPy's formula is 0/0 or 0*inf
    ("grad", "sinc(x)", {"x": 0}, [0.0]),
    ("hessian", "sinc(x)", {"x": 0}, [-1 / 3]),
    ("grad", "Min(x, 7, x)", {"x": 2.65}, [1.0]),
    ("grad", "Max(sin(x), sin(x))", {"x": 0}, [1.0]),  # a tie of one sub-expression with itself
    ("hessian", "Abs(sin(x) - sin(x)) + x", {"x": 0}, [0.0]),
    ("grad", "Max(x, abs(x))", {"x": 2}, [1.0]),
    ("grad", "asin(sign(x))", {"x": 1}, [0.0]),
    ("grad", "Heaviside(x, y)", {"x": 1, "y": 0.3}, [0.0, 0.0]),
    ("grad", "0^x", {"x": 1}, [0.0]),
    ("grad", "x**y", {"x": 0, "y": 1}, [1.0, 0.0]),  # x along x; 0**y = 0 along y
    ("value", "log(tanh(x))", {"x": 50}, [hp(lambda: mpmath.log(mpmath.tanh(50)))]),
    ("value", "log(cos(x)^2 + sin(x)^2)", {"x": 1}, [0.0]),
    # -- references that were wrong or never returned
    ("value", "sec(x - 1e308)", {"x": 1.8}, [hp(lambda: mpmath.sec(mpmath.mpf(1.8) - mpmath.mpf(10) ** 308))]),
    ("value", "csc(x - 1e308)", {"x": 1.8}, [hp(lambda: mpmath.csc(mpmath.mpf(1.8) - mpmath.mpf(10) ** 308))]),
    ("value", "cot(x - 1e308)", {"x": 1.8}, [hp(lambda: mpmath.cot(mpmath.mpf(1.8) - mpmath.mpf(10) ** 308))]),
    ("value", "x^y", {"x": 1.1, "y": -1.1}, [hp(lambda: mpmath.mpf(1.1) ** mpmath.mpf(-1.1))]),
    ("value", "x^100000", {"x": 1.0001}, [hp(lambda: mpmath.mpf(1.0001) ** 100000)]),
    ("grad", "loggamma(x)", {"x": 100000}, [hp(lambda: mpmath.digamma(100000))]),
    ("value", "log(x, 0)", {"x": 2}, [U]),  # log(0) is on the path taken
    ("value", "log(x, 1)", {"x": 2}, [U]),  # log(1) = 0 divides
    ("value", "cos(sinh(x))", {"x": 1e10}, [UNKNOWN]),  # needs billions of digits
    # -- domain boundaries: one side only
    ("grad", "x*sqrt(x)", {"x": 0}, [0.0]),  # x**1.5 on x >= 0
    ("hessian", "x*sqrt(x)", {"x": 0}, [U]),  # 0.75/sqrt(x): infinite
    ("grad", "acos(x)", {"x": 1}, [U]),  # -1/sqrt(1 - x**2)
    ("grad", "acosh(x)", {"x": 1}, [U]),
    ("grad", "x*log(x) if x > 0 else 0", {"x": 0}, [U]),  # log(x) + 1 -> -inf
    ("grad", "x^x", {"x": 0}, [U]),
    # -- functions flat or oscillating at the point
    ("grad", "exp(-1/x^2) if x != 0 else 0", {"x": 0}, [0.0]),
    ("hessian", "exp(-1/x^2) if x != 0 else 0", {"x": 0}, [0.0]),
    ("grad", "x^2*sin(1/x) if x != 0 else 0", {"x": 0}, [0.0]),  # |x**2 sin(1/x)| <= x**2
    ("hessian", "x^2*sin(1/x) if x != 0 else 0", {"x": 0}, [U]),  # the derivative oscillates
    # -- switches whose argument is flat to the order asked, but not constant
    ("grad", "acos(cos(x))", {"x": 0}, [U]),  # |x|: cos(x) has slope 0 at 0, yet varies
    ("grad", "Heaviside(cos(x) - 1)", {"x": 0}, [U]),  # 0 beside 0, 1/2 at 0
    ("hessian", "Max(cos(x), 1)", {"x": 0}, [0.0]),  # cos(x) <= 1: the constant 1 near 0
    ("value", "asin(cos(x))", {"x": 0}, [math.pi / 2]),
    ("grad", "(-2)^cos(y)*x", {"x": 0, "y": 0}, [-2.0, U]),  # not real for y != 0 near 0
    # -- several variables
    ("grad", "Abs(x) + y", {"x": 0, "y": 1}, [U, 1.0]),
    ("hessian", "Abs(x) + y^2", {"x": 0, "y": 0}, [U, U, U, 2.0]),
    ("hessian", "x if y != 0 else 0", {"x": 0, "y": 0}, [0.0, U, U, 0.0]),  # f(t, t) = t: not differentiable
    ("hessian", "x*y + Abs(x - y)**3", {"x": 1, "y": 1}, [0.0, 1.0, 1.0, 0.0]),
    # 0 where x < y and x + y > 0, about (x + y)**2 elsewhere: df/dx(0, y) is 0 above and 2y below
    ("hessian", "log(1 + Min(tanh(x + y), Heaviside(x - y))**2)", {"x": 0, "y": 0}, [2.0, U, U, U]),
    ("hessian", "x^2*sin(y)", {"x": 1, "y": 2}, [2 * math.sin(2), 2 * math.cos(2), 2 * math.cos(2), -math.sin(2)]),
]


@pytest.mark.parametrize(("command", "text", "point", "expected"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_the_reference_is_the_derivative_of_the_function(command, text, point, expected):
    found = flat(answer(command, text, point))
    for got, want in zip(found, expected, strict=True):
        if isinstance(want, str):
            assert got == want, (found, expected)
        else:
            assert got == pytest.approx(want, rel=1e-15, abs=1e-300), (found, expected)


@pytest.mark.parametrize(
    ("tangent", "expected"),
    [((0.0, 1.0), 1.0), ((1.0, 0.0), U), ((1.0, 1.0), U), ((0.0, 0.0), 0.0)],
)
def test_a_jvp_is_the_directional_derivative(tangent, expected):
    # Abs(x) + y at the origin: along y the slope is 1; any direction with an x part crosses the kink
    assert flat(answer("jvp", "Abs(x) + y", {"x": 0, "y": 0}, tangent)) == [expected]


@pytest.mark.parametrize(
    ("command", "text", "point", "truth"),
    [
        ("value", "log(tanh(x))", {"x": 50}, lambda: mpmath.log(mpmath.tanh(50))),
        ("value", "sec(x - 1e308)", {"x": 1.8}, lambda: mpmath.sec(mpmath.mpf(1.8) - mpmath.mpf(10) ** 308)),
        ("value", "(exp(1000) + 1) - exp(1000) + x", {"x": 0.5}, lambda: mpmath.mpf(1.5)),
        ("value", "x^100000", {"x": 1.0001}, lambda: mpmath.mpf(1.0001) ** 100000),
        ("grad", "loggamma(x)", {"x": 100000}, lambda: mpmath.digamma(100000)),
        ("hessian", "sin(x)/x if x != 0 else 1", {"x": 0}, lambda: mpmath.mpf(-1) / 3),
        ("value", "erfc(x)", {"x": 30}, lambda: mpmath.erfc(30)),
        ("value", "1 - cos(x)", {"x": 1e-20}, lambda: 1 - mpmath.cos(mpmath.mpf(1e-20))),
    ],
)
def test_thirty_correct_digits(command, text, point, truth):
    (digits,) = answer(command, text, point).digits
    with mpmath.workdps(500):
        want = truth()
        assert abs(mpmath.mpf(digits) - want) <= abs(want) * mpmath.mpf(10) ** -29, (digits, want)


@pytest.mark.parametrize(
    ("command", "text", "point", "reason"),
    [
        ("value", "log(x)", {"x": -1}, "log(x) is not real"),
        ("value", "1/x", {"x": 0}, "division by zero in 1/x"),
        ("value", "x/x", {"x": 0}, "division by zero in x/x"),
        ("grad", "floor(x)^2", {"x": 0}, "∂f/∂x: jump of floor(x)"),
        ("grad", "Abs(x)", {"x": 0}, "∂f/∂x: one-sided derivatives differ (-1 and 1) at the kink of Abs(x)"),
        ("grad", "x if x > 0 else 0", {"x": 0}, "∂f/∂x: one-sided derivatives differ (0 and 1) at the boundary x > 0"),
        ("value", "Piecewise((x, x > 0))", {"x": -1}, "no piece of Piecewise((x, x > 0)) applies"),
        (
            "value",
            "cos(sinh(x))",
            {"x": 1e10},
            "the reference cannot be computed here: an argument of about "
            "10**4342944818 is beyond what can be evaluated",
        ),
        (
            "value",
            "sin(exp(x))",
            {"x": 3000},
            "the reference cannot be computed here: an argument of about 10**1303 is beyond what can be evaluated",
        ),
    ],
)
def test_every_undefined_or_unknown_result_says_why(command, text, point, reason):
    assert answer(command, text, point).reason == reason


def test_a_periodic_function_of_a_huge_argument_just_inside_the_limit():
    # exp(2800) is about 2**4040: sin of it needs some 1,250 digits, which mpmath gives in milliseconds
    (digits,) = answer("value", "sin(exp(x))", {"x": 2800}).digits
    with mpmath.workdps(1400):
        want = mpmath.sin(mpmath.exp(2800))
        assert abs(mpmath.mpf(digits) - want) < mpmath.mpf(10) ** -29


def test_constants():
    assert exact.constant(parse_expression("pi/4")) == math.pi / 4
    assert math.isnan(exact.constant(parse_expression("log(-1)")))
    assert exact.constant(parse_expression("(exp(1000) + 1) - exp(1000)")) == 1.0


def test_a_reference_found_where_pieces_meet_says_so():
    found = answer("grad", "x if x != 0 else 0", {"x": 0})
    assert found.reason is None
    assert found.note == "∂f/∂x: the derivative of the function at the boundary x != 0, whose pieces agree there"
    assert answer("grad", "x**2", {"x": 0}).note is None
