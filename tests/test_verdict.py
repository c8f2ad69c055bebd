import math

import numpy as np

from diffcli.verdict import Tolerance, judge, tolerance_for, worst

TOL = Tolerance(rtol=1e-9, atol=1e-12)


def test_within_tolerance_is_ok_with_errors():
    v = judge(np.array([1.0, 2.0 + 1e-10]), np.array([1.0, 2.0]), TOL)
    assert v.status == "ok"
    assert math.isclose(v.abs_err, 1e-10, rel_tol=1e-5) and math.isclose(v.rel_err, 5e-11, rel_tol=1e-5)


def test_outside_tolerance_is_a_mismatch():
    assert judge(np.array(1.1), np.array(1.0), TOL).status == "mismatch"


def test_absolute_floor_near_zero():
    assert judge(np.array(1e-13), np.array(0.0), TOL).status == "ok"
    assert judge(np.array(1e-11), np.array(0.0), TOL).status == "mismatch"


def test_nan_or_infinite_autodiff_against_a_finite_reference_is_a_mismatch():
    for bad in (math.nan, math.inf):
        v = judge(np.array([bad]), np.array([0.0]), TOL)
        assert (v.status, v.abs_err, v.rel_err) == ("mismatch", math.inf, math.inf)


def test_non_finite_reference_is_undefined_whatever_autodiff_says():
    for ref in (math.nan, math.inf, -math.inf):
        v = judge(np.array([1.0]), np.array([ref]), TOL)
        assert (v.status, v.abs_err, v.rel_err) == ("undefined", None, None)


def test_mismatch_wins_over_undefined_wins_over_ok():
    assert judge(np.array([5.0, 1.0]), np.array([math.nan, 2.0]), TOL).status == "mismatch"
    assert judge(np.array([5.0, 2.0]), np.array([math.nan, 2.0]), TOL).status == "undefined"
    assert worst(["ok", "undefined", "ok"]) == "undefined"
    assert worst(["undefined", "mismatch", "ok"]) == "mismatch"


def test_dtype_defaults():
    assert tolerance_for("float64") == Tolerance(1e-9, 1e-12)
    assert tolerance_for("float32") == Tolerance(1e-4, 1e-6)
    assert tolerance_for("float32", atol=0.0) == Tolerance(1e-4, 0.0)
