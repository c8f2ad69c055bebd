"""Property tests: random expressions agree with the reference; the parser never crashes."""

import contextlib
import math
import re

import mpmath
import numpy as np
import oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from diffcli.errors import DiffcliError
from diffcli.language import ALIASES, CONSTANTS, FUNCTIONS
from diffcli.parser import parse_assignments, parse_expression
from diffcli.pipeline import check
from diffcli.points import resolve_point

# Each template keeps its argument inside the function's smooth domain for
# any real input, so every result must be "ok", except for the kinks and
# jumps at the end, which may be "undefined" exactly where the reference is.
# Jumps are shifted off the integers: at a constant argument such as
# ceiling(exp(sin(pi))) the float result (2) rightly differs from the exact one (1).
UNARY = [
    "sin({})",
    "cos({})",
    "atan({})",
    "tanh({})",
    "erf({})",
    "erfc({})",
    "asinh({})",
    "exp(sin({}))",
    "sqrt(1 + ({})**2)",
    "log(2 + cos({}))",
    "cbrt(2 + sin({}))",
    "asin(tanh({})/2)",
    "acos(tanh({})/2)",
    "atanh(tanh({})/2)",
    "acosh(2 + ({})**2)",
    "sinh(tanh({}))",
    "cosh(tanh({}))",
    "gamma(2 + tanh({}))",
    "loggamma(3 + sin({}))",
    "sec(tanh({}))",
    "csc(2 + tanh({}))",
    "cot(2 + tanh({}))",
    "tan(tanh({}))",
    "log(3 + sin({}), 2)",
    "root(2 + cos({}), 3)",
    "sinc(2 + tanh({}))",
    "-({})",
    "({})^2",
    "({})**3",
    "cbrt({} + 0.1234567)",  # vertical tangent at 0: cbrt(x) - cbrt(x) has torch gradient inf - inf (true mismatch)
    "Abs({} + 0.1234567)",  # a kink at 0: (Abs(x)*Abs(x))'' there is 2, torch says 0 (a true mismatch)
    "floor({0} + 0.123) + ({0})",
    "ceiling({0} + 0.123)*({0})",
    "Mod({} + 0.123, 3)",
    "Heaviside({0} + 0.123)*({0})",
    "sign({0} + 0.123)*({0})^2",
]
BINARY = [
    "({}) + ({})",
    "({}) - ({})",
    "({})*({})",
    "({})/(2 + sin({}))",
    "atan2({}, 2 + cos({}))",
    "Max({}, {})",
    "Min({}, {})",
    "({}) if ({}) > 0.5 else 1",
]

leaves = st.sampled_from(["x", "y", "2", "0.5", "pi", "E", "3x"])


def _expressions(children):
    unary = st.builds(lambda t, a: t.format(a), st.sampled_from(UNARY), children)
    binary = st.builds(lambda t, a, b: t.format(a, b), st.sampled_from(BINARY), children, children)
    return unary | binary


expressions = st.recursive(leaves, _expressions, max_leaves=6)
coordinate = st.floats(min_value=-2, max_value=2, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=40)
@given(expr=expressions, x=coordinate, y=coordinate, command=st.sampled_from(["value", "grad", "hessian", "jvp"]))
def test_random_expressions_agree_with_the_reference(expr, x, y, command):
    report = check(command, expr, [f"x={x},y={y}"], variables="x,y", rtol=1e-8, atol=1e-10)
    (result,) = report.results
    # Max/Min ties and the conditional's jump give undefined or kinks only on
    # measure-zero sets; rounding the coordinates keeps us off most of them.
    assert result.status in ("ok", "undefined"), (expr, x, y, result)
    if result.status == "undefined":
        assert any(not math.isfinite(v) for v in result.reference.ravel())


NAMES = [*FUNCTIONS, *ALIASES, *CONSTANTS, "x", "y", "lambda", "import", "__class__", "os", "True"]
TOKENS = (
    NAMES
    + list("()[]{},.;:+-*/%^<>=!&|~@'\"\\#$?` \t\n")
    + ["**", "//", "==", "if", "else", "1e", "0x", "1.5", "9" * 30]
)


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_parser_raises_only_its_own_error_on_arbitrary_text(text):
    with contextlib.suppress(DiffcliError):
        parse_expression(text)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join))
def test_parser_raises_only_its_own_error_on_token_soup(text):
    with contextlib.suppress(DiffcliError):
        parse_expression(text, {"x"})


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from(["x", "y", "=", ",", "1", "pi", "(", ")", "sqrt", "-", "2.5", "e", " "]), max_size=15).map(
        "".join
    )
)
def test_point_parser_raises_only_its_own_error(spec):
    try:
        parse_assignments(spec)
        resolve_point(spec, ("x", "y"))
    except DiffcliError:
        pass


RAW_UNARY = [f"{name}({{}})" for name in (
    "sin", "cos", "tan", "sec", "csc", "cot", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
    "atanh", "exp", "log", "sqrt", "cbrt", "Abs", "sign", "floor", "ceiling", "erf", "erfc", "gamma", "loggamma",
    "Heaviside",  # not sinc: torch's second derivative of sinc near 0 is 0, not -1/3 (a true mismatch)
    "log10", "log2", "log1p", "expm1", "exp2", "factorial",
)]  # fmt: skip
RAW_BINARY = ["({}) + ({})", "({})*({})", "({})/({})", "({})**2", "atan2({}, {})", "Max({}, {})", "Mod({}, 1.5)",
              "log({}, 3)", "root({}, 3)", "({}) if ({}) > 0 else 1", "hypot({}, {})"]  # fmt: skip
rounded = st.floats(-3, 3).map(lambda v: round(v, 2))
raw_expressions = st.recursive(
    st.sampled_from(["x", "y", "0.5"]),
    lambda children: (
        st.builds(lambda t, a: t.format(a), st.sampled_from(RAW_UNARY), children)
        | st.builds(lambda t, a, b: t.format(a, b), st.sampled_from(RAW_BINARY), children, children)
    ),
    max_leaves=3,
)


@settings(max_examples=60)
@given(expr=raw_expressions, x=rounded, y=rounded, command=st.sampled_from(["value", "grad", "hessian"]))
def test_anywhere_in_or_out_of_the_domain_undefined_means_no_finite_reference(expr, x, y, command):
    """Out of the domain (log(-1), asin(2)), at poles and jumps: "undefined" only where
    the reference really has no finite value, and a mismatch only where torch gives no
    finite answer (asin(x/x) has gradient 0, torch's chain rule makes 0*inf = NaN).
    Coordinates are rounded: at 1e-179, float64 itself fails (y**2 underflows in
    atan2's gradient), which is a true mismatch, not the property under test."""
    (result,) = check(command, expr, [f"x={x!r},y={y!r}"], variables="x,y", rtol=1e-7, atol=1e-9).results
    if result.status == "undefined":
        assert not np.isfinite(result.reference).all()
    if result.status == "mismatch":
        assert not np.isfinite(result.autodiff).all(), (expr, x, y, result)


CHAIN_OPERANDS = ["x", "y", "sin(x)", "exp(y)", "2.5", "x**2", "(x - y)", "1e-3"]


@settings(max_examples=60)
@given(
    operands=st.lists(st.sampled_from(CHAIN_OPERANDS), min_size=3, max_size=12),
    picks=st.lists(st.booleans(), min_size=11, max_size=11),
    kind=st.sampled_from(["+-", "*/"]),
    x=coordinate,
    y=coordinate,
)
def test_a_chain_is_folded_left_to_right_as_typed(operands, picks, kind, x, y):
    """A chain of + and - (or * and /) is one flat node; torch must still compute it
    operator by operator from the left, bit for bit, and SymPy agree with it."""
    import torch

    from diffcli.torch_compile import compile_torch

    ops = [kind[p] for p in picks[: len(operands) - 1]]
    text = operands[0] + "".join(f" {op} {o}" for op, o in zip(ops, operands[1:]))
    columns = [torch.tensor([x], dtype=torch.float64), torch.tensor([y], dtype=torch.float64)]

    def value(source):
        return compile_torch(parse_expression(source), ["x", "y"]).of_columns(columns)[0].item()

    folds = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}  # IEEE, as torch (1/0 = inf)
    expected = np.float64(value(operands[0]))
    with np.errstate(all="ignore"):
        for op, operand in zip(ops, operands[1:]):
            expected = folds[op](expected, np.float64(value(operand)))
    got = value(text)
    assert got == expected or (math.isnan(got) and math.isnan(expected)), text
    # the value, not a derivative: x/x*y*x/x has gradient terms of size 1/x**2 that cancel
    # exactly in SymPy and to roundoff in torch, a true mismatch beyond any fixed atol
    (result,) = check("value", text, [f"x={x},y={y}"], variables="x,y", rtol=1e-8, atol=1e-10).results
    assert result.status in ("ok", "undefined"), (text, x, y, result)


@settings(max_examples=100)
@given(expr=expressions)
def test_typeset_operators_parse_as_their_ascii_spelling(expr):
    typeset = re.sub(r"(?<!\*)\*(?!\*)", "×", expr).replace("-", "−").replace("/", "÷")
    assert parse_expression(typeset) == parse_expression(expr)


# -- the truth at awkward points, against one-sided finite differences ----------------------
# Random expressions built around kinks, jumps, ties, pieces and singular points, at points
# chosen to land on them, checked against an independent mpmath evaluation of the same tree
# (tests/oracle.py) differentiated by one-sided finite differences at 120 digits.

AWKWARD = [
    "Abs({})", "floor({})", "ceiling({})", "sign({})", "Heaviside({})", "Max({}, 0)", "Min({}, 1)",
    "Max({0}, -({0}))", "({0}) if ({0}) > 0 else 0", "({0})**2 if ({0}) < 1 else 2*({0}) - 1",
    "({0}) if ({0}) != 0 else 0", "Abs({})**3", "({0})*Abs({0})", "sqrt(Abs({}))", "({0})*sqrt(Abs({0}))",
    "sin({0})/({0}) if ({0}) != 0 else 1", "Mod({}, 1)", "cbrt({})", "exp(-1/({0})**2) if ({0}) != 0 else 0",
    "sin({})", "exp({})", "({})**2", "atan({})", "log(1 + ({})**2)", "tanh({})", "log1p(({})**2)", "expm1({})",
    "hypot({}, 0.5)",
]  # fmt: skip
AWKWARD_BINARY = [
    "({}) + ({})",
    "({})*({})",
    "({}) - ({})",
    "Max({}, {})",
    "Min({}, {})",
    "atan2({}, {})",
    "hypot({}, {})",
]
awkward_leaves = st.sampled_from(["x", "y", "x - 1", "x + y", "2*y", "x - y"])
awkward_expressions = st.recursive(
    awkward_leaves,
    lambda children: (
        st.builds(lambda t, a: t.format(a), st.sampled_from(AWKWARD), children)
        | st.builds(lambda t, a, b: t.format(a, b), st.sampled_from(AWKWARD_BINARY), children, children)
    ),
    max_leaves=3,
)
on_boundaries = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, -0.5]) | st.floats(-2, 2).map(lambda v: round(v, 2))

OVERFLOW = ["log(exp({0}) + exp({1}))", "log(exp({0}))", "exp({0})*exp(-({0}))", "(exp({0}) + 1) - exp({0})",
            "exp({0})/(exp({0}) + exp({1}))", "log(cosh({0}))", "sqrt(exp({0}))*exp(-({0})/2)"]  # fmt: skip
overflow_expressions = st.builds(
    lambda t, a, b: t.format(a, b), st.sampled_from(OVERFLOW), st.sampled_from(["x", "y", "x + y"]),
    st.sampled_from(["x", "y", "2*y"]),
)  # fmt: skip
overflowing = st.sampled_from([700.0, 710.0, 750.0, 1000.0, -1000.0, 0.5])


def _fd_close(a, b, rel=1e-9, tiny=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b)) + tiny


def _one_side(f, p, d, order):
    """The order-th derivative along d from the side d points to: None where f has no value
    there, "diverges" where the differences do not settle (a jump, an infinite slope)."""

    def estimate(h):
        values = [f([c + j * h * e for c, e in zip(p, d)]) for j in range(order + 1)]
        if any(v is None for v in values):
            return None
        return sum((-1) ** (order - j) * mpmath.binomial(order, j) * v for j, v in enumerate(values)) / h**order

    coarse, fine = estimate(oracle.STEP), estimate(oracle.STEP / 4)
    if coarse is None or fine is None:
        return None
    return fine if _fd_close(coarse, fine) else "diverges"


def _directional(f, p, d, order):
    """The two-sided derivative of this order along d from finite differences: a number, or
    None where there is none (no side, a side that diverges, sides that differ)."""
    right = _one_side(f, p, d, order)
    left = _one_side(f, p, [-e for e in d], order)
    if left not in (None, "diverges"):
        left = left * (-1) ** order  # the derivative along -d, turned into one along d
    sides = [s for s in (right, left) if s is not None]
    if not sides or "diverges" in sides:
        return None
    if len(sides) == 2 and not _fd_close(*sides):
        return None
    return sides[0]


def _mixed(f, p, i, j):
    """d2f/dxi dxj from the four quadrants' mixed differences: None unless they all agree."""
    found = []
    for si in (1, -1):
        for sj in (1, -1):
            estimates = []
            for h in (oracle.STEP, oracle.STEP / 4):

                def shifted(a, b, h=h, si=si, sj=sj):
                    q = list(p)
                    q[i] += a * si * h
                    q[j] += b * sj * h
                    return f(q)

                values = [shifted(1, 1), shifted(1, 0), shifted(0, 1), shifted(0, 0)]
                if any(v is None for v in values):
                    estimates = None
                    break
                estimates.append((values[0] - values[1] - values[2] + values[3]) / (si * sj * h * h))
            if estimates is None:
                continue
            if not _fd_close(*estimates):
                return None
            found.append(estimates[1])
    if not found or not all(_fd_close(found[0], other) for other in found[1:]):
        return None
    return found[0]


def _truth(command, text, names, point):
    """Per element of the quantity: its value by finite differences, or None where none exists."""
    with mpmath.workdps(oracle.DPS):
        tree = oracle.parse(text)
        p = [mpmath.mpf(c) for c in point]

        def f(q):
            return oracle.at(tree, names, q)

        if f(p) is None:
            return None  # no value: nothing exists
        n = len(names)
        unit = [[int(k == i) for k in range(n)] for i in range(n)]
        if command == "value":
            return [f(p)]
        if command == "jvp":  # along the default tangent, all ones
            return [_directional(f, p, [1] * n, 1)]
        first = [_directional(f, p, unit[i], 1) for i in range(n)]
        if command == "grad":
            return first

        def second(i, j):  # a second derivative needs the first ones it differentiates
            if first[i] is None or first[j] is None:
                return None
            return _directional(f, p, unit[i], 2) if i == j else _mixed(f, p, i, j)

        return [second(i, j) for i in range(n) for j in range(n)]


def _check_against_differences(command, text, x, y):
    (result,) = check(command, text, [f"x={x!r},y={y!r}"], variables="x,y").results
    truth = _truth(command, text, ["x", "y"], [x, y])
    if truth is None:  # f has no real value at the point
        assert result.status in ("undefined", "unknown"), (text, x, y, result)
        return
    exists = np.ravel(result.defined)
    for k, (want, ref, defined, unknown) in enumerate(
        zip(truth, np.ravel(result.reference), exists, np.ravel(result.unknown))
    ):
        if unknown:
            continue
        if want is None:  # the differences disagree, or diverge: no derivative
            assert not defined, (text, x, y, k, result)
        elif defined:  # (a value beyond float64's range is inf in both)
            want = float(want)
            assert want == ref or _fd_close(want, ref, rel=1e-9, tiny=1e-9), (text, x, y, k, want, result)
        elif command in ("value", "grad") or (command == "hessian" and k in (0, 3)):
            # a first or pure second partial derivative that exists (a JVP needs more than its own line)
            raise AssertionError(("a false undefined", text, x, y, k, float(want), result))


COMMANDS = st.sampled_from(["value", "grad", "hessian", "jvp"])


@settings(max_examples=60, deadline=None)
@given(expr=awkward_expressions, x=on_boundaries, y=on_boundaries, command=COMMANDS)
def test_at_kinks_jumps_and_boundaries_the_reference_is_what_finite_differences_say(expr, x, y, command):
    """Each ok or mismatch reference equals the one-sided finite differences where they agree;
    where they disagree (or diverge) the result is undefined."""
    _check_against_differences(command, expr, x, y)


@settings(max_examples=30, deadline=None)
@given(expr=overflow_expressions, x=overflowing, y=overflowing, command=COMMANDS)
def test_where_float64_overflows_the_reference_is_what_finite_differences_say(expr, x, y, command):
    _check_against_differences(command, expr, x, y)


@settings(max_examples=15, deadline=None)
@given(expr=awkward_expressions, command=COMMANDS)
def test_on_a_grid_through_boundaries_float64_is_trusted_only_where_it_agrees_with_the_exact_reference(expr, command):
    """Generated points get SymPy's formulas in float64 except where the screen says float64
    cannot be trusted: at every point of a grid through the boundaries, the reference must
    be the exact one (that of --precise)."""
    _grid_reference_is_exact(command, expr)


def _grid_reference_is_exact(command, expr):
    grid = {"grid": ["x=-1:1:5", "y=-1:1:5"], "variables": "x,y"}
    fast, exact = check(command, expr, **grid), check(command, expr, precise=True, **grid)
    for i in range(len(fast)):
        a, b = fast.result(i), exact.result(i)
        if np.ravel(a.unknown).any() or np.ravel(b.unknown).any():
            continue
        np.testing.assert_array_equal(a.defined, b.defined, err_msg=f"{expr} at {a.point}")
        np.testing.assert_allclose(a.reference, b.reference, rtol=1e-8, atol=1e-10, err_msg=f"{expr} at {a.point}")


#: Loops around the awkward expressions: a switch met at some step (or term) only.
LOOPED = [
    "sum(({0})**k/factorial(k), k, 0, 3)", "prod(1 + ({0})/k, k, 1, 3)", "iterate(s/2 + ({0}), s, 0, 3)",
    "iterate(Abs(s) - ({0}), s, x, 2)", "iterate(s*({0}) + y, s, x, 2)", "sum(Abs(({0}) - k/2), k, -2, 2)",
    "iterate(Max(s, {0}) - 1/2, s, y, 2)",
]  # fmt: skip
looped_expressions = st.builds(lambda t, a: t.format(a), st.sampled_from(LOOPED), awkward_expressions)


@settings(max_examples=40, deadline=None)
@given(expr=looped_expressions, x=on_boundaries, y=on_boundaries, command=COMMANDS)
def test_through_loops_the_reference_is_what_finite_differences_say(expr, x, y, command):
    """The oracle runs the loop as a plain loop in mpmath; the exact reference follows it
    with Taylor expansions and rays, step by step."""
    _check_against_differences(command, expr, x, y)


@settings(max_examples=10, deadline=None)
@given(expr=looped_expressions, command=COMMANDS)
def test_on_a_grid_through_loops_the_float64_reference_is_the_exact_one(expr, command):
    _grid_reference_is_exact(command, expr)


def _along(f, p, d, order):
    """The derivatives of orders 1..order along d, each None where it or a lower one does not exist."""
    out = []
    for k in range(1, order + 1):
        out.append(None if out and out[-1] is None else _directional(f, p, d, k))
    return out


@settings(max_examples=40, deadline=None)
@given(
    expr=awkward_expressions, x=on_boundaries, y=on_boundaries,
    how=st.sampled_from([("diff", "x", 1), ("diff", "x:2", 2), ("diff", "y:3", 3), ("taylor", None, 3)]),
)  # fmt: skip
def test_derivatives_of_higher_order_and_taylor_coefficients_are_what_finite_differences_say(expr, x, y, how):
    """A pure partial of order k (diff), and the Taylor coefficients along the tangent (1, 1)
    (taylor), against one-sided finite differences along the line: equal where they exist,
    undefined exactly where they do not."""
    command, wrt, order = how
    options = {"wrt": wrt} if command == "diff" else {"order": order}
    (result,) = check(command, expr, [f"x={x!r},y={y!r}"], variables="x,y", **options).results
    with mpmath.workdps(oracle.DPS):
        tree = oracle.parse(expr)
        p = [mpmath.mpf(x), mpmath.mpf(y)]

        def f(q):
            return oracle.at(tree, ["x", "y"], q)

        if f(p) is None:
            assert result.status in ("undefined", "unknown"), (expr, x, y, result)
            return
        direction = [0, 1] if wrt == "y:3" else [1, 0] if command == "diff" else [1, 1]
        derivatives = _along(f, p, direction, order)
    if command == "diff":
        truth = [derivatives[-1]]
    else:
        truth = [f(p)] + [None if d is None else d / math.factorial(k) for k, d in enumerate(derivatives, start=1)]
    for k, (want, ref, defined, unknown) in enumerate(
        zip(truth, np.ravel(result.reference), np.ravel(result.defined), np.ravel(result.unknown))
    ):
        if unknown:
            continue
        if want is None:
            assert not defined, ("a derivative that does not exist", expr, x, y, how, k, result)
        else:
            want = float(want)
            assert defined, ("a false undefined", expr, x, y, how, k, want, result)
            assert want == ref or _fd_close(want, ref, rel=1e-9, tiny=1e-9), (expr, x, y, how, k, want, result)
