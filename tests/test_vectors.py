"""Vector-valued expressions, Jacobians and VJPs, against values derived by hand
(closed forms below) or with mpmath's high-precision differentiation of each component."""

import csv
import io
import json
import math

import mpmath
import numpy as np
import pytest
from click.testing import CliRunner

from diffcli.cli import cli
from diffcli.errors import DiffcliError
from diffcli.pipeline import check

ENGINES = ["autograd", "func"]
MODES = ["reverse", "forward"]

POLAR = "[r cos(t), r sin(t)]"
ROTATION = "[x cos(0.3) - y sin(0.3), x sin(0.3) + y cos(0.3)]"
SOFTMAX = "[exp(a)/(exp(a) + exp(b) + exp(c)), exp(b)/(exp(a) + exp(b) + exp(c)), exp(c)/(exp(a) + exp(b) + exp(c))]"


def polar_jacobian(r, t):  # by hand
    return [[math.cos(t), -r * math.sin(t)], [math.sin(t), r * math.cos(t)]]


def rotation_jacobian():
    c, s = math.cos(0.3), math.sin(0.3)
    return [[c, -s], [s, c]]


def softmax_jacobian(*z):  # by hand: diag(s) - s s^T
    e = np.exp(z)
    s = e / e.sum()
    return (np.diag(s) - np.outer(s, s)).tolist()


CASES = [
    (POLAR, "r=2,t=0.5", polar_jacobian(2, 0.5)),
    (ROTATION, "x=1.5,y=-0.7", rotation_jacobian()),
    (SOFTMAX, "a=1,b=2,c=3", softmax_jacobian(1, 2, 3)),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("expr", "point", "jacobian"), CASES)
def test_jacobians_by_hand(expr, point, jacobian, engine, mode):
    report = check("jacobian", expr, [point], engine=engine, mode=mode)
    assert report.counts() == {"ok": 1}
    np.testing.assert_allclose(report.reference[0], jacobian, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(report.autodiff[0], jacobian, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expr", "point", "jacobian"), CASES)
def test_vjps_and_jvps_are_products_with_the_jacobian(expr, point, jacobian, engine):
    m, n = len(jacobian), len(jacobian[0])
    c = [1.5, -2.0, 0.25][:m]
    t = [0.5, 3.0, -1.0][:n]
    vjp = check("vjp", expr, [point], cotangent=",".join(map(str, c)), engine=engine)
    np.testing.assert_allclose(vjp.reference[0], np.array(c) @ np.array(jacobian), rtol=1e-14, atol=1e-15)
    assert vjp.counts() == {"ok": 1} and vjp.autodiff.shape == (1, n)
    jvp = check("jvp", expr, [point], tangent=",".join(map(str, t)), engine=engine)
    np.testing.assert_allclose(jvp.reference[0], np.array(jacobian) @ np.array(t), rtol=1e-14, atol=1e-15)
    assert jvp.counts() == {"ok": 1} and jvp.autodiff.shape == (1, m)


def _component_hessian(text, names, point):
    """Each component's Hessian by mpmath's numerical differentiation at 30 digits."""
    from oracle import at

    from diffcli.parser import parse_expression

    n = len(names)
    hessians = []
    with mpmath.workdps(30):
        xs = [mpmath.mpf(v) for v in point]
        for component in parse_expression(text, vector=True).args:

            def f(*v, component=component):
                return at(component, names, v)

            orders = [[tuple(int(k == i) + int(k == j) for k in range(n)) for j in range(n)] for i in range(n)]
            hessians.append([[float(mpmath.diff(f, xs, order)) for order in row] for row in orders])
    return hessians


@pytest.mark.parametrize("engine", ENGINES)
def test_hessians_of_each_component_against_mpmath(engine):
    text = "[x^2 y, sin(x y), exp(x)/(1 + y^2)]"
    report = check("hessian", text, ["x=0.7,y=-1.2"], engine=engine)
    assert report.counts() == {"ok": 1} and report.autodiff.shape == (1, 3, 2, 2)
    want = _component_hessian(text, ("x", "y"), (0.7, -1.2))
    np.testing.assert_allclose(report.reference[0], want, rtol=1e-12, atol=1e-14)


def test_the_value_of_a_vector_is_its_components():
    report = check("value", POLAR, ["r=2,t=0.5"])
    assert report.values.tolist() == [[2 * math.cos(0.5), 2 * math.sin(0.5)]]
    assert report.symbolic == ["r*cos(t)", "r*sin(t)"]


def test_a_scalar_jacobian_is_one_row_and_its_vjp_the_weighted_gradient():
    report = check("jacobian", "x^2 y", ["x=1,y=2"])
    assert report.reference.tolist() == [[[4.0, 1.0]]] and report.values.tolist() == [2.0]
    assert check("vjp", "x^2 y", ["x=1,y=2"], cotangent="3").reference.tolist() == [[12.0, 3.0]]


@pytest.mark.parametrize("mode", MODES)
def test_awkward_points_component_by_component(mode):
    # a kink in one component: that row is undefined, the other still compared (by hand: 1)
    report = check("jacobian", "[Abs(x), x]", ["x=0"], mode=mode)
    result = report.results[0]
    assert result.status == "undefined" and result.reason.startswith("f₁: ")
    assert report.reference[0, 1, 0] == 1.0 and report.results[0].defined.tolist() == [[False], [True]]
    # a jump, and an infinite first derivative (cbrt at 0)
    assert check("jacobian", "[floor(x), x]", ["x=0"], mode=mode).results[0].status == "undefined"
    assert "infinite" in check("jacobian", "[cbrt(x), x]", ["x=0"], mode=mode).results[0].reason
    # an undefined value in one component: its rows only
    report = check("value", "[log(x), x]", ["x=-1"])
    assert report.results[0].defined.tolist() == [False, True] and report.results[0].reason == "f₁: log(x) is not real"


def test_reverse_mode_spreads_an_infinite_derivative_to_other_rows():
    # d(sqrt(x))/dx is infinite at 0: reverse mode multiplies it by the zero cotangent of the
    # other output and gets NaN in the row of x*y, whose true derivative is y = 1. A real
    # autodiff failure: diffcli says mismatch. Forward mode keeps that row (and gets 0*inf
    # in d(sqrt(x))/dy instead, whose truth is 0).
    reverse = check("jacobian", "[x y, sqrt(x)]", ["x=0,y=1"], mode="reverse")
    assert math.isnan(reverse.autodiff[0, 0, 0]) and reverse.reference[0, 0].tolist() == [1.0, 0.0]
    assert reverse.counts() == {"mismatch": 1}
    forward = check("jacobian", "[x y, sqrt(x)]", ["x=0,y=1"], mode="forward")
    assert forward.autodiff[0, 0].tolist() == [1.0, 0.0] and math.isnan(forward.autodiff[0, 1, 1])
    assert forward.reference[0, 1, 1] == 0.0 and forward.counts() == {"mismatch": 1}


@pytest.mark.parametrize("engine", ENGINES)
def test_on_a_grid_and_in_a_summary(engine):
    report = check("jacobian", POLAR, grid=["r=0.5:2:4", "t=-3:3:5"], engine=engine)
    assert report.counts() == {"ok": 20}
    for point, jacobian in zip(report.points, report.reference):
        np.testing.assert_allclose(jacobian, polar_jacobian(*point), rtol=1e-15, atol=1e-15)
    from diffcli.pipeline import prepare, run_summary

    summary = run_summary(prepare("vjp", SOFTMAX, sample=["a=-2:2", "b=-2:2", "c=-2:2"], n=50, cotangent="1,0,-1"))
    assert summary.counts() == {"ok": 50}


def test_float32():
    report = check("jacobian", POLAR, ["r=2,t=0.5"], dtype="float32")
    assert report.counts() == {"ok": 1}
    np.testing.assert_allclose(report.autodiff[0], polar_jacobian(2, 0.5), rtol=1e-6)


@pytest.mark.parametrize(
    ("command", "text", "options", "message"),
    [
        (
            "grad",
            "[x, y]",
            {},
            "grad takes a scalar EXPR; for a vector of 2 components use value, hessian, jvp, jacobian, vjp",
        ),
        ("value", "[" + ", ".join(["x"] * 65) + "]", {}, "a vector of 65 components \\(limit 64\\)"),
        ("value", "[]", {}, "an empty vector"),
        ("value", "x + [y]", {}, "only allowed as the whole expression"),
        ("vjp", "[x, y]", {"cotangent": "1"}, "--cotangent 1: 1 value for 2 components \\(f1, f2\\)"),
        ("jacobian", "[x, y]", {"mode": "sideways"}, "--mode must be one of auto, reverse, forward"),
        ("value", "[x, y]", {"cotangent": "1,1"}, "--cotangent only applies to vjp"),
    ],
)
def test_bad_vectors_are_input_errors(command, text, options, message):
    with pytest.raises(DiffcliError, match=message):
        check(command, text, ["x=1,y=2"], **options)


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_every_format_labels_the_entries():
    table = run("jacobian", POLAR, "--at", "r=2,t=0.5", "-f", "table").output
    assert "∂f₂/∂t" in table and "f = (1.755165124, 0.9588510772)" in table
    header = next(csv.reader(io.StringIO(run("jacobian", POLAR, "--at", "r=2,t=0.5", "-f", "csv").output)))
    assert header[:4] == ["at[r]", "at[t]", "value[1]", "value[2]"] and "autodiff[2,t]" in header
    doc = json.loads(run("vjp", POLAR, "--at", "r=2,t=0.5", "-c", "1,-1", "-f", "json").output)
    assert doc["cotangent"] == [1.0, -1.0] and len(doc["results"][0]["value"]) == 2
    plain = run("value", "[x, -y]", "--at", "x=1,y=2", "-f", "plain").output.split("\t")
    assert plain[1] == "1.0,-2.0"


def test_a_vector_suite(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        f'[defaults]\nmode = "forward"\n[[case]]\nname = "polar"\nexpr = "{POLAR}"\nat = [{{ r = 2, t = 0.5 }}]\n'
        f"cotangent = [1, -1]\nexpect = {{ jacobian = [{polar_jacobian(2, 0.5)}] }}\n"
    )
    result = run("batch", str(path), "-f", "json")
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["check"] for r in records[:-1]] == ["value", "jacobian", "hessian", "jvp", "vjp"]
    assert result.exit_code == 0 and all(r["status"] == "ok" for r in records[:-1])
    assert records[4]["cotangent"] == [1.0, -1.0]
