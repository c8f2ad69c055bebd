"""Many points for one expression: grids, samples, CSV tables, combinations, summaries."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from diffcli.cli import cli
from diffcli.errors import DiffcliError
from diffcli.pipeline import check, prepare


def points_of(**kwargs):
    return prepare("value", "x + y", **kwargs).points


def test_grid_is_an_inclusive_linspace_and_grids_make_a_mesh():
    p = points_of(grid=["x=0:1:3"], at=["y=5"])
    np.testing.assert_array_equal(p, [[0.0, 5.0], [0.5, 5.0], [1.0, 5.0]])
    mesh = points_of(grid=["x=0:1:2", "y=-1:1:3"])
    assert mesh.shape == (6, 2)
    assert {tuple(r) for r in mesh} == {(a, b) for a in (0.0, 1.0) for b in (-1.0, 0.0, 1.0)}


def test_grid_bounds_are_constant_expressions():
    p = prepare("value", "sin(x)", grid=["x=0:pi/2:3"]).points
    np.testing.assert_allclose(p[:, 0], [0, math.pi / 4, math.pi / 2], rtol=0, atol=0)


def test_sample_is_uniform_in_the_box_and_reproducible():
    a = points_of(sample=["x=0:1", "y=-5:-4"], n=500, seed=3)
    b = points_of(sample=["x=0:1", "y=-5:-4"], n=500, seed=3)
    c = points_of(sample=["x=0:1", "y=-5:-4"], n=500, seed=4)
    assert a.shape == (500, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a[:, 0].min() >= 0 and a[:, 0].max() <= 1 and a[:, 1].min() >= -5 and a[:, 1].max() <= -4
    assert abs(a[:, 0].mean() - 0.5) < 0.05


def test_sample_combined_with_a_fixed_value():
    p = points_of(sample=["x=0:1"], n=7, at=["y=2"])
    assert p.shape == (7, 2) and (p[:, 1] == 2).all()


def test_csv_points_with_constant_expression_cells():
    p = points_of(points_text="y,x\n1,2\npi,-1e-3\n")
    np.testing.assert_array_equal(p, [[2.0, 1.0], [-1e-3, math.pi]])


def test_csv_combined_with_a_grid():
    p = prepare("value", "x + y + z", points_text="x,y\n1,2\n3,4\n", grid=["z=0:1:2"]).points
    assert p.shape == (4, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": ["x=0:1"]}, "LOW:HIGH:COUNT"),
        ({"grid": ["x=0:1:0"], "at": ["y=1"]}, "at least 1"),
        ({"grid": ["x=0:1:2.5"], "at": ["y=1"]}, "whole number"),
        ({"grid": ["x=0:1:3"]}, "no value for 'y'"),
        ({"grid": ["x=0:1:3", "x=0:1:3"], "at": ["y=1"]}, "'x' gets values from both"),
        ({"grid": ["z=0:1:3"], "at": ["x=1,y=1"]}, "unknown variable 'z'"),
        ({"sample": ["x=0:1"], "n": 0, "at": ["y=1"]}, "--n must be at least 1"),
        ({"n": 5, "at": ["x=1,y=1"]}, "--n needs --sample"),
        ({"points_text": "x,y\n1\n"}, "line 2 has 1 cells for 2 columns"),
        ({"points_text": "x,y\n1,abc\n"}, "must be a constant"),
        ({"points_text": "x,y\n"}, "no rows"),
        ({"points_text": ""}, "empty"),
        ({"points_text": "x,1y\n1,2\n"}, "not a variable name"),
        ({"grid": ["x=0:1:100000", "y=0:1:100000"]}, "at most"),
        ({"grid": ["x=0:1:3"], "at": ["1"]}, "give values by name"),
        # numpy refuses a reversed box, and HIGH - LOW overflowing made NaN grid points
        ({"sample": ["x=1:0"], "at": ["y=1"]}, "--sample x=1:0: LOW is greater than HIGH"),
        ({"sample": ["x=-1e308:1e308"], "at": ["y=1"]}, "HIGH - LOW is too large for float64"),
        ({"grid": ["x=-1e308:1e308:3"], "at": ["y=1"]}, "HIGH - LOW is too large for float64"),
    ],
)
def test_point_source_errors(kwargs, message):
    with pytest.raises(DiffcliError) as info:
        prepare("value", "x + y", **kwargs)
    assert message in info.value.render()


def test_a_grid_may_run_downwards():
    report = check("value", "x", grid=["x=1:-1:3"])
    assert report.points[:, 0].tolist() == [1.0, 0.0, -1.0]


def test_many_points_use_the_vectorised_reference_and_agree_with_the_precise_one():
    grid = ["x=-2:2:9", "y=0.5:3:4"]
    expr = "x^2 sin(y) + exp(x*y)/(1+y^2) + atan2(y, x) + Abs(x - 1)"
    fast = check("hessian", expr, grid=grid)
    precise = check("hessian", expr, grid=grid, precise=True)
    assert not fast.precise and precise.precise
    np.testing.assert_allclose(fast.reference, precise.reference, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(fast.verdicts.status, precise.verdicts.status)


def test_vectorised_reference_handles_every_function():
    expr = (
        "gamma(x) + loggamma(x) + erf(x) + erfc(x) + sinc(x) + cbrt(-x) + floor(3x) + Mod(x, 0.37)"
        " + Max(x, 1.5) + Heaviside(x - 1.5) + sign(x - 1.5) + sec(x) + cot(x) + root(x, 3) + log(x, 2)"
    )
    grid = ["x=0.55:2.55:17"]
    fast = check("grad", expr, grid=grid)
    precise = check("grad", expr, grid=grid, precise=True)
    np.testing.assert_allclose(fast.reference, precise.reference, rtol=1e-12, atol=1e-14)
    assert fast.counts() == precise.counts()


@pytest.mark.parametrize("side", [4, 70])  # below and above reference.CSE_FROM points
def test_vectorised_reference_with_names_of_the_generated_code(side):
    # numpy, erf and sin are names of lambdify's namespace (the arguments get dummified);
    # x0 is the name cse would give its first temporary.
    from diffcli import reference

    assert (side**2 >= reference.CSE_FROM) == (side == 70)
    expr = "numpy*x0 + sin(numpy*x0)**2 + exp(erf*x0) + sin"
    grid = [f"numpy=0.1:1:{side}", f"x0=0.2:1:{side}", "erf=0.5:1:1", "sin=2:2:1"]
    fast = check("hessian", expr, grid=grid, variables="numpy,x0,erf,sin")
    assert fast.counts() == {"ok": side**2}
    # d2/dnumpy2 = 2 x0^2 cos(2 numpy x0), by hand
    numpy_, x0 = fast.points[-1, 0], fast.points[-1, 1]
    assert fast.reference[-1, 0, 0] == pytest.approx(2 * x0**2 * math.cos(2 * numpy_ * x0), rel=1e-13)


def test_the_float64_screen_leaves_the_points_alone():
    # log(x, y) once printed as numpy.log(x, y), which writes log(x) into y (its `out`)
    from diffcli.pipeline import prepare
    from diffcli.symbolic import screen_vectorised

    request = prepare("value", "log(x, y) * sqrt(y - 1)", grid=["x=0.5:2:4", "y=0:2:5"])
    points = request.points.copy()
    screen = screen_vectorised(request.tree, request.variables, request.points)
    np.testing.assert_array_equal(request.points, points)
    y = points[:, 1]
    # certainly not real where y < 1 (sqrt of a negative number); y = 1 divides by log(1) = 0,
    # which float64 cannot tell from an overflow: the exact reference decides there
    np.testing.assert_array_equal(screen.undefined, y < 1)
    np.testing.assert_array_equal(screen.suspect, y == 1)
    assert screen.reasons == ["sqrt(y - 1) is not real"]


def test_summary_counts_and_locates_the_largest_errors():
    report = check("grad", "x*sqrt(x)", grid=["x=0:4:5"])
    s = report.summary()
    assert s["points"] == 5 and s["counts"] == {"ok": 4, "mismatch": 1}
    assert s["max_abs_err"] == {"value": math.inf, "point": {"x": 0.0}}


def test_summary_json_leaves_out_results_unless_asked():
    args = ["grad", "x^2 sin(y)", "--grid", "x=0:1:5", "--grid", "y=0:1:4", "-f", "json"]
    doc = json.loads(CliRunner().invoke(cli, [*args, "--summary"]).output)
    assert "results" not in doc and doc["summary"]["points"] == 20 and doc["summary"]["counts"] == {"ok": 20}
    full = json.loads(CliRunner().invoke(cli, [*args, "--summary", "--results"]).output)
    assert len(full["results"]) == 20
    assert len(json.loads(CliRunner().invoke(cli, args).output)["results"]) == 20


def test_table_switches_to_the_summary_above_20_points():
    few = CliRunner().invoke(cli, ["grad", "x^2", "--grid", "x=0:1:20", "-f", "table"]).output
    many = CliRunner().invoke(cli, ["grad", "x^2", "--grid", "x=0:1:21", "-f", "table"]).output
    assert few.count("  f = ") == 20 and "max abs err" not in few
    assert "  f = " not in many and "max abs err" in many and "21 points: 21 ok" in many


def test_plain_and_csv_summaries():
    plain = CliRunner().invoke(cli, ["grad", "x*sqrt(x)", "--grid", "x=0:4:5", "--summary"]).output
    fields = dict(f.split("=", 1) for f in plain.strip().split("\t"))
    assert fields["points"] == "5" and fields["mismatch"] == "1" and fields["max_abs_err_at"] == "x=0.0"
    csv_out = CliRunner().invoke(cli, ["grad", "x", "--grid", "x=0:4:5", "--summary", "-f", "csv"]).output
    assert csv_out.splitlines()[0].startswith("command,points,ok,undefined,unknown,mismatch")


def test_points_from_stdin_csv():
    result = CliRunner().invoke(cli, ["grad", "x*y", "--points", "-", "-f", "json"], input="x,y\n1,2\n3,4\n")
    doc = json.loads(result.output)
    assert [r["autodiff"] for r in doc["results"]] == [[2.0, 1.0], [4.0, 3.0]]


def test_expression_and_points_cannot_both_come_from_stdin():
    result = CliRunner().invoke(cli, ["grad", "-", "--points", "-"], input="x\n")
    assert result.exit_code == 2 and "both read standard input" in result.output


@pytest.mark.parametrize("command", ["grad", "hessian", "jvp"])
def test_streamed_summary_equals_the_full_one(monkeypatch, command):
    from diffcli import autodiff
    from diffcli.pipeline import run, run_summary

    monkeypatch.setattr(autodiff, "CHUNK", 97)  # many chunks, the last one short
    request = prepare(command, "x*sqrt(x) + y**2*atan2(y, x)", grid=["x=0:2:31", "y=-1:1:23"])
    full, streamed = run(request), run_summary(request)
    assert streamed.summary() == full.summary()
    counts = streamed.summary()["counts"]
    if command == "hessian":  # (x*sqrt(x))'' is infinite at x = 0: no Hessian there, for any y
        assert counts == {"ok": 690, "undefined": 23}
    else:  # autodiff's inf * 0 at x = 0, for every y but 0, where atan2(0, 0) leaves it undefined
        assert counts == {"ok": 690, "undefined": 1, "mismatch": 22}
    assert len(streamed) == 31 * 23 and streamed.points.shape == (0, 2) and streamed.ok is (command == "hessian")
    assert not streamed.precise  # generated points get the float64 reference


def test_a_grid_through_a_boundary_gets_the_derivative_of_the_function():
    # the grid point on the boundary is recomputed exactly: x everywhere, so 1 (torch: 0)
    report = check("grad", "x if x != 0 else 0", grid=["x=-1:1:5"])
    assert report.reference[:, 0].tolist() == [1.0] * 5
    assert [r.status for r in report.results] == ["ok", "ok", "mismatch", "ok", "ok"]
    assert report.recomputed == 1
    kink = check("grad", "Abs(x - y)", grid=["x=-1:1:3", "y=-1:1:3"])
    assert kink.counts() == {"ok": 6, "undefined": 3}  # the diagonal


def test_a_grid_where_float64_overflows_is_recomputed_not_undefined():
    report = check("value", "log(exp(x))", grid=["x=700:720:5"])
    assert report.reference.tolist() == [700.0, 705.0, 710.0, 715.0, 720.0]
    assert [r.status for r in report.results] == ["ok", "ok", "mismatch", "mismatch", "mismatch"]  # torch: inf
    assert report.recomputed == 3
    # a value beyond float64's range exists: torch's inf is its float64 rounding
    assert check("value", "exp(x)", grid=["x=700:800:3"]).counts() == {"ok": 3}


def test_a_grid_where_the_expression_cancels_is_recomputed():
    # sqrt(x**2 + 1) - x = 1/(sqrt(x**2 + 1) + x): float64 (torch and SymPy's formula alike) gives 0
    report = check("value", "sqrt(x^2 + 1) - x", grid=["x=1e8:1e9:2"])
    assert report.reference.tolist() == pytest.approx([5e-9, 5e-10], rel=1e-15)
    assert report.counts() == {"mismatch": 2}


def test_past_the_exact_budget_points_are_unknown_and_say_so():
    from diffcli.pipeline import prepare
    from diffcli.reference import Budget, Formulas, compute

    request = prepare("value", "log(exp(x))", grid=["x=710:713:4"])
    ref = compute(Formulas(request.tree, request.variables), "value", request.points, budget=Budget(points=2))
    assert ref.exact.tolist() == [True, True, False, False] and ref.unknown.tolist() == [False, False, True, True]
    assert "not recomputed to 30 digits: more than" in ref.reasons[2] and "--precise" in ref.reasons[2]


def test_every_command_on_a_grid_through_boundaries():
    # x*Abs(x) through 0: value and gradient exist (0 at 0); the Hessian does not (-2 and 2)
    grid = {"grid": ["x=-1:1:3"]}
    assert check("value", "x*Abs(x)", **grid).counts() == {"ok": 3}
    assert check("grad", "x*Abs(x)", **grid).counts() == {"ok": 3}
    hessian = check("hessian", "x*Abs(x)", **grid)
    assert hessian.counts() == {"ok": 2, "undefined": 1} and hessian.results[1].reason.endswith("kink of Abs(x)")
    # sin(x)/x if x != 0 else 1: the Hessian at 0 is -1/3 (1 - x**2/6 + ...); torch's is 0
    sinc = check("hessian", "sin(x)/x if x != 0 else 1", **grid)
    assert sinc.reference[1, 0, 0] == pytest.approx(-1 / 3, rel=1e-15) and sinc.results[1].status == "mismatch"
    # a JVP along the kink of Abs(x - y) exists (0); across it, it does not
    along = check("jvp", "Abs(x - y)", grid=["x=0:1:2"], at=["y=0"], tangent="x=1,y=1")
    across = check("jvp", "Abs(x - y)", grid=["x=0:1:2"], at=["y=0"], tangent="x=1,y=0")
    assert [r.status for r in along.results] == ["ok", "ok"] and along.reference.tolist() == [0.0, 0.0]
    assert [r.status for r in across.results] == ["undefined", "ok"] and across.reference[1] == 1.0
