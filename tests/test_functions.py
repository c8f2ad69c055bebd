"""Every function of the language, through both paths, against mpmath.

The expected values are computed independently of diffcli and SymPy: with
mpmath at 30 digits, derivatives by mpmath's high-precision numerical
differentiation. Each case checks the symbolic reference against them, and
that torch's autodiff agrees (status ok) for value, gradient and Hessian.
"""

import math

import mpmath as mp
import numpy as np
import pytest

from diffcli.language import ALIASES, FUNCTIONS
from diffcli.pipeline import check

mp.mp.dps = 30

# (expression, point, the same function written for mpmath)
CASES = [
    ("sin(x)", {"x": 0.7}, lambda x: mp.sin(x)),
    ("cos(x)", {"x": 0.7}, lambda x: mp.cos(x)),
    ("tan(x)", {"x": 0.7}, lambda x: mp.tan(x)),
    ("sec(x)", {"x": 0.7}, lambda x: mp.sec(x)),
    ("csc(x)", {"x": 0.7}, lambda x: mp.csc(x)),
    ("cot(x)", {"x": 0.7}, lambda x: mp.cot(x)),
    ("asin(x)", {"x": 0.3}, lambda x: mp.asin(x)),
    ("acos(x)", {"x": 0.3}, lambda x: mp.acos(x)),
    ("atan(x)", {"x": 0.3}, lambda x: mp.atan(x)),
    ("arcsin(x)", {"x": -0.4}, lambda x: mp.asin(x)),
    ("arccos(x)", {"x": -0.4}, lambda x: mp.acos(x)),
    ("arctan(x)", {"x": -0.4}, lambda x: mp.atan(x)),
    ("atan2(y, x)", {"x": 0.5, "y": -0.7}, lambda x, y: mp.atan2(y, x)),
    ("arctan2(y, x)", {"x": -0.5, "y": 0.7}, lambda x, y: mp.atan2(y, x)),
    ("sinh(x)", {"x": 0.8}, lambda x: mp.sinh(x)),
    ("cosh(x)", {"x": 0.8}, lambda x: mp.cosh(x)),
    ("tanh(x)", {"x": 0.8}, lambda x: mp.tanh(x)),
    ("asinh(x)", {"x": 0.8}, lambda x: mp.asinh(x)),
    ("acosh(x)", {"x": 1.7}, lambda x: mp.acosh(x)),
    ("atanh(x)", {"x": 0.4}, lambda x: mp.atanh(x)),
    ("arcsinh(x)", {"x": -0.8}, lambda x: mp.asinh(x)),
    ("arccosh(x)", {"x": 2.5}, lambda x: mp.acosh(x)),
    ("arctanh(x)", {"x": -0.4}, lambda x: mp.atanh(x)),
    ("exp(x)", {"x": 1.3}, lambda x: mp.exp(x)),
    ("log(x)", {"x": 1.3}, lambda x: mp.log(x)),
    ("ln(x)", {"x": 0.2}, lambda x: mp.log(x)),
    ("log(x, 3)", {"x": 7.5}, lambda x: mp.log(x) / mp.log(3)),
    ("log(x, y)", {"x": 7.5, "y": 2.5}, lambda x, y: mp.log(x) / mp.log(y)),
    ("sqrt(x)", {"x": 2.2}, lambda x: mp.sqrt(x)),
    ("cbrt(x)", {"x": 3.3}, lambda x: mp.cbrt(x)),
    ("cbrt(x)", {"x": -3.3}, lambda x: -mp.cbrt(-x)),
    ("root(x, 4)", {"x": 2.5}, lambda x: x ** (mp.mpf(1) / 4)),
    ("root(x, y)", {"x": 2.5, "y": 3.0}, lambda x, y: x ** (1 / y)),
    ("Abs(x)", {"x": -1.2}, lambda x: abs(x)),
    ("abs(x**3)", {"x": 1.2}, lambda x: abs(x**3)),
    ("sign(x)*x**2", {"x": -1.2}, lambda x: mp.sign(x) * x**2),
    ("floor(x)*x", {"x": 2.5}, lambda x: mp.floor(x) * x),
    ("ceiling(x)*x", {"x": -2.5}, lambda x: mp.ceil(x) * x),
    ("ceil(x)*x", {"x": 2.5}, lambda x: mp.ceil(x) * x),
    ("Min(x, y)**2", {"x": 0.3, "y": 0.8}, lambda x, y: min(x, y) ** 2),
    ("Max(x, y)**2", {"x": 0.3, "y": 0.8}, lambda x, y: max(x, y) ** 2),
    ("min(x, y, 0.5)", {"x": 0.3, "y": 0.8}, lambda x, y: min(x, y, mp.mpf("0.5"))),
    ("max(x, y, 0.5)", {"x": 0.3, "y": 0.8}, lambda x, y: max(x, y, mp.mpf("0.5"))),
    ("erf(x)", {"x": 0.6}, lambda x: mp.erf(x)),
    ("erfc(x)", {"x": 0.6}, lambda x: mp.erfc(x)),
    ("gamma(x)", {"x": 2.5}, lambda x: mp.gamma(x)),
    ("gamma(x)", {"x": -1.5}, lambda x: mp.gamma(x)),
    ("gamma(x)", {"x": -0.5}, lambda x: mp.gamma(x)),
    ("loggamma(x)", {"x": 3.2}, lambda x: mp.loggamma(x)),
    ("sinc(x)", {"x": 1.1}, lambda x: mp.sin(x) / x),
    ("Heaviside(x)*x", {"x": 0.5}, lambda x: x if x > 0 else 0 * x),
    ("Heaviside(x, 0.3)*x**2", {"x": -0.5}, lambda x: 0 * x),
    ("Mod(x, 2)", {"x": 5.5}, lambda x: mp.fmod(x, 2)),
    ("Mod(x, y)", {"x": -5.5, "y": 2.0}, lambda x, y: x - y * mp.floor(x / y)),
    ("x % 3", {"x": 7.25}, lambda x: x - 3 * mp.floor(x / 3)),
    ("Piecewise((x**2, x > 1), (x, True))", {"x": 2.0}, lambda x: x**2),
    ("Piecewise((x**2, x > 1), (x, True))", {"x": 0.5}, lambda x: x),
    ("x**3 if x >= 0 and y < 1 else -x", {"x": 0.5, "y": 0.0}, lambda x, y: x**3),
    ("x**3 if x <= 0 or not y != 1 else -x", {"x": 0.5, "y": 0.0}, lambda x, y: -x),
    ("x**3 if x == 0.5 else -x", {"x": 0.7}, lambda x: -x),
    ("x**3 if x != 0.5 else -x", {"x": 0.7}, lambda x: x**3),
    ("pi*x + E*x**2 + e", {"x": 0.5}, lambda x: mp.pi * x + mp.e * x**2 + mp.e),
    ("log10(x)", {"x": 7.5}, lambda x: mp.log10(x)),
    ("log2(x)", {"x": 7.5}, lambda x: mp.log(x, 2)),
    ("log1p(x)", {"x": 0.3}, lambda x: mp.log1p(x)),
    ("log1p(x)", {"x": -0.7}, lambda x: mp.log1p(x)),
    ("expm1(x)", {"x": 0.3}, lambda x: mp.expm1(x)),
    ("expm1(x)", {"x": -2.5}, lambda x: mp.expm1(x)),
    ("exp2(x)", {"x": 1.7}, lambda x: mp.power(2, x)),
    ("hypot(x, y)", {"x": 3.0, "y": -4.0}, lambda x, y: mp.hypot(x, y)),
    ("factorial(x)", {"x": 4.5}, lambda x: mp.factorial(x)),
    ("factorial(x)", {"x": -0.5}, lambda x: mp.factorial(x)),
]


def _ids():
    return [f"{expr} @ {point}" for expr, point, _ in CASES]


def _expected(fn, point):
    args = [mp.mpf(v) for v in point.values()]
    n = len(args)
    value = fn(*args)
    grad = [mp.diff(fn, args, tuple(int(i == k) for i in range(n))) for k in range(n)]
    hess = [[mp.diff(fn, args, tuple(int(i == a) + int(i == b) for i in range(n))) for b in range(n)] for a in range(n)]
    return float(value), [float(g) for g in grad], [[float(h) for h in row] for row in hess]


def test_every_function_and_alias_is_covered():
    """(Loops and their spellings are covered by tests/test_loops.py.)"""
    aliases = {a for a, name in ALIASES.items() if name in FUNCTIONS}
    called = set()
    for expr, _, _ in CASES:
        called |= {name for name in [*FUNCTIONS, *aliases] if f"{name}(" in expr}
    called |= {"Mod"} if any("%" in e for e, _, _ in CASES) else set()
    assert set(FUNCTIONS) | aliases <= called | {"Piecewise"}


@pytest.mark.parametrize("engine", ["autograd", "func"])
@pytest.mark.parametrize(("expr", "point", "fn"), CASES, ids=_ids())
def test_value_gradient_hessian_against_mpmath(expr, point, fn, engine):
    value, grad, hess = _expected(fn, point)
    at = [",".join(f"{k}={v!r}" for k, v in point.items())]
    variables = list(point)
    for command, expected in (("value", value), ("grad", grad), ("hessian", hess)):
        report = check(command, expr, at, variables=variables, engine=engine)
        result = report.results[0]
        assert result.status == "ok", (command, result)
        np.testing.assert_allclose(result.reference, expected, rtol=1e-12, atol=1e-14, err_msg=command)
        np.testing.assert_allclose(result.autodiff, expected, rtol=1e-9, atol=1e-12, err_msg=command)


@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_jvp_is_gradient_dot_tangent(engine):
    report = check("jvp", "atan2(y, x) * exp(x)", ["x=0.5,y=-0.7"], tangent="x=2,y=-3", engine=engine)
    _, grad, _ = _expected(lambda x, y: mp.atan2(y, x) * mp.exp(x), {"x": 0.5, "y": -0.7})
    expected = 2 * grad[0] - 3 * grad[1]
    result = report.results[0]
    assert result.status == "ok"
    assert float(result.reference) == pytest.approx(expected, rel=1e-12)
    assert float(result.autodiff) == pytest.approx(expected, rel=1e-12)
    assert result.value == pytest.approx(math.atan2(-0.7, 0.5) * math.exp(0.5), rel=1e-15)


@pytest.mark.parametrize(("expr", "point", "fn"), CASES, ids=_ids())
def test_both_engines_give_the_same_answers(expr, point, fn):
    at = [",".join(f"{k}={v!r}" for k, v in point.items())]
    for command in ("value", "grad", "hessian", "jvp"):
        a = check(command, expr, at, variables=list(point), engine="autograd")
        b = check(command, expr, at, variables=list(point), engine="func")
        # reverse-over-reverse vs forward-over-reverse Hessians may round differently in the last few bits
        np.testing.assert_allclose(a.autodiff, b.autodiff, rtol=4e-15, atol=1e-300, err_msg=command)
        np.testing.assert_allclose(a.values, b.values, rtol=4e-15, atol=1e-300, err_msg=command)


# log1p and expm1 exist for accuracy near 0, which is exactly what users check there
NEAR_ZERO = [
    ("log1p(x)", 1e-20, mp.log1p),
    ("log1p(x)", -3e-12, mp.log1p),
    ("expm1(x)", 1e-20, mp.expm1),
    ("expm1(x)", -3e-12, mp.expm1),
]


@pytest.mark.parametrize(("expr", "x", "fn"), NEAR_ZERO)
def test_log1p_and_expm1_near_zero(expr, x, fn):
    with mp.workdps(60):
        want = [fn(mp.mpf(x)), mp.diff(fn, mp.mpf(x)), mp.diff(fn, mp.mpf(x), 2)]
    for command, expected in zip(("value", "grad", "hessian"), want):
        result = check(command, expr, [f"x={x!r}"]).results[0]
        assert result.status == "ok"
        assert float(np.ravel(result.reference)[0]) == pytest.approx(float(expected), rel=1e-15)
    # on a grid: the float64 formula log(x + 1) has no digits left there, so it is recomputed exactly
    report = check("value", f"{expr}/x", grid=["x=1e-13:2e-13:3"])
    with mp.workdps(60):
        exact = [float(fn(mp.mpf(v)) / mp.mpf(v)) for v in np.linspace(1e-13, 2e-13, 3)]
    assert report.reference.tolist() == pytest.approx(exact, rel=1e-15) and report.counts() == {"ok": 3}


def test_a_difference_of_logs_near_one_on_a_grid_is_not_float64_noise():
    # (log(1 + x) - x)/x**2 -> -1/2 (by hand, from the series x - x**2/2 + ...); float64 gives
    # noise of +-100 there, the same in torch and in the formula: that was a false "ok"
    report = check("value", "(log(1 + x) - x)/x^2", grid=["x=1e-9:2e-9:3"])
    assert report.reference.tolist() == pytest.approx([-0.5] * 3, rel=1e-8)
    assert report.counts() == {"mismatch": 3}
