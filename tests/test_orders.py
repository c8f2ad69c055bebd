"""Derivatives of any order (diff) and Taylor coefficients (taylor), against values derived
independently: by hand (the comment says how), mpmath's ``diff`` and ``taylor`` at 50 digits,
and one-sided finite differences at high precision at the awkward points."""

import json
import math

import mpmath
import numpy as np
import pytest
from click.testing import CliRunner

from diffcli import autodiff
from diffcli.cli import cli
from diffcli.errors import DiffcliError
from diffcli.pipeline import check

ENGINES = ["autograd", "func"]
mp = mpmath.mp


def hp_diff(fn, point, counts):
    """mpmath's numerical differentiation at 50 digits (its step and precision are its own)."""
    with mpmath.workdps(50):
        return float(mpmath.diff(fn, point, counts))


def hp_taylor(fn, point, tangent, order):
    """The Taylor coefficients of s -> fn(point + s tangent) at 0, by mpmath at 50 digits."""
    with mpmath.workdps(50):
        along = lambda s: fn(*(p + s * t for p, t in zip(point, tangent)))  # noqa: E731
        return [float(c) for c in mpmath.taylor(along, 0, order)]


SMOOTH = [
    # (EXPR, point, wrt, counts per variable, the function for mpmath)
    ("exp(sin(x y))/(1 + x^2)", {"x": 0.7, "y": -0.3}, "x:2,y", (2, 1),
     lambda x, y: mpmath.exp(mpmath.sin(x * y)) / (1 + x**2)),
    ("atan(x)", {"x": 0.4}, "x:5", (5,), lambda x: mpmath.atan(x)),
    ("x^3 y^2 z + sin(z)", {"x": 1.5, "y": 2, "z": 0.25}, "z:3", (0, 0, 3),
     lambda x, y, z: x**3 * y**2 * z + mpmath.sin(z)),
    ("log(1 + x^2 + y^4)", {"x": 0.3, "y": 0.9}, "y,x,y", (1, 2),
     lambda x, y: mpmath.log(1 + x**2 + y**4)),
]  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expr", "point", "wrt", "counts", "fn"), SMOOTH)
def test_partial_derivatives_against_mpmath(expr, point, wrt, counts, fn, engine):
    report = check("diff", expr, [point], wrt=wrt, engine=engine)
    expected = hp_diff(fn, list(point.values()), counts)
    assert report.counts() == {"ok": 1}
    assert report.reference[0] == pytest.approx(expected, rel=1e-14, abs=1e-14)
    assert report.autodiff[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_mixed_partial_by_hand():
    # d3/dx2dy of x^3 y^2 = 6x * 2y = 12 x y
    report = check("diff", "x^3 y^2", ["x=1,y=2"], wrt="x:2,y")
    assert report.autodiff[0] == report.reference[0] == 24
    assert report.wrt == ("x", "x", "y")


def test_order_ten_by_hand():
    # d^10/dx^10 of x^12 = 12!/2! x^2, and of exp(2x) = 2^10 exp(2x)
    report = check("diff", "x^12 + exp(2 x)", ["x=0.5"], wrt="x:10")
    expected = math.factorial(12) / 2 * 0.25 + 2**10 * math.exp(1)
    assert report.counts() == {"ok": 1}
    assert report.reference[0] == pytest.approx(expected, rel=1e-15)


TAYLOR = [
    # (EXPR, point, tangent, order, function)
    ("exp(sin(x))", [0.0], [1], 8, lambda x: mpmath.exp(mpmath.sin(x))),
    ("x sin(x)/(1 + x^2)", [0.7], [1], 6, lambda x: x * mpmath.sin(x) / (1 + x**2)),
    ("sqrt(1 + x y)", [0.5, 2.0], [1, -0.5], 5, lambda x, y: mpmath.sqrt(1 + x * y)),
    ("gamma(x)", [2.5], [0.5], 4, lambda x: mpmath.gamma(x)),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expr", "point", "tangent", "order", "fn"), TAYLOR)
def test_taylor_coefficients_against_mpmath(expr, point, tangent, order, fn, engine):
    names = "xy"[: len(point)]
    at = ",".join(f"{v}={p}" for v, p in zip(names, point))
    report = check("taylor", expr, [at], tangent=",".join(map(str, tangent)), order=order, engine=engine)
    expected = hp_taylor(fn, point, tangent, order)
    assert report.counts() == {"ok": 1}
    np.testing.assert_allclose(report.reference[0], expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(report.autodiff[0], expected, rtol=1e-9, atol=1e-12)


def test_taylor_by_hand():
    # exp(sin x) = 1 + x + x^2/2 - x^4/8 - x^5/15 - x^6/240 + ...
    report = check("taylor", "exp(sin(x))", ["x=0"], order=6)
    np.testing.assert_allclose(report.reference[0], [1, 1, 1 / 2, 0, -1 / 8, -1 / 15, -1 / 240], atol=1e-16)
    # x y along (1, 2) from (1, 1): (1 + s)(1 + 2s) = 1 + 3s + 2s^2
    report = check("taylor", "x y", ["x=1,y=1"], tangent="1,2", order=3)
    assert report.reference[0].tolist() == report.autodiff[0].tolist() == [1, 3, 2, 0]
    # order 0 is the value
    report = check("taylor", "cos(x)", ["x=0"], order=0)
    assert report.autodiff.shape == (1, 1) and report.reference[0].tolist() == [1]


def test_order_twenty_where_nested_autodiff_is_cheap():
    # sin's derivatives are sin and cos again: each reverse pass adds a few nodes, whatever the order
    report = check("taylor", "sin(x)", ["x=0"], order=20)
    expected = [0 if k % 2 == 0 else (-1) ** (k // 2) / math.factorial(k) for k in range(21)]
    assert report.counts() == {"ok": 1}
    np.testing.assert_allclose(report.reference[0], expected, rtol=1e-15, atol=1e-300)


def one_sided(fn, x0, k, side, h="1e-12"):
    """The k-th derivative just to one side of x0 (mpmath's differences at x0 ± k h, at 60 digits,
    all on that side): the one-sided derivative, for the piecewise polynomials below."""
    with mpmath.workdps(60):
        return float(mpmath.diff(fn, x0 + side * mpmath.mpf(h) * k, k))


AWKWARD = [
    # (EXPR, point, wrt, status, reason fragment, reference)
    # |x|^3: the second derivative 6|x| is 0 at 0, the third jumps from -6 to 6
    ("Abs(x)^3", "x=0", "x:2", "ok", None, 0.0),
    ("Abs(x)^3", "x=0", "x:3", "undefined", "one-sided derivatives of order 3 differ (-6 and 6)", None),
    # a jump: floor has no derivative at 1
    ("floor(x)", "x=1", "x", "undefined", "jump of floor(x)", None),
    # an undefined sub-expression: log of a negative number, whatever multiplies it
    ("0*log(x) + x^2", "x=-1", "x:2", "undefined", "log", None),
    # an infinite first derivative: the cube root at 0, so no higher one either
    ("cbrt(x)", "x=0", "x:2", "undefined", "infinite one-sided derivative", None),
    # pieces that agree to order 2 and part at order 3
    ("Piecewise((x^3, x < 0), (0, True))", "x=0", "x:2", "ok", None, 0.0),
    ("Piecewise((x^3, x < 0), (0, True))", "x=0", "x:3", "undefined", "one-sided derivatives of order 3", None),
    # a mixed partial at a kink of one variable only: d2/dxdy of x*|y| at y=1 is sign(1) = 1
    ("x Abs(y)", "x=2,y=1", "x,y", "ok", None, 1.0),
    ("x Abs(y)", "x=2,y=0", "x,y", "undefined", "kink of Abs(y)", None),
    # the textbook function whose mixed partials at 0 are -1 and 1 (by hand: f_x(0, y) = -y and
    # f_y(x, 0) = x): no second derivative, though its second derivative along each axis and
    # diagonal is 0 (and torch, taking the piece 0 at the origin, says 0)
    (
        "Piecewise((x y (x^2 - y^2)/(x^2 + y^2), x^2 + y^2 > 0), (0, True))",
        "x=0,y=0",
        "x,y",
        "undefined",
        "not twice differentiable",
        None,
    ),
]


@pytest.mark.parametrize(("expr", "point", "wrt", "status", "reason", "reference"), AWKWARD)
def test_awkward_points(expr, point, wrt, status, reason, reference):
    report = check("diff", expr, [point], wrt=wrt)
    assert report.verdicts.status[0] == status, report.reasons[0]
    if reason is not None:
        assert reason in report.reasons[0]
    if reference is not None:
        assert report.reference[0] == reference


def test_one_sided_derivatives_of_the_awkward_points_by_finite_differences():
    """The values the reasons above quote, derived independently."""
    cube = lambda x: abs(x) ** 3  # noqa: E731
    assert one_sided(cube, 0, 3, -1) == pytest.approx(-6, rel=1e-9)
    assert one_sided(cube, 0, 3, 1) == pytest.approx(6, rel=1e-9)
    piece = lambda x: x**3 if x < 0 else mpmath.mpf(0)  # noqa: E731
    assert one_sided(piece, 0, 3, -1) == pytest.approx(6, rel=1e-9)
    assert one_sided(piece, 0, 3, 1) == 0


def test_taylor_at_awkward_points_keeps_the_coefficients_that_exist():
    # cbrt(x) near 1 along t = 1 is smooth; at 0 its c1 is infinite, c0 = 0 exists
    report = check("taylor", "cbrt(x)", ["x=0"], order=3)
    assert report.verdicts.status[0] == "undefined"
    assert report.defined[0].tolist() == [True, False, False, False]
    assert "c1: infinite one-sided derivative" in report.reasons[0]
    # Abs(x)^3 at 0: c0..c2 = 0, 0, 0 exist, c3 does not (the third derivative jumps)
    report = check("taylor", "Abs(x)^3", ["x=0"], order=4)
    assert report.defined[0].tolist() == [True, True, True, False, False]
    # along a tangent that keeps to the smooth side of a kink: Abs(y) + x along (1, 0) at y = 0
    report = check("taylor", "Abs(y) + x^2", ["x=1,y=0"], tangent="1,0", order=3)
    assert report.counts() == {"ok": 1}
    assert report.reference[0].tolist() == [1, 2, 1, 0]


def test_a_wrong_order_of_differentiation_is_still_the_same_where_smooth():
    one = check("diff", "sin(x) exp(x y)", ["x=0.3,y=0.2"], wrt="x,y,y")
    other = check("diff", "sin(x) exp(x y)", ["x=0.3,y=0.2"], wrt="y,x,y")
    assert one.reference[0] == pytest.approx(other.reference[0], rel=1e-15)
    assert one.counts() == other.counts() == {"ok": 1}


def test_vectors_component_by_component():
    report = check("diff", "[x^3 y^2, sin(x y)]", ["x=1,y=2"], wrt="x:2,y")
    np.testing.assert_allclose(report.reference[0], [24, -2 * 2 * math.sin(2) - 1 * 4 * math.cos(2)], rtol=1e-15)
    report = check("taylor", "[exp(x), 1/(1 - x)]", ["x=0"], order=4)
    assert report.autodiff.shape == (1, 2, 5)
    np.testing.assert_allclose(report.reference[0], [[1 / math.factorial(k) for k in range(5)], [1] * 5], rtol=1e-15)


@pytest.mark.parametrize("command", ["diff", "taylor"])
def test_engines_agree_on_a_grid(command):
    options = {"wrt": "x,y:2"} if command == "diff" else {"order": 5, "tangent": "1,-2"}
    reports = [
        check(command, "[exp(-x^2) cos(y), x/(1 + y^2)]", grid=["x=-1:1:7", "y=-1:1:5"], engine=engine, **options)
        for engine in ENGINES
    ]
    for report in reports:
        assert report.counts() == {"ok": 35}
    np.testing.assert_allclose(reports[0].autodiff, reports[1].autodiff, rtol=1e-12, atol=1e-14)


def test_the_compiled_engine():
    report = check("taylor", "exp(-x^2)", grid=["x=-2:2:9"], order=4, engine="compiled")
    assert report.counts() == {"ok": 9}


def test_float32():
    report = check("diff", "exp(x) sin(y)", ["x=0.5,y=1"], wrt="x:2,y", dtype="float32")
    assert report.counts() == {"ok": 1}
    assert report.autodiff[0] == pytest.approx(math.exp(0.5) * math.cos(1), rel=1e-6)


def test_an_order_beyond_reach_is_refused_with_what_can_be_done(monkeypatch):
    monkeypatch.setattr(autodiff, "NESTED_SECONDS", 0.0)
    monkeypatch.setattr(autodiff.Nesting, "NOISE", 0.0)
    for command, options in (("taylor", {"order": 8}), ("diff", {"wrt": "x:8"})):
        with pytest.raises(DiffcliError, match=rf"{command}: order 8 is beyond .* ask for order 2 or less"):
            check(command, "x sin(x)/(1 + x^2)", ["x=0.5"], **options)


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("diff", {"wrt": "z"}, "'z' is not a variable of the expression"),
        ("diff", {"wrt": "x:11"}, "the count must be a whole number from 1 to 10"),
        ("diff", {"wrt": "x:0"}, "the count must be a whole number from 1 to 10"),
        ("diff", {"wrt": "x:6,y:5"}, "orders go from 1 to 10"),
        ("diff", {"wrt": "x,,y"}, "an empty item"),
        ("diff", {}, "say which variables to differentiate by, e.g. --wrt x,y"),
        ("taylor", {"order": 21}, "--order must be a whole number from 0 to 20"),
        ("taylor", {"order": -1}, "--order must be a whole number from 0 to 20"),
        ("grad", {"wrt": "x"}, "--wrt only applies to diff"),
        ("grad", {"order": 2}, "--order only applies to taylor"),
    ],
)
def test_bad_orders_are_input_errors(command, options, message):
    with pytest.raises(DiffcliError, match=message):
        check(command, "x y", ["x=1,y=2"], **options)


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_the_command_line():
    result = run("diff", "-x^3", "--at", "x=2", "--wrt", "x:2", "-f", "json")
    doc = json.loads(result.output)
    assert result.exit_code == 0
    assert doc["wrt"] == ["x", "x"] and doc["results"][0]["autodiff"] == -12.0
    result = run("taylor", "exp(x)", "--at", "x=0", "--order", "3", "-f", "csv")
    assert result.exit_code == 0
    assert '"autodiff[0]","autodiff[1]"' in result.output or "autodiff[0],autodiff[1]" in result.output
    result = run("diff", "x^2 sin(y)", "--at", "x=1,y=2", "--wrt", "x,y", "-f", "table")
    assert "∂²f/∂x∂y" in result.output and "with respect to: x, y" in result.output
    result = run("taylor", "[exp(x), x]", "--at", "x=0", "--order", "2", "-f", "table")
    assert "c₂ of f₁" in result.output and "order: 2" in result.output
    result = run("diff", "x y", "--at", "x=1,y=2", "--wrt", "q")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_suite_with_wrt_and_order(tmp_path):
    suite = tmp_path / "orders.toml"
    suite.write_text(
        "[defaults]\norder = 3\n\n"
        '[[case]]\nname = "mixed"\nexpr = "x^3 y^2"\nat = [{x = 1, y = 2}]\nwrt = "x:2,y"\n'
        "expect = { diff = [24] }\n\n"
        '[[case]]\nname = "series"\nexpr = "1/(1 - x)"\nat = [{x = 0}]\nchecks = ["taylor"]\norder = 4\n'
        "expect = { taylor = [[1, 1, 1, 1, 1]] }\n\n"
        '[[case]]\nname = "listed"\nexpr = "x y^2"\nat = [{x = 1, y = 3}]\nwrt = ["y", "y", "x"]\n'
        'checks = ["diff"]\nexpect = { diff = [2] }\n'
    )
    result = run("batch", str(suite), "--format", "json")  # JSON Lines: a record per check, then the summary
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 0, result.output
    records = {(r["case"], r["check"]): r for r in lines[:-1]}
    # a case that gives wrt also checks diff; the default order (3) makes every case check taylor
    assert ("mixed", "diff") in records and ("mixed", "taylor") in records
    assert records[("mixed", "taylor")]["order"] == 3 and records[("series", "taylor")]["order"] == 4
    assert records[("listed", "diff")]["wrt"] == ["y", "y", "x"]
    assert all(r["status"] == "ok" for r in records.values())
