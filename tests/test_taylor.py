"""The arithmetic of the exact reference: numbers with error bounds, Taylor coefficients,
jets and one-sided series, against values computed independently (by hand, or mpmath)."""

import math
from fractions import Fraction

import mpmath
import pytest

from diffcli import taylor
from diffcli.taylor import Arith, Jet, NeedPrecision, NeedTerms, Num, Series, Unresolvable, monomials


@pytest.fixture
def ar():
    return Arith(128)


def test_exact_operations_stay_exact_and_rounded_ones_say_how_far_off(ar):
    x, y = ar.exact(0.1), ar.exact(3)
    assert ar.add(x, y).exact and ar.mul(x, y).exact  # floats are binary fractions: sums and products fit
    assert ar.sub(x, x).is_zero
    third = ar.div(ar.one, y)
    assert not third.exact and third.e < math.log2(1 / 3) - 120  # 128 bits, give or take
    tiny = ar.exact(Fraction(1, 2**200))
    lost = ar.sub(ar.add(ar.one, tiny), ar.one)  # 1 + 2**-200 rounds to 1 at 128 bits
    assert lost.v == 0 and lost.e > -200  # zero, but known only to within more than 2**-200


def test_a_sign_is_certain_or_asks_for_precision(ar):
    assert ar.sign(ar.exact(-2.5)) == -1 and ar.sign(ar.zero) == 0
    noisy = Num(ar.ctx.mpf(2) ** -100, -90.0)  # 2**-100, known to within 2**-90
    with pytest.raises(NeedPrecision):
        ar.sign(noisy)
    assert ar.sign(Num(ar.ctx.zero, -2000.0)) == 0  # within 2**-1100 of zero: zero


def test_equal_is_agreement_to_30_digits(ar):
    third = ar.div(ar.one, ar.exact(3))
    again = ar.div(ar.exact(2), ar.exact(6))
    assert ar.equal(third, again)
    assert not ar.equal(third, ar.add(third, ar.exact(Fraction(1, 2**60))))


@pytest.mark.parametrize("name", sorted(taylor.COEFFICIENTS))
def test_taylor_coefficients_of_every_function_agree_with_mpmath(name):
    # mpmath.taylor differentiates numerically (at raised precision): independent of the recurrences
    u0 = {"acosh": 1.7, "loggamma": 2.5, "gamma": 2.5, "log": 1.3, "sqrt": 1.3, "reciprocal": -0.7}.get(name, 0.3)
    ar = Arith(200)
    ours = taylor.coefficients(ar, taylor.COEFFICIENTS[name], ar.exact(u0), 5)
    functions = {"reciprocal": lambda x: 1 / x, "loggamma": mpmath.loggamma, "sinc": mpmath.sinc}
    with mpmath.workdps(60):
        fn = functions.get(name) or getattr(mpmath, name)
        expected = mpmath.taylor(fn, mpmath.mpf(u0), 4)
        for c, want in zip(ours, expected):
            assert abs(c.v - want) <= mpmath.mpf(10) ** -35 * max(1, abs(want)), (name, c, want)


def test_taylor_coefficients_of_sinc_at_zero_divide_out_the_common_zero():
    ar = Arith(128)
    c = taylor.coefficients(ar, taylor.COEFFICIENTS["sinc"], ar.zero, 5)
    assert [float(x.v) for x in c] == pytest.approx([1, 0, -1 / 6, 0, 1 / 120], rel=1e-30)


def test_a_jet_holds_value_gradient_and_hessian(ar):
    shape = monomials(2, 2)
    x, y = Jet.variable(ar, shape, 0, ar.exact(1.5)), Jet.variable(ar, shape, 1, ar.exact(2.0))
    f = x * x * y  # x**2 y: gradient (2xy, x**2), Hessian [[2y, 2x], [2x, 0]], by hand
    assert float(f.base.v) == 4.5
    assert [float(f.coefficient(e).v) for e in [(1, 0), (0, 1)]] == [6.0, 2.25]
    assert [float(f.coefficient(e).v) for e in [(2, 0), (1, 1), (0, 2)]] == [2.0, 3.0, 0.0]  # H/2 off the diagonal


def _line(ar, base=0.0, slope=1.0):
    return Series.line(ar, ar.exact(base), ar.exact(slope))


def test_series_roots_poles_and_removable_singularities(ar):
    ar.target = Fraction(6)
    s = _line(ar)
    root = s.power(ar.exact(Fraction(1, 2)), Fraction(1, 2), False)  # sqrt(s)
    assert set(root.terms) == {Fraction(1, 2)}
    assert (root * root).terms.keys() == {1}  # sqrt(s)**2 = s
    pole = s.reciprocal()
    assert set(pole.terms) == {-1} and pole.infinite() == 1
    sinc = s.compose(taylor.COEFFICIENTS["sin"]) / s  # sin(s)/s = 1 - s**2/6 + s**4/120 ...
    assert {e: float(c.v) for e, c in sinc.terms.items()} == pytest.approx({0: 1, 2: -1 / 6, 4: 1 / 120})


def test_series_logarithms_grow_and_vanish_where_multiplied_by_a_power(ar):
    ar.target = Fraction(4)
    s = _line(ar)
    log = s.logarithm()
    assert log.log is not None and log.sign() == -1 and log.infinite() == -1
    s_log_s = s * log  # s log s -> 0, with no derivative at 0: known below order 1 only
    assert not s_log_s.terms and s_log_s.cut == 1 and s_log_s.hard
    assert s.power(ar.exact(2), Fraction(2), True).logarithm().exponential().terms.keys() == {2}  # exp(log(s**2))


def test_series_flat_and_bounded_functions(ar):
    ar.target = Fraction(4)
    s = _line(ar)
    flat = (-(s * s).reciprocal()).exponential()  # exp(-1/s**2): zero to every order, positive
    assert not flat.terms and flat.cut == math.inf and flat.sign() == 1
    bounded = Series(ar, {}, cut=Fraction(0), hard=True)  # sin(1/s)
    with pytest.raises(Unresolvable):
        bounded.sign()
    damped = bounded * s * s  # s**2 sin(1/s): 0, with a first derivative (0) and no second
    assert not damped.terms and damped.cut == 2


def test_a_sign_that_needs_more_terms_asks_for_them(ar):
    def sin_of_cube():
        s = _line(ar)
        return s.power(ar.exact(3), Fraction(3), True).compose(taylor.COEFFICIENTS["sin"], ar.zero)

    ar.target = Fraction(2)  # sin(s**3) expanded below s**2: nothing known but zeros
    with pytest.raises(NeedTerms):
        sin_of_cube().sign()
    ar.target = Fraction(4)
    assert sin_of_cube().sign() == 1
