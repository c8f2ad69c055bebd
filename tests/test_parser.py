"""The safe parser: calculator habits, the allowlist, and errors that point."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffcli.errors import ParseError
from diffcli.parser import parse_assignments, parse_expression


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("x^2 sin(y)", "x**2*sin(y)"),
        ("2x", "2*x"),
        ("2 x", "2*x"),
        ("3(x+1)", "3*(x + 1)"),
        ("(x+1)(x-1)", "(x + 1)*(x - 1)"),
        ("(x+1)y", "(x + 1)*y"),
        ("xy", "xy"),
        ("2.5xy", "2.5*xy"),
        ("1e-3x", "1e-3*x"),
        ("2sin(x)", "2*sin(x)"),
        ("2pi", "2*pi"),
        ("x^y^z", "x**(y**z)"),
        ("(x^y)^z", "(x**y)**z"),
        ("-x^2", "-x**2"),
        ("(-x)^2", "(-x)**2"),
        ("x - (y - z)", "x - (y - z)"),
        ("x/(y*z)", "x/(y*z)"),
        ("x**-1", "x**(-1)"),
        ("+x", "x"),
        ("x % 3", "Mod(x, 3)"),
        ("arcsin(x) + ln(y) + abs(x)", "asin(x) + log(y) + Abs(x)"),
        ("min(x, y) + max(x, 1)", "Min(x, y) + Max(x, 1)"),
        ("e^x + E", "E**x + E"),
        ("x**2 if Mod(x, 2) == 0 else x", "x**2 if Mod(x, 2) == 0 else x"),
        ("1 if 0 < x < 1 else 0", "1 if 0 < x and x < 1 else 0"),
        ("1 if x > 0 or not y <= 2 else 0", "1 if x > 0 or not y <= 2 else 0"),
        ("Piecewise((sqrt(x), x > 0), (0, True))", "Piecewise((sqrt(x), x > 0), (0, True))"),
        ("0x1f + 1_000", "31 + 1000"),
        ("  x  ", "x"),
    ],
)
def test_calculator_habits_and_display(typed, shown):
    assert str(parse_expression(typed)) == shown


def test_adjacent_calls_multiply():
    assert str(parse_expression("sin(x)(y)")) == "sin(x)*y"


def test_display_reparses_to_the_same_tree():
    for text in ["x - (y - z)", "-(x + 1)**2", "(x if y > 0 else 2)*3", "x/(y/z)", "2**-x"]:
        tree = parse_expression(text)
        assert parse_expression(str(tree)) == tree


def test_variables_are_the_free_names():
    assert parse_expression("a*sin(b) + pi + e + c(1+d)".replace("c(", "c*(")).variables() == {"a", "b", "c", "d"}


def test_listed_names_override_constants_and_functions():
    tree = parse_expression("E + gamma + pi", {"E", "gamma", "pi"})
    assert tree.variables() == {"E", "gamma", "pi"}
    assert parse_expression("gamma(x)*gamma", {"gamma", "x"}).variables() == {"gamma", "x"}
    assert parse_expression("I + S + N + O + Q + beta + zeta").variables() == {"I", "S", "N", "O", "Q", "beta", "zeta"}


@pytest.mark.parametrize(
    ("typed", "message", "column"),
    [
        ("sinn(x)", "unknown function 'sinn' (did you mean 'sin'?)", 0),
        ("2 + Sin(x)", "did you mean 'sin'", 4),
        ("x(y+1)", "'x' is not a known function; to multiply, write x*(...)", 0),
        ("x.real", "attribute access", 0),
        ("x + __import__('os')", "'__import__' is not a known function", 4),
        ("(lambda: 1)()", "lambdas", 1),
        ("x[0]", "subscripts", 0),
        ("'x'", "strings", 0),
        ("1j", "complex numbers", 0),
        ("x; y", "one expression only", 1),
        ("x\ny", "one expression only", 1),
        ("(x + 1", "'(' was never closed", 0),
        ("x + 1)", "unmatched ')'", 5),
        ("x +", "ends too early", 3),
        ("x * * y", "syntax error", 4),
        ("sin(x, y)", "sin() takes 1 argument, got 2", 0),
        ("atan2(x)", "atan2() takes 2 arguments, got 1", 0),
        ("sin(x=1)", "no keyword arguments", 6),
        ("x > 1", "expected a number here, not a condition", 0),
        ("x if y else 1", "expected a condition", 5),
        ("Piecewise((x, 1))", "expected a condition", 14),
        ("Piecewise(x)", "(value, condition) pairs", 10),
        ("x // 2", "operator is not allowed", 0),
        ("x @ y", "operator is not allowed", 0),
        ("sin", "'sin' is a function", 0),
        ("[x]", "a vector [f1, f2, ...] is only allowed as the whole expression", 0),
        ("", "empty", 0),
        ("(x := 1)", "assignment", 1),
        ("x if x else y", "expected a condition", 5),
    ],
)
def test_errors_name_the_problem_and_its_column(typed, message, column):
    with pytest.raises(ParseError) as info:
        parse_expression(typed)
    assert message in info.value.message
    assert info.value.start == column
    rendered = info.value.render().splitlines()
    if typed:
        assert rendered[0].endswith(f"(column {column + 1})")
        assert rendered[2].index("^") - 2 == column
    else:
        assert rendered == [info.value.message]


def test_caret_positions_survive_implicit_multiplication():
    # "2x" becomes "2*x" internally; the caret must still point into the typed text.
    with pytest.raises(ParseError) as info:
        parse_expression("2x + 3y + sinn(x)")
    assert info.value.start == 10


def test_assignments_split_on_top_level_commas():
    assert parse_assignments("x=1,y=atan2(1,2), z = pi/4") == [
        ("x", "1", 2),
        ("y", "atan2(1,2)", 6),
        ("z", " pi/4", 21),
    ]
    assert parse_assignments("1,2") == [(None, "1", 0), (None, "2", 2)]


@pytest.mark.parametrize("spec", ["x==1", "1x=2", "x=", "x=1,,y=2"])
def test_bad_assignments(spec):
    with pytest.raises(ParseError):
        parse_assignments(spec)


def test_chains_of_plus_and_minus_are_one_flat_node():
    tree = parse_expression("x - y - 2*z + sin(x)")
    assert tree.op == "Sum" and tree.text == "--+" and len(tree.args) == 4
    assert str(tree) == "x - y - 2*z + sin(x)"
    assert str(parse_expression("a - (b - c) + d")) == "a - (b - c) + d"  # the right operand keeps its group
    assert parse_expression("x + y").op == "Add"  # a single operator stays binary


def test_chains_of_times_and_divide_are_one_flat_node():
    tree = parse_expression("2x*y/z*sin(x)")
    assert tree.op == "Product" and tree.text == "**/*" and len(tree.args) == 5 and tree.args[0].text == "2"
    assert str(tree) == "2*x*y/z*sin(x)"
    assert str(parse_expression("a/(b/c)/d")) == "a/(b/c)/d"  # the right operand keeps its group
    assert str(parse_expression("a*b % c*d")) == "Mod(a*b, c)*d"  # % is not part of a chain
    assert parse_expression("x*y").op == "Mul"  # a single operator stays binary
    text = "*".join(["x"] * 300)
    assert parse_expression(text) == parse_expression(str(parse_expression(text)))


def test_a_long_series_is_within_the_nesting_limit():
    # 500 terms: once 500 levels deep, refused past 200
    text = " - ".join(f"x**{k}" for k in range(1, 501))
    tree = parse_expression(text)
    assert tree.op == "Sum" and len(tree.args) == 500 and tree.text == "-" * 499
    assert parse_expression(str(tree)) == tree
    with pytest.raises(ParseError, match="nested more than 200 levels"):
        parse_expression("-" * 250 + "x")  # other nesting still counts


def test_errors_in_long_expressions_show_a_window_around_the_problem():
    text = "+".join(f"x**{k}" for k in range(1, 60)) + " + foo(x) + 1"
    with pytest.raises(ParseError) as info:
        parse_expression(text)
    message, shown, carets = info.value.render().splitlines()
    assert message == f"unknown function 'foo' (did you mean 'floor'?) (column {text.index('foo') + 1})"
    assert len(shown) <= 2 + 3 + ParseError.WIDTH + 3 and shown.startswith("  ...") and shown.endswith(" + 1")
    assert shown[len(carets) - 3 : len(carets)] == "foo" and carets.endswith("^^^")


def test_an_error_without_source_text_is_the_message_alone():
    # no empty line and lone caret under it (a column means nothing without the text)
    assert ParseError("at x is not a finite real number", "", 0).render() == "at x is not a finite real number"


def test_the_size_of_a_huge_constant_is_written_as_a_power_of_ten():
    with pytest.raises(ParseError) as info:
        parse_expression("9**(9**(9**2))*x")
    assert info.value.message == "this constant has about 10**100 digits (limit 4,000)"  # 9**81 * log10(9)


@pytest.mark.parametrize(
    ("typed", "python"),
    [
        ("x − 1", "x - 1"),  # U+2212 MINUS SIGN, as pasted from papers and web pages
        ("x×y ÷ 2", "x*y/2"),
        ("x·y⋅z∗w", "x*y*z*w"),
        ("x∕y", "x/y"),
        ("x²", "x**2"),
        ("2x²y", "2*x**2*y"),  # the superscript binds first, then the implicit product
        ("x⁻¹ + y¹⁰", "x**(-1) + y**10"),
        ("e^(−x²)", "E**(-x**2)"),
        ("2^x²", "2**(x**2)"),  # a tower, as typeset
        ("sin(x)²", "sin(x)**2"),
        ("2π*r", "2*pi*r"),
        ("√(x² + y²)", "sqrt(x**2 + y**2)"),
        ("2√(x)", "2*sqrt(x)"),
        ("x√(y)", "x*sqrt(y)"),  # not the name xsqrt
        ("√(√(x))", "sqrt(sqrt(x))"),
        # a space between operands multiplies, as 2x and sin(x) cos(x) already did
        ("x sin(x)", "x*sin(x)"),
        ("pi x", "pi*x"),
        ("k q1 q2 / r^2", "k*q1*q2/r**2"),
        ("2 pi r", "2*pi*r"),
        ("2πx", "2*pi*x"),  # π is a constant, never part of a name
        ("πr²", "pi*r**2"),
        ("x (y + 1)", "x*(y + 1)"),  # (x(y + 1), with no space, stays an error: f(x) notation)
        ("2 (x)", "2*x"),
        ("sin (x)", "sin(x)"),  # a function's call
        ("x if x > 0 else -x", "x if x > 0 else -x"),  # keywords are not operands
        # bars
        ("|x|", "Abs(x)"),
        ("|x - |y||", "Abs(x - Abs(y))"),
        ("2|x|", "2*Abs(x)"),
        ("|x| |y|", "Abs(x)*Abs(y)"),
        ("x|y|", "x*Abs(y)"),
        ("|x|²", "Abs(x)**2"),
        ("||x||", "Abs(Abs(x))"),
        ("|(x)|", "Abs(x)"),
        # pasted characters
        ("1 if x ≤ y else 2", "1 if x <= y else 2"),
        ("1 if x ≥ y else 2", "1 if x >= y else 2"),
        ("1 if x ≠ y else 2", "1 if x != y else 2"),
        ("x – y ‑ z", "x - y - z"),  # en dash, non-breaking hyphen
        ("½x + ¼ + ⅓ + ¾", "(1/2)*x + 1/4 + 1/3 + 3/4"),
        ("x₁ + x₂₃", "x1 + x23"),
    ],
)
def test_typeset_operators_superscripts_and_pi_read_as_typed(typed, python):
    assert parse_expression(typed) == parse_expression(python)


def test_typeset_input_errors_point_at_the_original_columns():
    with pytest.raises(ParseError) as info:
        parse_expression("x² + sinn(x)")
    assert info.value.start == 5 and info.value.render().splitlines()[1] == "  x² + sinn(x)"
    with pytest.raises(ParseError, match="'××' is not an operator"):
        parse_expression("x××y")  # would read as the power x**y
    assert parse_expression("π", {"π"}).op == "var"  # --vars makes it a variable
    with pytest.raises(ParseError, match=r"write sin\(...\)² for the power of sin's value"):
        parse_expression("sin²(x)")  # would read as sin**2 * (x)
    with pytest.raises(ParseError, match=r"write √\(...\) with parentheses") as info:
        parse_expression("1 + √x²")  # √(x²) or √(x)²? Only the typesetting knew
    assert info.value.start == 4


@pytest.mark.parametrize(
    ("typed", "message", "start"),
    [
        ("sin x", r"write sin\(x\) with parentheses", 0),
        ("ln x", r"write ln\(x\) with parentheses", 0),
        ("y + sin  x", r"write sin\(x\) with parentheses", 4),
        ("|x", "'\\|' is not closed: \\|x\\| is the absolute value of x", 0),
        ("|x - |y|", "'\\|' is not closed", 0),
        ("(|x)|", "'\\|' is not closed before '\\)'", 1),
        ("2 3", r"a number cannot follow '2' here: write 2\*3 to multiply", 0),
        ("2₁", r"a subscript digit belongs to a name \(x₁\)", 1),
        ("2½", r"write a mixed number as a sum or a fraction \(2 \+ 1/2, not 2½\)", 0),
    ],
)
def test_math_as_typed_on_paper_errors_say_what_to_write(typed, message, start):
    with pytest.raises(ParseError, match=message) as info:
        parse_expression(typed)
    assert info.value.start == start


def test_a_function_name_listed_as_a_variable_multiplies():
    assert str(parse_expression("gamma x", {"gamma", "x"})) == "gamma*x"


_OPERANDS = st.sampled_from(["x", "y", "k", "q1", "pi", "θ", "sin(x)", "(x + 1)", "|y|", "exp(-x)", "x²"])


@given(
    st.one_of(st.none(), st.sampled_from(["2", "0.5", "3e2"])),
    st.lists(_OPERANDS, min_size=1, max_size=6),
    st.lists(st.sampled_from([" ", "  ", "\t"]), min_size=6, max_size=6),
)
def test_operands_side_by_side_are_their_product(number, operands, spaces):
    # a leading number, then operands separated by any blanks: the product, as written with *
    terms = ([number] if number else []) + operands
    typed = "".join(term + gap for term, gap in zip(terms, spaces + [""] * len(terms))).strip()
    assert parse_expression(typed) == parse_expression("*".join(f"({t})" for t in terms))
