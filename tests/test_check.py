"""The library pipeline: points, variables, statuses, and the seed examples."""

import math
import re

import mpmath
import numpy as np
import pytest

from diffcli.errors import DiffcliError
from diffcli.pipeline import check, prepare, run_summary


def only(report):
    assert len(report.results) == 1
    return report.results[0]


# -- the seed article's examples, corrected ----------------------------------


def test_square_gradient_value_hessian_and_jvp():
    grad = only(check("grad", "x*x", ["x=2.0"]))
    assert grad.value == 4.0 and grad.autodiff.tolist() == [4.0] and grad.reference.tolist() == [4.0]
    assert only(check("value", "x*x", ["x=2.0"])).autodiff == 4.0
    assert only(check("hessian", "x*x", ["x=2.0"])).autodiff.tolist() == [[2.0]]
    jvp = only(check("jvp", "x*x", ["x=2.0"], tangent="1"))
    assert (jvp.value, float(jvp.autodiff)) == (4.0, 4.0)


def test_several_points_in_one_batched_call():
    report = check("grad", "x*x", ["x=1", "x=2", "x=-3.5"])
    assert [r.autodiff.tolist() for r in report.results] == [[2.0], [4.0], [-7.0]]
    assert [r.value for r in report.results] == [1.0, 4.0, 12.25]
    assert report.ok


def test_square_if_even():
    # x**2 on the even integers, x elsewhere: at 2 and -4 the function jumps (from x to
    # x**2), so it has no derivative; at 3 it is x; at 0 the one-point piece 0**2 matches
    # its neighbours (x), so the derivative is x's, 1, which torch (0) misses.
    report = check("grad", "x**2 if Mod(x, 2) == 0 else x", ["x=2", "x=3", "x=-4", "x=0"])
    assert [r.value for r in report.results] == [4.0, 3.0, 16.0, 0.0]
    assert [r.autodiff.tolist() for r in report.results] == [[4.0], [1.0], [-8.0], [0.0]]
    assert [r.status for r in report.results] == ["undefined", "ok", "undefined", "mismatch"]
    assert report.results[0].reason.startswith("∂f/∂x: jump")
    assert report.results[3].reference.tolist() == [1.0]


# -- statuses at awkward points ----------------------------------------------


@pytest.mark.parametrize(
    ("command", "expr", "at", "status", "autodiff"),
    [
        ("grad", "sqrt(x)", "x=0", "undefined", [math.inf]),
        ("grad", "x*sqrt(x)", "x=0", "mismatch", [math.nan]),
        ("grad", "Abs(x)", "x=0", "undefined", [0.0]),  # a kink: one-sided derivatives -1 and 1
        ("grad", "Abs(x)^3", "x=0", "ok", [0.0]),
        ("grad", "x*Abs(x)", "x=0", "ok", [0.0]),
        ("hessian", "x*Abs(x)", "x=0", "undefined", [[0.0]]),  # one-sided second derivatives -2 and 2
        ("grad", "Piecewise((sqrt(x), x > 0), (0, True))", "x=-1", "ok", [0.0]),
        ("grad", "Piecewise((sqrt(x), x > 0), (0, True))", "x=0", "undefined", [0.0]),  # slopes 0 and inf
        ("grad", "Piecewise((log(x), x > 0), (0, True))", "x=-1", "ok", [0.0]),
        ("grad", "sqrt(x) if x > 0 else 0", "x=0", "undefined", [0.0]),
        ("hessian", "Piecewise((sqrt(x), x > 0), (0, True))", "x=-1", "ok", [[0.0]]),
        ("value", "log(x)", "x=-1", "undefined", math.nan),
        ("value", "1/x", "x=0", "undefined", math.inf),
        ("grad", "log(x)", "x=-1", "undefined", [-1.0]),
        ("grad", "floor(x) + x**2", "x=1.5", "ok", [3.0]),
        ("grad", "floor(x) + x**2", "x=2", "undefined", [4.0]),
        ("grad", "Mod(x, 2)", "x=2", "undefined", [1.0]),
        ("grad", "Heaviside(x)", "x=0", "undefined", [0.0]),
        ("grad", "sign(x)", "x=3", "ok", [0.0]),
        ("grad", "Max(x, 1)", "x=1", "undefined", [0.5]),
        ("grad", "Max(x, 1)", "x=1.5", "ok", [1.0]),
        ("grad", "Min(x, y, 3)", "x=1,y=2", "ok", [1.0, 0.0]),
        ("grad", "Max(x, Max(x, y))", "x=0,y=0", "undefined", [0.75, 0.25]),
    ],
)
@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_statuses(command, expr, at, status, autodiff, engine):
    result = only(check(command, expr, [at], engine=engine))
    assert result.status == status
    np.testing.assert_array_equal(result.autodiff, autodiff)


def test_power_at_zero_has_the_derivative_of_the_function():
    # x**y near (0, 1) is x along x (slope 1) and 0**y = 0 along y (slope 0): it was called
    # undefined (SymPy's formula is 0*log(0)); torch special-cases 0**y and is right
    result = only(check("grad", "x**y", ["x=0,y=1"]))
    assert result.reference.tolist() == [1.0, 0.0] and result.status == "ok"


def test_mismatch_sets_ok_false_and_exit_code_1():
    report = check("grad", "x*sqrt(x)", ["x=0", "x=1"])
    assert [r.status for r in report.results] == ["mismatch", "ok"]
    assert not report.ok and report.exit_code == 1
    assert report.results[0].verdict.abs_err == math.inf


def test_undefined_alone_exits_0():
    report = check("grad", "sqrt(x)", ["x=0"])
    assert report.ok and report.exit_code == 0


# -- variables and points --------------------------------------------------------


def test_default_variables_are_sorted_and_vars_sets_the_order():
    assert check("grad", "y*x**2", ["x=1,y=2"]).variables == ("x", "y")
    report = check("grad", "y*x**2", ["x=1,y=2"], variables="y,x")
    assert report.variables == ("y", "x")
    assert only(report).autodiff.tolist() == [1.0, 4.0]


def test_vars_turns_constants_and_functions_into_variables():
    result = only(check("grad", "E*x + gamma**2 + I", ["E=2,x=3,gamma=5,I=1"], variables="E,x,gamma,I"))
    assert result.autodiff.tolist() == [3.0, 2.0, 10.0, 1.0]
    assert result.value == 2 * 3 + 25 + 1


def test_extra_variable_has_zero_gradient():
    assert only(check("grad", "x**2", ["x=1,y=5"], variables="x,y")).autodiff.tolist() == [2.0, 0.0]


def test_point_values_are_constant_expressions():
    result = only(check("value", "x + y + z", ["x=pi/4,y=-1e-3,z=sqrt(2)"]))
    assert result.point == {"x": math.pi / 4, "y": -1e-3, "z": math.sqrt(2)}


def test_positional_points_follow_variable_order():
    assert only(check("value", "x - y", ["1,3"])).value == -2.0


def test_constant_expression_needs_no_point():
    result = only(check("grad", "2 + pi"))
    assert result.value == 2 + math.pi and result.autodiff.shape == (0,)


@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_a_long_alternating_series(engine):
    # sum_{k=1}^{300} (-1)^(k+1) x^k / k -> log(1 + x) at |x| < 1; its derivative
    # sum (-1)^(k+1) x^(k-1) = (1 - (-x)^300) / (1 + x), summed by hand below
    text = "x" + "".join(f" {'-' if k % 2 == 0 else '+'} x**{k}/{k}" for k in range(2, 301))
    x = 0.5
    report = check("hessian", text, [f"x={x}"], engine=engine)
    result = only(report)
    second = sum((-1) ** (k + 1) * (k - 1) * x ** (k - 2) for k in range(2, 301))
    assert result.status == "ok" and result.value == pytest.approx(math.log1p(x), rel=1e-15)
    assert result.autodiff[0, 0] == pytest.approx(second, rel=1e-13) and second == pytest.approx(-1 / (1 + x) ** 2)
    grid = check("grad", text, grid=["x=-0.9:0.9:19"], engine=engine)
    assert grid.counts() == {"ok": 19}
    np.testing.assert_allclose(grid.autodiff[:, 0], 1 / (1 + grid.points[:, 0]), rtol=1e-12)


@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_a_long_product_with_quotients(engine):
    # 2*x*y*x*y*...*x*y/x/.../x: 401 operands in one flat Product (once 400 levels deep,
    # refused), folded left to right by torch; f = 2 x**50 y**150 by hand.
    text = "2*" + "*".join(["x", "y"] * 150) + "/" + "/".join(["x"] * 100)
    x, y = 1.002, 0.998
    f = 2 * x**50 * y**150
    result = only(check("hessian", text, [f"x={x},y={y}"], engine=engine))
    assert result.status == "ok" and result.value == pytest.approx(f, rel=1e-13)
    expected = [[50 * 49 * f / x**2, 50 * 150 * f / (x * y)], [50 * 150 * f / (x * y), 150 * 149 * f / y**2]]
    np.testing.assert_allclose(result.autodiff, expected, rtol=1e-12)
    grid = check("grad", text, grid=["x=0.5:1.5:11"], at=["y=1"], engine=engine)
    assert grid.counts() == {"ok": 11}
    np.testing.assert_allclose(grid.autodiff[:, 0], 100 * grid.points[:, 0] ** 49, rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "status", "value"),
    [
        ("1e308 + 1e308 - 1e308 + x", "mismatch", 1e308),  # the partial sum 2e308 overflows float64 only
        ("exp(400)*exp(400)/exp(400)*x", "mismatch", math.exp(400)),  # so does the partial product
        ("exp(400)*(exp(400)/exp(400))*x", "ok", math.exp(400)),  # grouped, nothing overflows
    ],
)
def test_an_intermediate_overflow_is_defined_and_torch_is_judged_against_the_true_value(text, status, value):
    # defined in real analysis: the reference carries the range it needs, and torch's
    # inf (an intermediate float64 overflow) is a mismatch, at hand-given and generated points
    result = only(check("value", text, ["x=1"]))
    assert result.status == status and result.reference == pytest.approx(value, rel=1e-15)
    report = check("value", text, grid=["x=1:2:2"])
    assert report.counts() == {status: 2} and report.recomputed == (2 if status == "mismatch" else 0)


@pytest.mark.parametrize("grid", [False, True])
def test_awkward_constants_give_verdicts_not_internal_errors(grid):
    # each was exit 3 on grids (the float64 reference's generated code), x % 0 everywhere
    points = {"grid": ["x=-2:2:3"]} if grid else {"at": ["x=-2", "x=0", "x=2"]}
    assert check("value", "x % 0", **points).counts() == {"undefined": 3}  # SymPy raised ZeroDivisionError
    assert check("grad", "gamma(0)*x", **points).counts() == {"undefined": 3}  # zoo had no numpy name
    # 10**308 was printed as a Python int: numpy made an object array and arccosh refused it
    report = check("grad", "acosh(1e308)*x", **points)
    assert report.counts() == {"ok": 3}
    assert report.reference[:, 0].tolist() == pytest.approx([math.log(2) + 308 * math.log(10)] * 3, rel=1e-15)
    # floor(asin(E)) is complex: numpy's floor refused it (the point is undefined anyway)
    assert check("hessian", "(tan(x) % floor(asin(E)))*y", **points, let={"y": "1"}).counts() == {"undefined": 3}
    # SymPy compares zoo (log(0)) and refuses, or leaves Heaviside(zoo), which no printer prints
    for text in ["(1 if log(0) > 0 else 2)*x", "Max(log(0), x)", "Heaviside(log(0))*x"]:
        assert check("grad", text, **points).counts() == {"undefined": 3}, text
    # a condition on a complex constant: SymPy refuses to compare asin(E)
    assert check("value", "(1 if asin(E) < 2 else 2)*x", **points).counts() == {"undefined": 3}
    assert check("value", "Max(x, root(-1, E))", **points).counts() == {"undefined": 3}  # SymPy cannot tell
    # sin(oo) is AccumBounds(-1, 1), which no printer prints
    assert check("grad", "asin(sec(loggamma(0)))*x", **points).counts() == {"undefined": 3}
    # ... and only where it counts: not in a branch that is not taken
    report = check("grad", "x**2 if x < 1 else Heaviside(log(0)) + Max(1/0, x)", **points)
    assert [r.status for r in report.results] == ["ok", "ok", "undefined"]
    assert report.reference[:2, 0].tolist() == [-4.0, 0.0]


def test_a_finite_constant_sympy_cannot_evaluate_gets_its_exact_value():
    # SymPy bugs: exp(asin(sin(10**308))) raises inside SymPy, and mpmath overflows on
    # erfc(1e308) as SymPy evaluates it; torch has values, and calling them undefined (or
    # refusing the expression) would be wrong: such constants are evaluated exactly instead
    with mpmath.workdps(400):
        want = float(mpmath.e * mpmath.exp(mpmath.asin(mpmath.sin(mpmath.mpf(10) ** 308))))
    report = check("grad", "E*exp(asin(sin(1e308)))*x", ["x=1"])
    assert report.reference.tolist() == [[want]]  # (torch's 4.35 is of float64's 1e308, not 10**308)
    # by hand: erfc(-t) = 2 - erfc(t), and erfc(1e308) is below 2**-(10**600)
    for text, want in [("(1 + erfc(-1e308))*x", 3.0), ("erfc(1e308)*x", 0.0), ("tanh(erfc(1e308))*x", 0.0)]:
        assert check("grad", text, ["x=2"]).reference.tolist() == [[want]], text
        report = check("grad", text, grid=["x=0:1:3"])  # (the float64 formula on generated points)
        assert report.reference.ravel().tolist() == [want] * 3 and report.counts() == {"ok": 3}, text
    # ... in a condition too: erfc(10**308) > 0 holds (torch's erfc(1e308) underflows to 0, and takes the other branch)
    assert check("value", "x if erfc(1e308) > 0 else 1", ["x=3"]).reference.tolist() == [3.0]


def test_erf_erfc_and_tanh_far_out_have_references():
    # mpmath's erfc fails past about 2**500 and sinh/cosh would not fit: asymptotics there
    # (by hand: erfc(x) ~ exp(-x**2)/(x sqrt(pi)), so d/dx log(erfc(x)) ~ -2x - 1/x)
    cases = [("grad", "erfc(x*1e308)", "x=1", 0.0), ("grad", "erf(x*1e300)", "x=-1", 0.0),
             ("hessian", "tanh(x*1e300)", "x=1", 0.0), ("grad", "log(erfc(x))", "x=1e30", -2e30)]  # fmt: skip
    for command, text, point, truth in cases:
        report = check(command, text, [point])
        assert report.reference.ravel().tolist() == [truth], text
    assert only(check("value", "log(erfc(x))", ["x=1e30"])).status == "mismatch"  # torch: -inf


@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_cot_near_half_pi_has_an_accurate_hessian(engine):
    # as 1/tan(x), its second derivative there cancelled terms of 1e16 and came out 6.57
    # (true: 2*cot(x)*csc(x)**2, about 1.2e-16); cot(atan2(y, x)) = x/y has Hessian [[0, -1], [-1, 0]] at (0, 1)
    result = only(check("hessian", "cot(atan2(y, x))", ["x=0,y=1"], engine=engine))
    assert result.status == "ok" and abs(result.autodiff[0, 0]) < 1e-15
    assert result.autodiff[0, 1] == result.autodiff[1, 0] == -1.0


def test_a_constant_sympy_recursed_on_gets_a_verdict():
    # SymPy recursed comparing loggamma(1e300)*1e-320 with the exponent acosh(0) (complex);
    # the reference no longer asks SymPy for values
    result = only(check("value", "cos((loggamma(x)*1e-320)**acosh(0*E))", ["x=1e300"]))
    assert result.status == "undefined" and result.reason == "acosh(0*E) is not real"


def test_sympy_running_out_of_recursion_depth_is_an_input_error():
    from diffcli.worker import _recursion_is_input_error

    def deep():
        raise RecursionError

    with pytest.raises(DiffcliError, match="SymPy ran out of recursion depth"):
        _recursion_is_input_error(deep)()


@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_constant_expression_has_an_empty_hessian(engine):
    # once an IndexError: the reference's (P, 0) array had lost the second axis of (P, 0, 0)
    result = only(check("hessian", "2 + pi", engine=engine))
    assert result.status == "ok" and result.autodiff.shape == (0, 0) and result.reference.shape == (0, 0)
    assert run_summary(prepare("hessian", "2 + pi")).autodiff.shape == (0, 0, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"at": ["x=1e300"]}, "a point has x=1e+300, beyond float32's range"),
        ({"grid": ["x=0:1e300:3"]}, "a point has x=5e+299, beyond float32's range"),
        ({"at": ["x=1"], "tangent": "1e39"}, "--tangent has x=1e+39, beyond float32's range"),
    ],
)
def test_values_beyond_float32_are_input_errors_not_infinities(options, message):
    # float32 held them as inf, and the check was about infinity (a mismatch against 0)
    with pytest.raises(DiffcliError, match=re.escape(message)):
        prepare("jvp", "x**2", dtype="float32", **options)


def test_float32_rounds_points_and_scales_tolerances():
    report = check("grad", "sin(x)", ["x=0.1"], dtype="float32")
    result = only(report)
    assert result.point["x"] == float(np.float32(0.1))
    assert report.tolerance.rtol == 1e-4 and report.tolerance.atol == 1e-6
    assert result.status == "ok"
    assert result.reference[0] == pytest.approx(math.cos(float(np.float32(0.1))), rel=1e-15)


def test_explicit_tolerances_override_defaults():
    report = check("value", "x", ["x=1"], rtol=0.5)
    assert (report.tolerance.rtol, report.tolerance.atol) == (0.5, 1e-12)


def test_jvp_tangent_default_is_all_ones():
    result = only(check("jvp", "x*y", ["x=2,y=3"]))
    assert float(result.autodiff) == 5.0 and float(result.reference) == 5.0


@pytest.mark.parametrize("engine", ["autograd", "func"])
def test_a_constant_sub_expression_has_a_zero_tangent(engine):
    # sqrt(Min(1e-320, 0)) is the constant 0, where sqrt' is infinite: evaluated from
    # zero-tangent dual leaves, its tangent was 0 * inf = NaN (grad said 0)
    text = "x*sqrt(Min(1e-320, 0)) + (x**2 if x > 0 else sqrt(0*pi))"
    report = check("jvp", text, ["x=-1", "x=2"], engine=engine)
    assert report.autodiff.tolist() == [0.0, 4.0] and report.counts() == {"ok": 2}
    assert check("grad", text, ["x=-1", "x=2"], engine=engine).autodiff[:, 0].tolist() == [0.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at": ["x=1"]}, "no value for 'y'"),
        ({"at": ["x=1,y=2,x=3"]}, "'x' is given twice"),
        ({"at": ["x=1,yy=2"]}, "unknown variable 'yy' (did you mean 'y'?)"),
        ({"at": ["x=1,z=2"]}, "unknown variable 'z' (variables: x, y)"),
        ({"at": []}, "give a point with --at"),
        ({"at": ["1"]}, "1 value for 2 variables"),
        ({"at": ["x=1,2"]}, "every value by name, or none"),
        ({"at": ["x=1,y=q"]}, "must be a constant, but uses the name 'q'"),
        ({"at": ["x=1,y=log(0)"]}, "not a finite real number"),
        ({"at": ["x=1,y=sqrt(-1)"]}, "not a finite real number"),
        ({"at": ["x=1,y=sinn(2)"]}, "did you mean 'sin'"),
        ({"at": ["x=1,y=2"], "variables": "x"}, "uses 'y', which --vars does not list"),
        ({"at": ["x=1,y=2"], "variables": "x,x,y"}, "'x' is listed twice"),
        ({"at": ["x=1,y=2"], "variables": "x,1y"}, "not a valid variable name"),
        ({"at": ["x=1,y=2"], "tangent": "1,0"}, "--tangent only applies to jvp"),
        ({"at": ["x=1,y=2"], "dtype": "float16"}, "--dtype must be one of"),
        ({"at": ["x=1,y=2"], "rtol": -1.0}, "--rtol must be a finite number >= 0"),
    ],
)
def test_bad_input_is_a_diffcli_error(kwargs, message):
    with pytest.raises(DiffcliError) as info:
        prepare("grad", "x*y", **kwargs)
    assert message in info.value.render()


def test_point_value_errors_point_into_the_whole_spec():
    with pytest.raises(DiffcliError) as info:
        prepare("grad", "x*y", ["x=1,y=sinn(2)"])
    assert info.value.start == 6


def test_unavailable_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DiffcliError, match="CUDA is not available"):
        check("grad", "x", ["x=1"], device="cuda")


def test_unknown_device_is_an_error():
    with pytest.raises(DiffcliError, match="unknown device"):
        check("grad", "x", ["x=1"], device="tpu")


def test_a_formula_sympy_cannot_build_is_named_as_such():
    # SymPy's Piecewise simplifies a condition holding another Piecewise and fails inside
    # its own simplify (ZeroDivisionError, then TypeError): an input error, not a constant's
    inner = "atan2(x + y if x + y != 0 else 0, x if x != 0 else 0)"
    text = f"{inner} if {inner} > 0 else 0"
    with pytest.raises(DiffcliError, match="SymPy cannot build the formula of 'atan2"):
        check("value", text, ["x=2,y=0"])


def test_let_names_may_come_in_any_order():
    # a = b*2 uses b, defined after it: resolved in dependency order (by hand: 2x + x, slope 3)
    assert check("grad", "a + x", ["x=1"], let={"a": "b*2", "b": "x"}).reference.tolist() == [[3.0]]
    assert check("grad", "c", ["x=2"], let={"c": "a*b", "a": "b + 1", "b": "x^2"}).reference.tolist() == [[36.0]]


@pytest.mark.parametrize(
    ("let", "message"),
    [
        ({"a": "a + 1"}, "let: 'a' refers to itself"),
        ({"a": "b*2", "b": "a"}, r"let: a circular definition \(a -> b -> a\)"),
        ({"a": "b", "b": "c", "c": "a + x"}, r"a circular definition \(a -> b -> c -> a\)"),
        ({f"a{i}": f"a{i + 1}" for i in range(300)} | {"a300": "x"}, "let: definitions nest more than 200 levels"),
        ({f"a{i}": f"a{i + 1}*a{i + 1}" for i in range(30)} | {"a30": "x"}, r"8,191 nodes \(limit 5,000 nodes\)"),
        ({f"a{i}": "sin(" * 10 + f"a{i + 1}" + ")" * 10 for i in range(30)} | {"a30": "x"}, "2.. levels deep"),
    ],
)
def test_let_cycles_and_blow_ups_are_input_errors(let, message):
    with pytest.raises(DiffcliError, match=message):
        check("grad", "a0 + x" if "a0" in let else "a + x", ["x=1"], let=let)


@pytest.mark.parametrize("option", ["rtol", "atol"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_a_tolerance_must_be_finite_and_not_negative(option, value):
    with pytest.raises(DiffcliError, match=f"--{option} must be a finite number >= 0"):
        check("value", "x", ["x=1"], **{option: value})
