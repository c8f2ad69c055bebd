"""The command line, through click's CliRunner and real subprocesses."""

import csv
import io
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from diffcli import __version__
from diffcli.cli import cli

EXPR = "x^2 sin(y)"
AT = ["--at", "x=1,y=2"]


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def strict_json(text):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# -- every command, every format ---------------------------------------------


def test_json_contract_for_grad():
    result = run("grad", EXPR, *AT, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = strict_json(result.output)
    assert doc["command"] == "grad"
    assert doc["expression"] == "x**2*sin(y)"
    assert doc["variables"] == ["x", "y"]
    assert doc["symbolic"] == ["2*x*sin(y)", "x**2*cos(y)"]
    assert doc["ok"] is True
    (r,) = doc["results"]
    assert r["point"] == {"x": 1.0, "y": 2.0}
    assert r["value"] == math.sin(2.0)
    assert r["autodiff"] == [2 * math.sin(2.0), math.cos(2.0)]
    assert r["reference"] == [2 * math.sin(2.0), math.cos(2.0)]
    assert (r["abs_err"], r["rel_err"], r["status"]) == (0.0, 0.0, "ok")


@pytest.mark.parametrize(
    ("command", "extra", "autodiff", "symbolic"),
    [
        ("value", [], math.sin(2.0), "x**2*sin(y)"),
        (
            "hessian",
            [],
            [[2 * math.sin(2.0), 2 * math.cos(2.0)], [2 * math.cos(2.0), -math.sin(2.0)]],
            [["2*sin(y)", "2*x*cos(y)"], ["2*x*cos(y)", "-x**2*sin(y)"]],
        ),
        ("jvp", ["--tangent", "x=1,y=0"], 2 * math.sin(2.0), "2*x*sin(y)"),
        ("jvp", ["--tangent", "0,1"], math.cos(2.0), "x**2*cos(y)"),
    ],
)
def test_json_shapes_per_command(command, extra, autodiff, symbolic):
    result = run(command, EXPR, *AT, *extra, "-f", "json")
    assert result.exit_code == 0, result.output
    doc = strict_json(result.output)
    r = doc["results"][0]
    assert (
        r["autodiff"] == pytest.approx(autodiff, rel=1e-15)
        if command != "hessian"
        else r["autodiff"] == [pytest.approx(row, rel=1e-15) for row in autodiff]
    )
    assert doc["symbolic"] == symbolic
    assert r["value"] == pytest.approx(math.sin(2.0), rel=1e-15)


def test_json_writes_non_finite_numbers_as_strings():
    result = run("grad", "x*sqrt(x)", "--at", "x=0", "-f", "json")
    assert result.exit_code == 1
    doc = strict_json(result.output)
    r = doc["results"][0]
    assert r["autodiff"] == ["NaN"] and r["reference"] == [0.0]
    assert r["abs_err"] == "Infinity" and r["status"] == "mismatch" and doc["ok"] is False
    undefined = strict_json(run("grad", "sqrt(x)", "--at", "x=0", "-f", "json").output)["results"][0]
    assert undefined["autodiff"] == ["Infinity"] and undefined["abs_err"] is None


def test_plain_is_one_tab_separated_line_per_point():
    result = run("grad", EXPR, "--at", "x=1,y=2", "--at", "x=0,y=0", "-f", "plain")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 2
    fields = lines[0].split("\t")
    assert fields[0] == "x=1.0,y=2.0"
    assert float(fields[1]) == math.sin(2.0)
    assert [float(v) for v in fields[2].split(",")] == [2 * math.sin(2.0), math.cos(2.0)]
    assert fields[-2:] == ["ok", "-"] and len(fields) == 8
    assert lines[1].split("\t")[2] == "0.0,0.0"
    undefined = run("grad", "Abs(x)", "--at", "x=0", "-f", "plain").output.rstrip("\n").split("\t")
    assert undefined[-2:] == ["undefined", "∂f/∂x: one-sided derivatives differ (-1 and 1) at the kink of Abs(x)"]


def test_plain_is_the_default_when_piped():
    assert run("value", "x+1", "--at", "x=1").output == "x=1.0\t2.0\t2.0\t2.0\t0.0\t0.0\tok\t-\n"


def test_plain_hessian_rows_separated_by_semicolons():
    line = run("hessian", "x*y", "--at", "x=1,y=2", "-f", "plain").output
    assert line.split("\t")[2] == "0.0,1.0;1.0,0.0"


def test_csv_has_a_column_per_element():
    result = run("hessian", "x*y", "--at", "x=1,y=2", "--at", "x=3,y=4", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 2
    assert rows[0]["at[x]"] == "1.0" and rows[1]["at[y]"] == "4.0"
    assert rows[0]["autodiff[x,y]"] == "1.0" and rows[0]["reference[y,x]"] == "1.0"
    assert rows[0]["autodiff[x,x]"] == "0.0" and rows[0]["status"] == "ok"
    assert rows[1]["value"] == "12.0"


def test_table_shows_each_quantity_side_by_side_within_80_columns():
    result = run("hessian", "x^2 sin(y) + exp(x*y)/(1+y^2)", *AT, "-f", "table")
    assert result.exit_code == 0
    out = result.output
    for needle in ("Hessian of", "autodiff", "symbolic", "reference", "∂²f/∂x∂y", "2*sin(y)", "ok"):
        assert needle in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "\x1b[" not in out


def test_table_colours_honour_no_color():
    coloured = run("grad", "x*sqrt(x)", "--at", "x=0", "-f", "table", env={"FORCE_COLOR": "1"})
    assert "\x1b[1;31mmismatch" in coloured.output
    plain = run("grad", "x*sqrt(x)", "--at", "x=0", "-f", "table", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[31m" not in plain.output and "\x1b[1;31m" not in plain.output and "mismatch" in plain.output


# -- input ----------------------------------------------------------------------


def test_expression_from_stdin():
    result = run("grad", "-", "--at", "x=3", "-f", "json", input="x^2\n")
    assert strict_json(result.output)["results"][0]["autodiff"] == [6.0]


def test_empty_stdin_is_an_error():
    result = run("grad", "-", "--at", "x=3", input="")
    assert result.exit_code == 2 and "no expression" in result.output


# -- exit statuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["grad", "x^2", "--at", "x=1"], 0),
        (["grad", "sqrt(x)", "--at", "x=0"], 0),
        (["grad", "x*sqrt(x)", "--at", "x=0"], 1),
        (["grad", "x*sqrt(x)", "--at", "x=1", "--at", "x=0"], 1),
        (["grad", "sinn(x)", "--at", "x=0"], 2),
        (["grad", "x", "--at", "y=0"], 2),
        (["grad", "x"], 2),
        (["grad", "x", "--at", "x=1", "--dtype", "float16"], 2),
        (["frobnicate", "x"], 2),
        (["grad", "x", "--at", "x=1", "--device", "cuda:99"], 2),
    ],
)
def test_exit_statuses(args, code):
    assert run(*args).exit_code == code


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--timeout", "nan", "--timeout must be a positive number"),
        ("--timeout", "inf", "--timeout must be a positive number"),
        ("--timeout", "1e400", "--timeout must be a positive number"),
        ("--max-points", "0", "--max-points must be a positive number"),
        ("--rtol", "inf", "--rtol must be a finite number >= 0"),
        ("--atol", "1e400", "--atol must be a finite number >= 0"),
    ],
)
def test_option_values_out_of_range_are_input_errors(option, value, message):
    for fmt in ("plain", "json"):
        result = run("grad", "x*y", "--at", "x=1,y=2", option, value, "-f", fmt)
        assert result.exit_code == 2 and f"Error: {message}" in result.output, result.output
        assert "internal" not in result.output


def test_points_files_a_new_user_has(tmp_path):
    bom = tmp_path / "excel.csv"
    bom.write_text("x,y\n1,2\n", encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    assert json.loads(run("value", "x*y", "--points", str(bom), "-f", "json").output)["results"][0]["value"] == 2.0
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00x")
    result = run("value", "x*y", "--points", str(binary))
    assert result.exit_code == 2 and "binary.csv: not UTF-8 text" in result.output


def test_parse_errors_show_a_caret_and_no_traceback():
    result = run("grad", "x + sinn(x)", "--at", "x=1")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == "Error: unknown function 'sinn' (did you mean 'sin'?) (column 5)"
    assert lines[1] == "  x + sinn(x)"
    assert lines[2] == "      ^^^^"
    assert "Traceback" not in result.output


def test_missing_value_names_the_variable():
    result = run("grad", "x*y", "--at", "x=1")
    assert result.exit_code == 2 and "no value for 'y'" in result.output


def test_internal_errors_are_exit_3_without_traceback(monkeypatch):
    import diffcli.pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(diffcli.pipeline, "run", broken)
    result = run("grad", "x", "--at", "x=1")
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.output and "Traceback" not in result.output


# -- help, version, start-up ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("value", 'diffcli value "sqrt(x^2 + y^2)" --at x=3,y=4'),
        ("grad", 'diffcli grad "x^2 sin(y)" --at x=1,y=2'),
        ("hessian", 'diffcli hessian "x^3 y + exp(y)" --at x=1,y=0'),
        ("jvp", 'diffcli jvp "x^2 sin(y)" --at x=1,y=2 --tangent x=1,y=0'),
    ],
)
def test_each_help_shows_a_working_example(command, example):
    help_text = run(command, "--help").output
    assert example in help_text
    exits = "Exit status: 0 no mismatch (undefined and unknown allowed), 1 a mismatch,\n  2 invalid input, 3 internal"
    assert exits in help_text
    args = example.split(" ", 2)[2]
    expr, rest = args[1:].split('" ', 1)
    assert run(command, expr, *rest.split()).exit_code == 0


def test_version():
    assert run("--version").output.strip() == f"diffcli, version {__version__}"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["grad", "--help"], ["jvp", "--help"], ["plot", "--help"]])
def test_help_imports_neither_torch_nor_sympy(args):
    code = (
        "import sys\n"
        "from diffcli.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='diffcli')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sympy', 'numpy', 'rich', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "diffcli", "grad", "x^2", "--at", "x=3"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.split("\t")[2] == "6.0"


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (["grad", "sqrt(x)", "--at", "x=0"], "undefined", 0),
        (["grad", "x*sqrt(x)", "--at", "x=0"], "mismatch", 1),
        (["grad", "Abs(x)", "--at", "x=0"], "undefined", 0),
        (["grad", "Piecewise((sqrt(x), x > 0), (0, True))", "--at", "x=-1"], "ok", 0),
        (["grad", "Piecewise((sqrt(x), x > 0), (0, True))", "--at", "x=0"], "undefined", 0),
        (["grad", "Piecewise((log(x), x > 0), (0, True))", "--at", "x=-1"], "ok", 0),
        (["grad", "Piecewise((log(x), x > 0), (0, True))", "--at", "x=0"], "undefined", 0),
        (["grad", "x if x != 0 else 0", "--at", "x=0"], "mismatch", 1),
        (["value", "log(x)", "--at", "x=-1"], "undefined", 0),
        (["value", "1/x", "--at", "x=0"], "undefined", 0),
        (["grad", "floor(x) + x**2", "--at", "x=1.5"], "ok", 0),
        (["grad", "x**y", "--at", "x=0,y=1"], "ok", 0),
        (["grad", "x/x", "--at", "x=0"], "undefined", 0),
        (["grad", "sin(x)", "--at", "x=0.5", "--dtype", "float32"], "ok", 0),
    ],
)
def test_exact_verdicts_at_awkward_points(args, status, code):
    result = run(*args, "-f", "json")
    assert result.exit_code == code
    (r,) = strict_json(result.stdout)["results"]
    assert r["status"] == status
    assert ("reason" in r) == (status == "undefined")
    if args[1] == "Abs(x)" or "Piecewise" in args[1]:
        assert r["autodiff"] == [0.0]
    if args[1] == "floor(x) + x**2":
        assert r["autodiff"] == [3.0]


def test_every_command_of_the_table_is_on_the_command_line_in_help_and_in_the_readme():
    from pathlib import Path

    from diffcli.commands import COMMANDS

    assert set(cli.commands) == {*COMMANDS, "batch", "plot", "server"}
    top = run("--help").output
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {name} +{re.escape(command.summary[:30])}", top, re.MULTILINE), name
        assert f"diffcli {name} " in readme, name
        assert command.example in run(name, "--help").output
    for name in cli.commands:  # plot, batch and server too
        assert f"diffcli {name} " in readme, name


def test_typeset_math_in_expressions_and_points():
    # pasted from a paper: the minus sign U+2212, a superscript, a times sign, pi
    result = run("grad", "x² × π − y", "--at", "x=−1,y=2", "-f", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["expression"] == "x**2*pi - y"
    assert document["results"][0]["autodiff"] == [-2 * math.pi, -1.0]


def test_reasons_in_json_csv_and_the_summary():
    doc = strict_json(run("grad", "Abs(x) + y", "--at", "x=0,y=1", "--at", "x=1,y=1", "-f", "json").output)
    first, second = doc["results"]
    assert first["status"] == "undefined" and first["reference"] == ["NaN", 1.0] and first["abs_err"] == 0.0
    assert first["reason"].endswith("at the kink of Abs(x)") and "reason" not in second
    assert doc["summary"]["reasons"] == {first["reason"]: 1} and doc["summary"]["recomputed"] == 0
    rows = list(csv.DictReader(io.StringIO(run("grad", "Abs(x)", "--at", "x=0", "-f", "csv").output)))
    assert rows[0]["status"] == "undefined" and rows[0]["reason"].startswith("∂f/∂x: one-sided")


def test_a_note_where_the_reference_is_not_the_formula_of_the_piece_taken():
    (r,) = strict_json(run("grad", "x if x != 0 else 0", "--at", "x=0", "-f", "json").output)["results"]
    assert r["status"] == "mismatch" and r["reference"] == [1.0] and "reason" not in r
    assert r["note"].startswith("∂f/∂x: the derivative of the function at the boundary x != 0")


@pytest.mark.parametrize(
    ("args", "reference", "status", "code"),
    [
        # the piece taken is not the function
        (["grad", "x if x != 0 else 0", "--at", "x=0"], [1.0], "mismatch", 1),
        (["hessian", "sin(x)/x if x != 0 else 1", "--at", "x=0"], [[-1 / 3]], "mismatch", 1),
        (["grad", "floor(x)^2", "--at", "x=0"], ["NaN"], "undefined", 0),
        (["grad", "x*Heaviside(x)", "--at", "x=0"], ["NaN"], "undefined", 0),
        (["grad", "atan2(y, x)", "--at", "x=-1,y=0"], [0.0, "NaN"], "undefined", 0),
        (["hessian", "abs(log(x))^2", "--at", "x=1"], [[2.0]], "mismatch", 1),
        # float64 overflow is not undefined: torch's inf and NaN are the log-sum-exp failure
        (["value", "log(exp(x))", "--at", "x=710"], 710.0, "mismatch", 1),
        (["grad", "log(exp(x)+exp(y))", "--at", "x=1000,y=1000"], [0.5, 0.5], "mismatch", 1),
        # derivatives that exist
        (["grad", "sinc(x)", "--at", "x=0"], [0.0], "ok", 0),
        (["grad", "Min(x, 7, x)", "--at", "x=2.65"], [1.0], "ok", 0),
        (["grad", "Max(x, abs(x))", "--at", "x=2"], [1.0], "ok", 0),
        (["grad", "asin(sign(x))", "--at", "x=1"], [0.0], "ok", 0),
        (["grad", "Heaviside(x, y)", "--at", "x=1,y=0.3"], [0.0, 0.0], "ok", 0),
        (["grad", "0^x", "--at", "x=1"], [0.0], "ok", 0),
        (["value", "log(tanh(x))", "--at", "x=50"], -7.440151952041672e-44, "ok", 0),  # torch's 0 is within atol
        (["value", "log(cos(x)^2 + sin(x)^2)", "--at", "x=1"], 0.0, "ok", 0),
        # references that were wrong or never returned
        (["value", "sec(x - 1e308)", "--at", "x=1.8"], -1.594866151110497, "mismatch", 1),  # float64 loses the 1.8
        (["value", "x^y", "--at", "x=1.1,y=-1.1"], 0.900467507467747, "ok", 0),
        (["value", "x^100000", "--at", "x=1.0001"], 22015.456048527954, "ok", 0),
        (["grad", "loggamma(x)", "--at", "x=100000"], [11.512920464961896], "ok", 0),
        (["value", "log(x, 0)", "--at", "x=2"], "NaN", "undefined", 0),
    ],
)
def test_the_examples_of_the_verdict_rule_end_to_end(args, reference, status, code):
    result = run(*args, "-f", "json")
    assert result.exit_code == code, result.output
    (r,) = strict_json(result.stdout)["results"]
    assert r["status"] == status, r
    got = np.array(r["reference"], dtype=float)  # "NaN" reads back as nan
    np.testing.assert_allclose(got, np.array(reference, dtype=float), rtol=1e-15, equal_nan=True)


def test_the_footer_does_not_call_hand_given_points_generated():
    at = [arg for i in range(17) for arg in ("--at", f"x={i}")]
    result = run("grad", "x^2", *at, "-f", "table")
    assert "at these 17 points given by hand (more than 16)" in result.output
    assert "generated" not in result.output
    result = run("grad", "x^2", "--grid", "x=0:1:3", "-f", "table")
    assert "reference in float64 at generated points" in result.output and "3 points: 3 ok" in result.output
    assert "1 point: 1 ok" in run("grad", "x^2", "--at", "x=1", "-f", "table").output


@pytest.mark.parametrize("text", ["-x^2", "-2*x", "-sin(x)", "-abs(x)", "-tan(x)", "-atan(x)", "-1/x", "-exp(-x^2)"])
def test_an_expression_may_start_with_a_minus_sign_wherever_it_stands(text):
    expected = None
    for args in (
        [text, "--at", "x=0.5"],
        ["--at", "x=0.5", text],
        ["-a", "x=0.5", "-f", "json", text],
        ["--at=x=0.5", text],
        [text, "-ax=0.5"],  # glued short options after EXPR
    ):
        result = run("grad", *args, "-f", "json")
        assert result.exit_code == 0, (args, result.output)
        doc = json.loads(result.output)
        assert doc["expression"].startswith("-")
        expected = expected or doc["results"][0]["reference"]
        assert doc["results"][0]["reference"] == expected


def test_a_glued_option_before_the_expression_is_explained():
    result = run("grad", "-ax=2", "x")
    assert result.exit_code == 2
    assert "'-ax=2' is read as EXPR here, and so is 'x' (for the option -a, write -a x=2)" in result.output
    assert run("grad", "--", "-x", "--at", "x=1").exit_code == 2  # after --, everything is EXPR (POSIX)
    by_hand = json.loads(run("grad", "-a", "x=2", "-x", "-f", "json").output)["results"][0]
    assert by_hand["value"] == -2.0 and by_hand["reference"] == [-1.0]
