"""Loops (sum, prod, iterate), against values derived independently: closed forms by hand
(each comment says how), JAX with the loop run by ``lax.fori_loop``, and mpmath at 50
digits on a plain Python loop (``mpmath.diff``); at the awkward points, the independent
oracle of tests/oracle.py differentiated by one-sided finite differences."""

import importlib.util
import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from click.testing import CliRunner

from diffcli import autodiff
from diffcli.cli import cli
from diffcli.errors import DiffcliError, ParseError
from diffcli.expr import to_text
from diffcli.parser import parse_expression
from diffcli.pipeline import check, prepare

ENGINES = ["autograd", "func"]


def hp_diff(fn, x, k):
    """The k-th derivative of fn at x by mpmath at 50 digits (fn: a plain Python loop on mpf)."""
    with mpmath.workdps(50):
        return float(mpmath.diff(fn, mpmath.mpf(x), k))


def newton(x, steps=50):
    s = mpmath.mpf(1)
    for _ in range(steps):
        s = (s + x / s) / 2
    return s


# (EXPR, x, the function for mpmath as a plain loop, closed form of value and first two derivatives)
CLOSED_FORMS = [
    # geometric: (1 - x^11)/(1 - x)
    ("sum(x^k, k, 0, 10)", 0.5, lambda x: sum(x**k for k in range(11)),
     lambda x: (1 - x**11) / (1 - x)),
    # exp's partial sum: its derivative is the partial sum one term shorter
    ("sum(x^k/factorial(k), k, 0, 20)", 1.5, lambda x: sum(x**k / mpmath.factorial(k) for k in range(21)),
     lambda x: sum(x**k / math.factorial(k) for k in range(21))),
    # (1 + x)(1 + x/2)...(1 + x/8)
    ("prod(1 + x/k, k, 1, 8)", 0.75, lambda x: mpmath.fprod(1 + x / k for k in range(1, 9)),
     lambda x: math.prod(1 + x / k for k in range(1, 9))),
    # 50 Newton steps for sqrt(x): sqrt(x) to far beyond 30 digits, and so are its derivatives
    ("iterate((s + x/s)/2, s, 1, 50)", 2.0, newton, math.sqrt),
    # Euler for y' = -x y, y(0) = 1, step 0.1, 50 steps: (1 - 0.1 x)^50
    ("iterate(s - 0.1*x*s, s, 1, 50)", 0.8, None, lambda x: (1 - 0.1 * x) ** 50),
]  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expr", "x", "loop", "closed"), CLOSED_FORMS)
def test_value_and_derivatives_against_closed_forms_and_mpmath(expr, x, loop, closed, engine):
    fn = loop or (lambda t: (1 - mpmath.mpf(1) / 10 * t) ** 50)
    expected = {k: hp_diff(fn, x, k) for k in range(4)}
    assert expected[0] == pytest.approx(closed(x), rel=1e-15)
    for command, want, options in [
        ("value", expected[0], {}),
        ("grad", [expected[1]], {}),
        ("hessian", [[expected[2]]], {}),
        ("jvp", expected[1] * 2, {"tangent": "x=2"}),
        ("diff", expected[3], {"wrt": "x:3"}),
        ("taylor", [expected[k] / math.factorial(k) for k in range(4)], {"order": 3}),
    ]:
        report = check(command, expr, [f"x={x}"], engine=engine, **options)
        assert report.counts() == {"ok": 1}, (command, report.results)
        np.testing.assert_allclose(report.reference[0], want, rtol=1e-14, atol=1e-15, err_msg=command)
        np.testing.assert_allclose(report.autodiff[0], want, rtol=1e-9, atol=1e-12, err_msg=command)


def test_newton_derivatives_converge_to_those_of_sqrt():
    # d/dx sqrt(x) = 1/(2 sqrt(x)); d2/dx2 = -1/(4 x^(3/2)); at x = 2, after 50 steps
    report = check("hessian", "iterate((s + x/s)/2, s, 1, 50)", ["x=2"])
    assert report.reference[0][0][0] == pytest.approx(-1 / (4 * 2**1.5), rel=1e-15)
    report = check("grad", "iterate((s + x/s)/2, s, 1, 50)", ["x=2"])
    assert report.reference[0][0] == pytest.approx(1 / (2 * math.sqrt(2)), rel=1e-15)


#: JAX's answers, computed in a child process: JAX starts threads, and a pytest process
#: with JAX loaded warns (rightly) at every later fork (tests/test_server.py forks).
JAX_SCRIPT = """
import json, jax
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

def f(v):
    x, y = v[0], v[1]
    s = jax.lax.fori_loop(0, 30, lambda i, s: (s + x * y / s) / 2, jnp.float64(1.0))
    return s + jax.lax.fori_loop(1, 6, lambda k, p: p * (1 + x / k), jnp.float64(1.0))

point = jnp.array([2.0, 1.5])
print(json.dumps({"value": float(f(point)), "grad": jax.grad(f)(point).tolist(),
                  "hessian": jax.hessian(f)(point).tolist()}))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install jax)")
def test_against_jax_fori_loop():
    out = subprocess.run([sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True, check=True).stdout
    want = json.loads(out.strip().splitlines()[-1])
    expr = "iterate((s + x*y/s)/2, s, 1, 30) + prod(1 + x/k, k, 1, 5)"
    for command, value in want.items():
        report = check(command, expr, ["x=2,y=1.5"])
        assert report.counts() == {"ok": 1}
        np.testing.assert_allclose(report.reference[0], value, rtol=1e-13, err_msg=command)
        np.testing.assert_allclose(report.autodiff[0], value, rtol=1e-13, err_msg=command)


def test_several_variables_and_nested_loops_by_hand():
    # sum_k s2 with s1 = k x + y, s2 = k x s1 + y = k^2 x^2 + k x y + y: sum over k = 1..3 is
    # 14 x^2 + 6 x y + 3 y; at (1, 2): 32, gradient (28 + 12, 6 + 3) = (40, 9), Hessian [[28, 6], [6, 0]]
    expr = "sum(iterate(s*k*x + y, s, k*x + y, 1), k, 1, 3)"
    for command, want in [("value", 32), ("grad", [40, 9]), ("hessian", [[28, 6], [6, 0]])]:
        report = check(command, expr, ["x=1,y=2"])
        assert report.counts() == {"ok": 1}
        np.testing.assert_allclose(report.reference[0], want, rtol=1e-15)
    # a loop inside a step: s <- s + sum_{j=1..2} j s x = s (1 + 3x), 3 times from 1: (1 + 3x)^3
    report = check("grad", "iterate(s + sum(j*s*x, j, 1, 2), s, 1, 3)", ["x=0.5"])
    assert report.counts() == {"ok": 1}
    assert report.reference[0][0] == pytest.approx(9 * (1 + 1.5) ** 2, rel=1e-15)


def test_every_command_engine_and_dtype_agree_on_a_loop():
    expr = "iterate((s + x/s)/2, s, 1, 8) + sum(y^k/factorial(k), k, 0, 12)*prod(1 + x/k, k, 1, 4)"
    for command, options in [("value", {}), ("grad", {}), ("hessian", {}), ("jvp", {"tangent": "1,2"}),
                             ("jacobian", {}), ("vjp", {}), ("diff", {"wrt": "x:2,y"}),
                             ("taylor", {"order": 3, "tangent": "1,1"})]:  # fmt: skip
        for engine in ENGINES:
            for dtype in ("float64", "float32"):
                report = check(command, expr, ["x=2,y=0.5"], engine=engine, dtype=dtype, **options)
                assert report.counts() == {"ok": 1}, (command, engine, dtype, report.results)


@pytest.mark.slow
def test_the_compiled_engine_runs_loops():
    """(12 steps: with inductor's default inlining, each step doubles the kernel, and this
    took minutes to compile; see autodiff._Inductor.)"""
    report = check("grad", "iterate((s + x*y/s)/2, s, 1, 12) + sum(x^k, k, 0, 4)", ["x=2,y=1.5"], engine="compiled")
    assert report.counts() == {"ok": 1}
    report = check("hessian", "prod(1 + x*y/k, k, 1, 3)", ["x=2,y=1.5"], engine="compiled")
    assert report.counts() == {"ok": 1}


def test_vector_components_with_loops():
    # [1 + x + ... + x^5, x y^3]: Jacobian [[1 + 2x + 3x^2 + 4x^3 + 5x^4, 0], [y^3, 3 x y^2]]
    report = check("jacobian", "[sum(x^k, k, 0, 5), iterate(s*y, s, x, 3)]", ["x=0.5,y=2"])
    assert report.counts() == {"ok": 1}
    np.testing.assert_allclose(report.reference[0], [[1 + 1 + 0.75 + 0.5 + 0.3125, 0], [8, 6]], rtol=1e-15)


# -- awkward points -------------------------------------------------------------------------


def test_a_step_that_divides_by_zero_partway_is_undefined_and_says_which():
    # s1 = 1/(2.5 - 2) = 2, then 1/(2 - 2)
    (result,) = check("grad", "iterate(1/(s - 2), s, x, 3)", ["x=2.5"]).results
    assert result.status == "undefined"
    assert "step 2 of iterate" in result.reason and "division by zero" in result.reason


def test_a_term_undefined_at_one_index_only():
    (result,) = check("value", "sum(1/(x - k), k, 0, 5)", ["x=3"]).results
    assert result.status == "undefined" and "k = 3" in result.reason
    # elsewhere: the sum of 1/(x - k), and its derivative -sum 1/(x - k)^2
    report = check("grad", "sum(1/(x - k), k, 0, 5)", ["x=3.5"])
    assert report.reference[0][0] == pytest.approx(-sum(1 / (3.5 - k) ** 2 for k in range(6)), rel=1e-15)


def test_on_a_grid_the_point_where_a_term_is_undefined_is_the_only_undefined_one():
    report = check("grad", "sum(1/(x - k), k, 0, 5)", grid=["x=2.5:3.5:5"])
    assert [r.status for r in report.results] == ["ok", "ok", "undefined", "ok", "ok"]


@pytest.mark.parametrize(
    ("expr", "value", "grad"),
    [
        ("iterate(s*x, s, x^2, 0)", 0.25, 1.0),  # no steps: the initial value, x^2
        ("sum(x^k, k, 3, 3)", 0.125, 0.75),  # one term, x^3
        ("sum(x, k, 1, 0)", 0.0, 0.0),  # no terms
        ("prod(x, k, 1, 0)", 1.0, 0.0),
        ("x*prod(x, k, 5, 4)", 0.5, 1.0),
    ],
)
def test_empty_and_single_loops(expr, value, grad):
    for command, want in (("value", value), ("grad", [grad])):
        report = check(command, expr, ["x=0.5"])
        assert report.counts() == {"ok": 1}
        assert report.reference[0] == pytest.approx(want) and report.autodiff[0] == pytest.approx(want)


def test_a_kink_reached_inside_a_loop_is_undefined():
    # s1 = |x| - 1 = x - 1 near 1, s2 = |x - 1| - 1: one-sided derivatives -1 and 1 at x = 1
    (result,) = check("grad", "iterate(Abs(s) - 1, s, x, 2)", ["x=1"]).results
    assert result.status == "undefined" and "one-sided derivatives differ" in result.reason
    (result,) = check("grad", "iterate(Abs(s) - 1, s, x, 2)", ["x=1.5"]).results
    assert result.status == "ok" and result.reference[0] == 1


@pytest.mark.parametrize(
    ("expr", "command"),
    [
        ("sum(x^k/factorial(k), k, 0, 15)", "hessian"),
        ("iterate((s + x*y/s)/2, s, 1, 12)", "hessian"),
        ("prod(1 + x*y/k, k, 1, 6)", "grad"),
        ("iterate(s - 0.1*x*s + y, s, y, 20)", "taylor"),
        ("sum(Abs(x - k/2), k, -2, 2) + iterate(Max(s, x), s, y, 2)", "hessian"),
    ],
)
def test_the_float64_reference_on_a_grid_is_the_exact_one(expr, command):
    """Generated points get the loop run forward with Taylor coefficients in float64 (or the
    exact reference where float64 cannot be trusted): the same as --precise at every point."""
    grid = {"grid": ["x=-1:2:7", "y=0.5:2:4"], "variables": "x,y"}
    fast, exact = check(command, expr, **grid), check(command, expr, precise=True, **grid)
    for i in range(len(fast)):
        a, b = fast.result(i), exact.result(i)
        np.testing.assert_array_equal(a.defined, b.defined, err_msg=f"{expr} at {a.point}")
        np.testing.assert_allclose(a.reference, b.reference, rtol=1e-10, atol=1e-12, err_msg=f"{expr} at {a.point}")


def test_the_formulas_show_the_loop_and_its_derivatives():
    report = check("hessian", "sin(iterate(s*x, s, 1, 3))", ["x=1"])
    (formula,) = np.ravel(report.symbolic)
    assert "Derivative(iterate(s*x, s, 1, 3), (x, 2))" in formula


# -- the language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["sum(x**k/factorial(k), k, 0, 10)", "prod(1 + x/k, k, 1, 8)", "iterate((s + x/s)/2, s, 1, 6)",
     "sum(sum(j*k*x, j, 1, 2), k, -3, 3)", "iterate(s + sum(s**j, j, 0, 2), s, x, 4)"],
)  # fmt: skip
def test_loops_print_as_typed(text):
    assert to_text(parse_expression(text)) == text


def test_bounds_are_integer_constant_expressions_and_product_is_prod():
    assert parse_expression("prod(k, k, 1, 2^3)") == parse_expression("product(k, k, 1, 8)")
    assert parse_expression("sum(k x, k, 10/5, 2*3 - 1)") == parse_expression("sum(k*x, k, 2, 5)")


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("sum(k, x, 1, 3)", "cannot be named 'x': that is a variable", 7),
        ("sum(k, sin, 1, 3)", "cannot be named 'sin': that is a function", 7),
        ("sum(k, pi, 1, 3)", "cannot be named 'pi': that is a constant", 7),
        ("sum(sum(k, k, 1, 2), k, 1, 3)", "that is the name of a loop around it", 11),
        ("k + sum(k, k, 1, 3)", "'k' is bound by a loop here and is a variable elsewhere", 11),
        ("sum(k, k, 1, 2.5)", "the last index of sum() must be an integer constant, not 5/2", 13),
        ("sum(k, k, 1, x)", "must be an integer constant, such as 10 or 2^3", 13),
        ("sum(k, k, 1, 10^6)", "sum() of 1,000,000 terms (limit 100,000)", 0),
        ("sum(k, k, 3, 1)", "the last index of sum() (1) is below the first (3)", 13),
        ("iterate(s, s, 0, -1)", "iterate() takes 0 to 10,000 steps, not -1", 17),
        ("iterate(s, s, 0, 20000)", "iterate() takes 0 to 10,000 steps, not 20,000", 17),
        ("sum(k, 2, 1, 3)", "the second argument of sum() is the name of its index", 7),
        ("sum(k, k, 1)", "sum() takes 4 arguments, sum(f, k, a, b); got 3", 0),
        ("sum(sum(sum(i*j*k, i, 1, 1000), j, 1, 1000), k, 1, 3)",
         "evaluates 12,009,012 nodes per point, a loop's body once per step (limit 10,000,000)", 0),
    ],
)  # fmt: skip
def test_bad_loops_are_input_errors_pointing_at_the_cause(text, message, column):
    with pytest.raises(ParseError) as caught:
        parse_expression(text, ("x",) if "x, 1" in text else ())
    assert message in caught.value.message
    assert caught.value.start == column


def test_a_let_cannot_bring_in_a_variable_named_like_a_loop_index():
    with pytest.raises(DiffcliError, match="'k' is bound by a loop and is also a variable"):
        check("value", "sum(a, k, 1, 3)", ["k=2"], let={"a": "k^2"})
    report = check("value", "sum(a*k, k, 1, 3)", ["x=2"], let={"a": "x^2"})  # 4 * (1 + 2 + 3)
    assert report.reference[0] == 24


def test_loops_nested_past_the_depth_limit_are_refused():
    text = "x"
    for i in range(9):
        text = f"sum({text}, k{i}, 1, 1)"
    with pytest.raises(ParseError, match="nested more than 8 deep"):
        parse_expression(text)


def test_the_command_line_reports_a_bad_loop_in_one_line():
    result = CliRunner().invoke(cli, ["value", "sum(k, k, 1, y)", "--at", "y=1"])
    assert result.exit_code == 2
    assert "must be an integer constant" in result.output and "Traceback" not in result.output


# -- the command line, suites and resources ---------------------------------------------------


def test_grids_and_formats():
    runner = CliRunner()
    result = runner.invoke(cli, ["grad", "iterate(s - 0.1*x*s, s, 1, 50)", "--grid", "x=0:1:11", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [p["status"] for p in report["results"]] == ["ok"] * 11
    # d/dx (1 - x/10)^50 = -5 (1 - x/10)^49
    points = [p["reference"][0] for p in report["results"]]
    np.testing.assert_allclose(points, [-5 * (1 - x / 10) ** 49 for x in np.linspace(0, 1, 11)], rtol=1e-13)


def test_a_suite_of_loops(tmp_path):
    suite = tmp_path / "loops.toml"
    suite.write_text(
        '[[case]]\nexpr = "sum(x^k/factorial(k), k, 0, 20)"\nat = [{ x = 0.5 }]\n'
        "expect = { value = [1.6487212707001282] }\n"
        '[[case]]\nexpr = "iterate((s + x/s)/2, s, 1, 8)"\nsample = { box = { x = [1, 4] }, n = 50 }\n'
    )
    result = CliRunner().invoke(cli, ["batch", str(suite), "--format", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    checks = [r for r in records if "check" in r]
    assert len(checks) == 8 and all(r["ok"] for r in checks)
    assert sum(len(r["results"]) for r in checks) == 4 * (1 + 50)


def test_a_long_loop_takes_fewer_points_at_a_time():
    """autograd records every step: the tape, not the outputs, bounds the chunk."""
    short = prepare("grad", "iterate((s + x/s)/2, s, 1, 10)", grid=["x=1:2:11"])
    long = prepare("grad", "iterate((s + x/s)/2, s, 1, 10000)", grid=["x=1:2:11"])
    assert autodiff.points_per_chunk(short, 8) == autodiff.CHUNK
    assert autodiff.points_per_chunk(long, 8) == 4096
    assert autodiff.points_per_chunk(prepare("value", "iterate(s*x, s, 1, 10000)", ["x=1"]), 8) == autodiff.CHUNK


def test_a_library_error_for_a_bad_bound():
    with pytest.raises(DiffcliError, match="integer constant"):
        check("value", "sum(k, k, 1, 1.5)", ["x=1"])


def test_the_float64_screen_frees_each_chunk_at_once():
    """A screening that referred to itself lived until the cyclic collector ran, and a
    10^7-point grid's worker grew from 260 to 630 MiB with the chunks it kept."""
    import gc

    from diffcli import symbolic

    points = np.linspace(-2, 2, 1000).reshape(-1, 1)
    gc.collect()
    gc.disable()
    try:
        symbolic.screen_vectorised(parse_expression("sum(Abs(x - k), k, 0, 2) + sqrt(x)"), ["x"], points)
        assert not [o for o in gc.get_objects() if type(o) is symbolic._Screening]
    finally:
        gc.enable()
