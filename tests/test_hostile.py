"""Hostile input: every case is refused with exit 2, a short message, no traceback,
nothing on standard output, no side effect, and without hanging.

The time bound below is a hang guard (generous, for slow shared machines), not
a speed check: speed belongs to the benchmark.
"""

import time

import pytest
from click.testing import CliRunner

from diffcli.cli import cli

HANG_GUARD_SECONDS = 60
LIMITS = ["--timeout", "2", "--max-memory", "2048"]


def grad(expr):
    return ["grad", "--at", "x=1", "--", expr]


CODE_INJECTION = [
    "__import__('os').system('touch {sentinel}')",
    "open('{sentinel}', 'w')",
    "eval(\"open('{sentinel}', 'w')\")",
    "exec(\"open('{sentinel}', 'w')\")",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "sin.__globals__",
    "(lambda: open('{sentinel}', 'w'))()",
    "[open('{sentinel}', 'w') for x in (1,)]",
    "f\"{{open('{sentinel}', 'w')}}\"",
    "(y := 1)",
    "import os",
    "x; open('{sentinel}', 'w')",
    "x\nopen('{sentinel}', 'w')",
    "getattr(x, 'real')",
    "sympify('x')",
    "Symbol('x')",
    "Function('f')(x)",
    "b'x'",
    "'x' * 3",
    "{{x}}",
    "{{'a': x}}",
    "[x][0]",
    "x if open('{sentinel}', 'w') else 1",
    "Piecewise((open('{sentinel}', 'w'), True))",
    "sin(x, key=open('{sentinel}', 'w'))",
    "print(x)",
    "globals()",
    "breakpoint()",
    "__builtins__",
]

RESOURCES = [
    "((9**9)**9999)**9999",
    "2**10**7",
    "10**10**10",
    "factorial(10**10)",
    "gamma(10**20)",
    "loggamma(10**20)",
    "exp(10**6)",
    "cosh(10**6) * x",
    "(1/3)**10**6",
    "x + 10**-100000",
    "9" * 1000,
    "x + " + "1" * 150,
    "(" * 300 + "x" + ")" * 300,
    "sin(" * 250 + "x" + ")" * 250,
    "-" * 5000 + "x",
    "x" + "+x" * 3000,
    # loops: sizes known at parse time, refused before anything runs
    "sum(x, k, 1, 10**9)",
    "iterate(s*x, s, 1, 10**6)",
    "sum(sum(sum(sum(x*i*j*k*m, i, 1, 100), j, 1, 100), k, 1, 100), m, 1, 100)",
    "sum(x, k, 1, 2**10**7)",
    "sum(x, k, 1, 10**400)",
    "x*" + "sum(" * 9 + "x" + "".join(f", k{i}, 1, 2)" for i in range(9)),
    "sum(x, x, 1, 3)",
    "sum(x, k, 1, sqrt(2))",
    "sum(x/k, k, 1e400, 1e400 + 2)",
]

SYNTAX = ["x +", "(x", "x)", "x * * y", "1 2", "x, y", "", "   ", "x = 1", "x ==", "if x", "2 **", "x 2", "sin()",
          "sin x", "x +* y", "3..4", "x!", "&x", "x ? 1 : 2",
          # as people type on paper: bars that do not pair, a function without parentheses, subscripts on numbers
          "|x", "x|", "||", "|x||", "| |", "(|x)|", "x || y", "|x - |x|", "2 (x", "sin  x", "ln x", "2₁",
          "x₁₂ + 3₄", "2½", "x ≤", "≠ x"]  # fmt: skip

UNKNOWN_NAMES = ["sinn(x)", "foo(x)", "Sin(x)", "x(x + 1)", "diff(x)", "integrate(x)", "sin", "os.system(x)",
                 "Integral(x)", "lambdify(x)"]  # fmt: skip

UNICODE = [
    "\u0445 + x",  # Cyrillic ha, looks like x
    "s\u0456n(x)",  # Cyrillic i in sin
    "x\u200b + 1",  # zero-width space
    "x + \u202ey",  # right-to-left override
    "x\x00",  # NUL
    "\ufeffx",  # byte-order mark
    "x\u00a0+ 1",  # no-break space
    "x\u2028+ 1",  # line separator
    "x\u0301 + 1",  # combining acute accent
    "x\U000e0041",  # tag character
    "x\u00ad",  # soft hyphen
    "\U0001f600 + x",  # emoji
    "\u00b2x",  # a superscript exponent with no base (x² itself is x**2)
    "x\u037e 1",  # Greek question mark (looks like ;)
]

POINTS = [
    ["grad", "x", "--at", "x=__import__('os').system('touch {sentinel}')"],
    ["grad", "x", "--at", "x=open('{sentinel}', 'w')"],
    ["grad", "x", "--at", "x=1,x=2"],
    ["grad", "x", "--at", "y=1"],
    ["grad", "x", "--at", "x="],
    ["grad", "x", "--at", "x=nan"],
    ["grad", "x", "--at", "x=inf"],
    ["grad", "x", "--at", "x=1e400"],
    ["grad", "x", "--at", "x=log(0)"],
    ["grad", "x", "--at", "x=sqrt(-1)"],
    ["grad", "x", "--at", "x=y"],
    ["grad", "x", "--at", "x=2**10**7"],
    ["grad", "x", "--at", "x=1;2"],
    ["grad", "x", "--at", "x=\u0445"],
    ["jvp", "x", "--at", "x=1", "--tangent", "x=open('{sentinel}', 'w')"],
    ["grad", "x", "--grid", "x=0:1:abc"],
    ["grad", "x", "--grid", "x=0:1:100000000000"],
    ["grad", "x", "--grid", "x=0:1:10000", "--max-points", "100"],
    ["grad", "x", "--sample", "x=0:", "--n", "3"],
    ["grad", "x", "--sample", "x=0:1", "--n", "1000000000000"],
    ["grad", "x*y", "--grid", "x=0:1:30000", "--grid", "y=0:1:30000"],
    ["grad", "x", "--at", "x=" + "1" * 20000],
    ["grad", "x", "--rtol", "-1", "--at", "x=1"],
    ["grad", "x", "--timeout", "0", "--at", "x=1"],
]

SLOW_SYMBOLIC = [  # symbolic work that cannot finish in the time or memory allowed: the worker is killed
    ["grad", "--max-memory", "64", "--at", "x=1", "--", "x^2"],
    ["hessian", "--timeout", "0.05", "--at", "x=0.5", "--", "sin(" * 60 + "x" + ")" * 60],
    ["grad", "--timeout", "0.05", "--at", "x=0.5", "--", "+".join(f"sin(x**{i})*exp(x/{i})" for i in range(1, 150))],
    ["hessian", "--timeout", "0.5", "--at", "x=2", "--", "iterate((s + x/s)/2, s, 1, 10000)"],
    ["grad", "--timeout", "0.5", "--at", "x=2", "--", "iterate(s^2, s, x, 10000)"],
]


def cases():
    for group, items in (("code", CODE_INJECTION), ("resources", RESOURCES), ("syntax", SYNTAX),
                         ("names", UNKNOWN_NAMES), ("unicode", UNICODE)):  # fmt: skip
        for i, expr in enumerate(items):
            yield pytest.param(grad(expr), None, id=f"{group}-{i}")
    for i, args in enumerate(POINTS):
        yield pytest.param(args, None, id=f"points-{i}")
    for i, args in enumerate(SLOW_SYMBOLIC):
        yield pytest.param(args, None, id=f"slow-{i}")
    long_inputs = ["x + " * 5000 + "x", "sin(x)" * 3000, "(" * 5000, "x" * 20000, "1+" * 20000 + "1"]
    for i, text in enumerate(long_inputs):  # piped, as a user sends a file
        yield pytest.param(["grad", "-", "--at", "x=1"], text, id=f"stdin-{i}")


def test_there_are_at_least_80_hostile_cases():
    assert len(list(cases())) >= 80


@pytest.mark.parametrize(("args", "stdin"), list(cases()))
def test_hostile_input_is_refused_cleanly(args, stdin, tmp_path):
    sentinel = tmp_path / "pwned"
    args = [a.format(sentinel=sentinel) if "{sentinel}" in a else a for a in args]
    started = time.monotonic()
    result = CliRunner().invoke(cli, [args[0], *LIMITS, *args[1:]], input=stdin)
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) <= 3
    if "--max-memory" in args or "--timeout" in args[1:3]:
        assert "--max-memory" in result.stderr or "--timeout" in result.stderr
    assert "Traceback" not in result.output
    assert not sentinel.exists()
    assert elapsed < HANG_GUARD_SECONDS


BAD_FILES = [
    ("bad.toml", "[[case]\nexpr = 'x'"),
    ("bad.toml", "title = 'x'\n"),
    ("bad.toml", "[defaults]\nspeed = 1\n"),
    ("bad.toml", "case = 3\n"),
    ("bad.toml", "[defaults]\nchecks = ['all']\n"),
    ("bad.toml", "\x00\x01\x02"),
]


@pytest.mark.parametrize(("name", "text"), BAD_FILES)
def test_unusable_batch_files_are_exit_2(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    result = CliRunner().invoke(cli, ["batch", str(path), *LIMITS])
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.output


def test_binary_batch_file_is_exit_2(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    result = CliRunner().invoke(cli, ["batch", str(path)])
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


BAD_CASES = [
    ('expr = "x"', "has no points"),
    ('expr = "x"\nat = []', "has no points"),
    ("expr = \"__import__('os')\"\nat = [{ x = 1 }]", "not a known function"),
    ('expr = "2**10**7"\nat = [{ x = 1 }]', "digits"),
    ("expr = \"x\"\nat = [{ x = \"open('f', 'w')\" }]", "not a known function"),
    ('expr = "x"\nat = [{ x = 1 }]\nlet = { y = "lambda: 1" }', "lambdas"),
    ('expr = "' + "sin(" * 120 + "x" + ")" * 120 + '"\nat = [{ x = 0.5 }]\nchecks = ["hessian"]', "--timeout"),
]


@pytest.mark.parametrize(("body", "message"), BAD_CASES)
def test_hostile_batch_cases_fail_alone(tmp_path, body, message):
    path = tmp_path / "suite.toml"
    checks = "" if "checks" in body else '\nchecks = ["grad"]'
    path.write_text(f'[[case]]\nname = "bad"\n{body}{checks}\n\n[[case]]\nexpr = "x^2"\nat = [{{ x = 3 }}]\n')
    result = CliRunner().invoke(cli, ["batch", str(path), "-f", "plain", *LIMITS, "--timeout", "1"])
    lines = result.stdout.splitlines()
    assert result.exit_code == 1, result.output
    assert lines[0].startswith("error\tbad") and message in lines[0]
    assert lines[-2].startswith("ok\tx^2")


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("x,y\n1\n", "1 cells for 2 columns"),
        ("x\n1,2\n", "2 cells for 1 columns"),
        ("x,y\n1,abc\n", "must be a constant"),
        ("x,y\n1,__import__('os')\n", "not a known function"),
        ("y\n1\n", "no value for 'x'"),
        ("x,x\n1,2\n", "repeated"),
    ],
)
def test_bad_csv_points(csv_text, message):
    result = CliRunner().invoke(cli, ["grad", "x*y", "--points", "-", *LIMITS], input=csv_text)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_debug_shows_a_traceback_for_internal_errors(monkeypatch):
    import diffcli.pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(diffcli.pipeline, "run", broken)
    result = CliRunner().invoke(cli, ["grad", "x", "--at", "x=1", "--debug"])
    assert isinstance(result.exception, RuntimeError)
