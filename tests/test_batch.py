"""diffcli batch: file formats, records, JUnit, shards, bad cases, interruption."""

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffcli.batch import load, run_batch, shard_spec
from diffcli.cli import cli
from diffcli.errors import DiffcliError
from diffcli.suite import read_text, read_toml

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
[defaults]
checks = ["value", "grad"]

[[case]]
name = "square"
expr = "x*x"
at = [{ x = 2.0 }, { x = "pi" }]
expect = { grad = [[4.0], [6.283185307179586]] }

[[case]]
name = "typo"
expr = "sinn(x)"
at = [{ x = 1 }]

[[case]]
expr = "x*sqrt(x)"
at = [{ x = 0 }, { x = 1 }]
checks = ["grad"]
"""


def batch(*args, input=None):
    return CliRunner().invoke(cli, ["batch", *args], input=input)


def jsonl(text):
    def refuse(name):
        raise ValueError(name)

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    return path


def test_json_lines_read_back_record_by_record(suite):
    result = batch(str(suite), "-f", "json")
    assert result.exit_code == 1
    records = jsonl(result.output)
    assert [(r.get("case"), r.get("check")) for r in records[:-1]] == [
        ("square", "value"), ("square", "grad"), ("typo", "value"), ("typo", "grad"), ("x*sqrt(x)", "grad"),
    ]  # fmt: skip
    square_grad = records[1]
    assert square_grad["ok"] is True and square_grad["status"] == "ok"
    assert [r["autodiff"] for r in square_grad["results"]] == [[4.0], [2 * math.pi]]
    assert square_grad["expression"] == "x*x" and square_grad["symbolic"] == ["2*x"]
    typo = records[2]
    assert typo["ok"] is False and "unknown function 'sinn'" in typo["error"] and typo["check"] == "value"
    assert records[4]["status"] == "mismatch"
    summary = records[-1]
    assert summary["ok"] is False
    assert summary["summary"]["counts"] == {"ok": 2, "error": 2, "mismatch": 1}
    assert summary["summary"]["cases"] == 3 and summary["summary"]["interrupted"] is False


def test_junit_parsed_back(suite, tmp_path):
    report = tmp_path / "report.xml"
    batch(str(suite), "-f", "plain", "--junit", str(report))
    suite_el = ET.parse(report).getroot().find("testsuite")
    assert suite_el.get("tests") == "5" and suite_el.get("failures") == "1" and suite_el.get("errors") == "2"
    cases = {c.get("name"): c for c in suite_el.iter("testcase")}
    assert set(cases) == {"square [value]", "square [grad]", "typo [value]", "typo [grad]", "x*sqrt(x) [grad]"}
    assert cases["x*sqrt(x) [grad]"].find("failure") is not None
    assert "sinn" in cases["typo [value]"].find("error").get("message")
    assert len(cases["square [grad]"]) == 0
    # checks overlap (symbolic work is queued ahead), so each is timed from the end of the
    # record before it: their times add up to at most the suite's (once 1.7 s each in a 2 s run)
    times = [float(c.get("time")) for c in cases.values()]
    assert sum(times) <= float(suite_el.get("time")) + 0.0005 * len(times)


def test_plain_lines_and_summary_comment(suite):
    lines = batch(str(suite)).output.splitlines()
    assert lines[0].split("\t")[:4] == ["ok", "square", "value", "2"]
    assert lines[2].split("\t")[0] == "error" and "sinn" in lines[2].split("\t")[-1]
    assert lines[-1] == "# 5 checks of 3 cases: 2 ok, 1 mismatch, 2 error"


def test_table_output(suite):
    out = batch(str(suite), "-f", "table").output
    assert "square" in out and "mismatch" in out
    # the typo fails both checks alike: one line for both
    assert out.count("error typo [value, grad]: unknown function 'sinn'") == 1


def test_text_format_from_stdin_with_comments():
    text = "# a comment\nx**2*sin(y); x=1,y=2; x=0,y=1   # two points\n\nexp(x); x=0\n"
    result = batch("-", "--checks", "grad,hessian", "-f", "json", input=text)
    assert result.exit_code == 0
    records = jsonl(result.output)
    assert [(r["case"], r["check"]) for r in records[:-1]] == [
        ("x**2*sin(y)", "grad"), ("x**2*sin(y)", "hessian"), ("exp(x)", "grad"), ("exp(x)", "hessian"),
    ]  # fmt: skip
    assert records[0]["results"][1]["autodiff"] == [0.0, 0.0]
    assert records[2]["results"][0]["autodiff"] == [1.0]


def test_text_cases_default_to_all_four_checks():
    records = jsonl(batch("-", "-f", "json", input="x^3; x=2\n").output)
    assert [r["check"] for r in records[:-1]] == ["value", "grad", "hessian", "jvp"]
    assert [r["autodiff"] for r in (rec["results"][0] for rec in records[:-1])] == [8.0, [12.0], [[12.0]], 12.0]


def test_let_values_are_reported_as_aux():
    suite = """
[[case]]
expr = "exp(-r2/2)"
vars = ["x", "y"]
let = { r2 = "x**2 + y**2", r4 = "r2**2" }
at = [{ x = 1, y = 2 }]
checks = ["value", "grad", "hessian", "jvp"]
"""
    cases = read_toml(suite, "s.toml")
    assert cases[0].let == {"r2": "x**2 + y**2", "r4": "r2**2"}
    from diffcli.batch import run_case

    records = list(run_case(cases[0], None, {}))
    assert [r.check for r in records] == ["value", "grad", "hessian", "jvp"]
    for r in records:
        assert r.report.aux["r2"].tolist() == [5.0] and r.report.aux["r4"].tolist() == [25.0]
        assert r.status == "ok"
    grad = records[1].report.autodiff[0]
    assert grad.tolist() == pytest.approx([-math.exp(-2.5), -2 * math.exp(-2.5)], rel=1e-15)


def test_let_aux_in_json_records(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[case]]\nexpr = "2*r"\nlet = { r = "x + 1" }\nat = [{ x = 1 }]\nchecks = ["grad"]\n')
    record = jsonl(batch(str(path), "-f", "json").output)[0]
    assert record["results"][0]["aux"] == {"r": 2.0} and record["results"][0]["autodiff"] == [2.0]


def test_expect_mismatch_fails_the_check(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[[case]]\nexpr = "x*x"\nat = [{ x = 2 }, { x = 3 }]\nexpect = { value = [4.0, 10.0] }\nchecks = ["value"]\n'
    )
    result = batch(str(path), "-f", "json")
    record = jsonl(result.output)[0]
    assert result.exit_code == 1 and record["status"] == "mismatch"
    assert record["expect_failures"] == [{"index": 1, "point": {"x": 3.0}, "expected": 10.0, "found": 9.0}]


def test_a_failed_golden_value_is_shown_in_every_format(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[case]]\nname = "sq"\nexpr = "x*x"\nat = [{ x = 2 }, { x = 3 }]\n'
                    'expect = { grad = [[4.1], [6.0]] }\nchecks = ["grad"]\n')  # fmt: skip
    message = "expect.grad at x=2: expected [4.1], found [4.0]"
    plain = batch(str(path), "-f", "plain").output.splitlines()[0].split("\t")
    assert plain[0] == "mismatch" and plain[-1] == message
    rows = list(csv.DictReader(io.StringIO(batch(str(path), "-f", "csv").output)))
    assert rows[0]["message"] == message
    assert f"mismatch sq [grad]: {message}" in batch(str(path), "-f", "table").output
    junit = tmp_path / "report.xml"
    batch(str(path), "-f", "plain", "--junit", str(junit))
    assert ET.parse(junit).getroot().find(".//failure").get("message") == message


def test_batch_csv_writes_missing_numbers_as_empty_cells(suite):
    rows = list(csv.DictReader(io.StringIO(batch(str(suite), "-f", "csv").output)))
    typo = next(r for r in rows if r["case"] == "typo")
    assert typo["points"] == typo["max_abs_err"] == typo["max_rel_err"] == ""  # (as single checks' CSV)


def test_checks_on_the_command_line_filter_a_suites_checks(suite):
    records = jsonl(batch(str(suite), "-f", "json", "--checks", "grad,hessian").output)[:-1]
    assert [(r["case"], r["check"]) for r in records] == [("square", "grad"), ("typo", "grad"), ("x*sqrt(x)", "grad")]
    result = batch(str(suite), "-f", "json", "--checks", "jvp")  # the suite's cases name value and grad only
    assert result.exit_code == 2 and "--checks jvp: no case runs these checks" in result.output


@pytest.mark.parametrize("name", ["tests.conf", "suite", "cases.txt"])
def test_a_toml_suite_is_recognised_by_its_content(tmp_path, name):
    path = tmp_path / name
    path.write_text(SUITE)
    records = jsonl(batch(str(path), "-f", "json").output)
    assert records[0]["case"] == "square" and records[0]["status"] == "ok"


@pytest.mark.parametrize(("name", "text"), [("empty.toml", ""), ("empty.txt", "# only a comment\n\n"),
                                            ("e.toml", "[defaults]\nrtol = 1e-9\n")])  # fmt: skip
def test_a_suite_with_no_cases_is_an_input_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    result = batch(str(path))
    assert result.exit_code == 2 and f"no cases in {path}" in result.output
    with pytest.raises(DiffcliError, match="no cases in"):
        load([(str(path), text)], None)


def test_suite_errors_speak_the_suites_language(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[case]]\nexpr = "x*y"\nat = [{ x = 1 }]\n[[case]]\nexpr = "x*y"\n'
                    'sample = { box = { x = [0, 1] } }\n[[case]]\nexpr = "x*y"\nat = [{ x = 1, y = 2 }]\n'
                    'tangent = [1]\nchecks = ["jvp"]\n')  # fmt: skip
    errors = [r["error"] for r in jsonl(batch(str(path), "-f", "json").output)[:-1]]
    assert errors[0] == "at x=1: no value for 'y'"
    assert errors[4].startswith("no value for 'y': add it to sample.box")
    assert errors[8] == "tangent 1: 1 value for 2 variables (x, y)"
    assert not any("--" in e for e in errors)


def test_sample_and_at_points_are_both_used(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[[case]]\nexpr = "x*y"\nat = [{ x = 1, y = 1 }]\n'
        'sample = { box = { x = [2, 3], y = ["pi", "2*pi"] }, n = 6, seed = 1 }\nchecks = ["grad"]\n'
    )
    points = [r["point"] for r in jsonl(batch(str(path), "-f", "json").output)[0]["results"]]
    assert len(points) == 7 and points[0] == {"x": 1.0, "y": 1.0}
    assert all(2 <= p["x"] <= 3 and math.pi <= p["y"] <= 2 * math.pi for p in points[1:])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ('expr = "x"\nat = [{ x = 1 }]\nbogus = 1', "unknown key 'bogus'"),
        ("expr = 3\nat = [{ x = 1 }]", "'expr' must be a string"),
        ("at = [{ x = 1 }]", "missing 'expr'"),
        ('expr = "x"\nat = { x = 1 }', "'at' must be an array, not a table"),
        ('expr = "x"\nat = [{ x = true }]', "'at[0].x' must be a number or an expression string"),
        ('expr = "x"\nat = [{ x = 1 }]\nchecks = ["gradient"]', "unknown check 'gradient'"),
        ('expr = "x"\nat = [{ x = 1 }]\nrtol = "small"', "'rtol' must be a number"),
        ('expr = "x"\nsample = { box = { x = [1] } }', "'sample.box.x' must be [low, high]"),
        ('expr = "x"\nsample = { n = 3 }', "needs a 'box'"),
        ('expr = "x"\nsample = { box = { x = [0, 1] }, count = 3 }', "unknown key 'count'"),
        ('expr = "x"\nat = [{ x = 1 }]\nexpect = { value = [1, 2] }', "2 values for 1 point in 'at'"),
        ('expr = "x"\nat = [{ x = 1 }]\nexpect = { value = ["a"] }', "'expect.value[0]' must be a number or an array"),
        ('expr = "x"\nat = [{ x = 1 }]\nrtol = inf', "'rtol' must be a finite number >= 0"),
        ('expr = "x"\nat = [{ x = 1 }]\natol = -1', "'atol' must be a finite number >= 0"),
        ('expr = "x"\nat = [{ x = 1 }]\nvars = "x"', "'vars' must be an array, not a string"),
    ],
)
def test_bad_case_is_reported_by_name_and_key_and_the_others_still_run(case, message):
    text = f'[[case]]\nname = "good"\nexpr = "x^2"\nat = [{{ x = 3 }}]\n\n[[case]]\nname = "bad"\n{case}\n'
    cases = read_toml(text, "s.toml")
    assert cases[0].error is None
    assert cases[1].error is not None and message in cases[1].error and "s.toml: case 2" in cases[1].error


def test_bad_values_in_a_case_are_reported_in_the_case_s_own_terms(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[[case]]\nexpr = "x"\nchecks = ["value"]\nsample = { box = { x = [1, 0] } }\n\n'
        '[[case]]\nexpr = "x"\nchecks = ["value"]\nat = [{ x = "1/0" }]\n'
    )
    path.write_text(
        path.read_text() + '\n[[case]]\nexpr = "x"\nchecks = ["jvp"]\nat = [{ x = 1 }]\ntangent = { x = "1/0" }\n'
    )
    records = jsonl(batch(str(path), "-f", "json").output)
    assert records[0]["error"] == "sample.box x=1:0: LOW is greater than HIGH"
    assert records[2]["error"].startswith("tangent x is not a finite real number")  # not --tangent
    # the value's own text is shown under the message, not an empty line
    assert records[1]["error"] == "at x is not a finite real number (column 1)\n  1/0\n  ^^^"


def test_a_bad_case_among_good_ones_only_fails_itself(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[[case]]\nexpr = "x^2"\nat = [{ x = 3 }]\nchecks = ["grad"]\n\n'
        '[[case]]\nexpr = "x^2"\nat = [{ y = 3 }]\nchecks = ["grad"]\n\n'
        '[[case]]\nexpr = "x^2"\nwhat = 1\n\n'
        '[[case]]\nexpr = "x^3"\nat = [{ x = 2 }]\nchecks = ["grad"]\n'
    )
    result = batch(str(path), "-f", "json")
    records = jsonl(result.output)
    assert [r["status"] for r in records[:-1]] == ["ok", "error", "error", "ok"]
    assert "unknown variable 'y'" in records[1]["error"] and "unknown key 'what'" in records[2]["error"]
    assert records[3]["results"][0]["autodiff"] == [12.0]
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[case]\nexpr = 'x'", "not valid TOML"),
        ("title = 'x'\n", "unknown top-level key 'title'"),
        ("[defaults]\nrtol = 1\nspeed = 2\n", "unknown key 'speed'"),
        ("case = 3\n", "must be an array of tables"),
    ],
)
def test_unusable_file_is_exit_2(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    result = batch(str(path))
    assert result.exit_code == 2 and message in result.output


def test_missing_file_is_exit_2():
    assert batch("/nonexistent/suite.toml").exit_code == 2


def test_shards_are_disjoint_and_cover_all_cases():
    sources = [("f.txt", "".join(f"x^{i}; x=1\n" for i in range(23)))]
    every = [c.name for c in load(sources, None)]
    shards = [[c.name for c in load(sources, shard_spec(f"{k}/4"))] for k in range(1, 5)]
    together = [name for shard in shards for name in shard]
    assert sorted(together) == sorted(every) and len(together) == 23
    assert all(set(a).isdisjoint(b) for i, a in enumerate(shards) for b in shards[i + 1 :])
    assert shards == [[c.name for c in load(sources, shard_spec(f"{k}/4"))] for k in range(1, 5)]


@pytest.mark.parametrize("spec", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard_specs(spec):
    with pytest.raises(DiffcliError):
        shard_spec(spec)


def test_shard_option_runs_a_slice():
    text = "".join(f"x^{i}; x=1\n" for i in range(6))
    records = jsonl(batch("-", "--checks", "grad", "--shard", "2/3", "-f", "json", input=text).output)
    assert [r["case"] for r in records[:-1]] == ["x^1", "x^4"]


def test_feynman_sample_is_what_the_script_generates():
    corpus = ROOT.parent / "shared" / "corpora" / "FeynmanEquations.csv"
    if not corpus.exists():
        pytest.skip("the corpus is not beside this checkout")
    sys.path.insert(0, str(ROOT / "samples"))
    try:
        from make_feynman import generate
    finally:
        sys.path.pop(0)
    text, _ = generate(str(corpus))
    assert (ROOT / "samples" / "feynman.toml").read_text() == text
    assert len(read_toml(text, "feynman.toml")) == 100


def test_text_cases_keep_their_line_numbers():
    cases = read_text("\n# c\nx; x=1\n; x=2\n", "f.txt")
    assert [(c.line, c.error is None) for c in cases] == [(3, True), (4, False)]


def _wait_for_lines(path, count, process, deadline):
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError("the batch did not produce records in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_batch_keeps_every_finished_record(tmp_path, sig):
    cases = tmp_path / "many.txt"
    cases.write_text("".join(f"sin(x*y)^{i} + exp(x/{i}); x=0.{i % 9 + 1},y=1.5\n" for i in range(1, 3000)))
    out, junit, page = tmp_path / "out.jsonl", tmp_path / "report.xml", tmp_path / "report.html"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "diffcli", "batch", str(cases), "-f", "json", "--junit", str(junit),
             "--html", str(page)],
            stdout=stdout, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        _wait_for_lines(out, 3, process, time.monotonic() + 60)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    records = jsonl(out.read_text())
    summary = records[-1]
    finished = records[:-1]
    assert summary["summary"]["interrupted"] is True and summary["ok"] is False
    assert len(finished) >= 3 and len(finished) < 4 * 2999
    assert all(r["status"] == "ok" for r in finished)
    testcases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(testcases) == len(finished)
    report = page.read_text()  # the HTML report too: every finished record, marked as interrupted
    assert report.count('<tbody class="record"') == len(finished)
    assert "Interrupted: this page holds the checks that finished" in report
    assert b"Traceback" not in stderr


def test_undefined_and_unknown_checks_say_why_everywhere(tmp_path):
    path = tmp_path / "awkward.toml"
    path.write_text(
        '[[case]]\nname = "kink"\nexpr = "Abs(x)"\nat = [{ x = 0 }]\nchecks = ["grad"]\n'
        '[[case]]\nname = "huge"\nexpr = "cos(sinh(x))"\nat = [{ x = 1e10 }]\nchecks = ["value"]\n'
    )
    report = tmp_path / "report.xml"
    result = batch(str(path), "-f", "json", "--junit", str(report))
    assert result.exit_code == 0  # neither is a mismatch
    kink, huge, summary = jsonl(result.output)
    assert (kink["status"], huge["status"]) == ("undefined", "unknown")
    assert kink["results"][0]["reason"] == "∂f/∂x: one-sided derivatives differ (-1 and 1) at the kink of Abs(x)"
    assert huge["results"][0]["reason"].startswith("the reference cannot be computed here")
    assert summary["summary"]["counts"] == {"undefined": 1, "unknown": 1}
    suite_el = ET.parse(report).getroot().find("testsuite")
    assert suite_el.get("skipped") == "1" and suite_el.get("failures") == "0"
    cases = {c.get("name"): c for c in suite_el.iter("testcase")}
    assert "could not be checked" in cases["huge [value]"].find("skipped").get("message")
    assert "kink of Abs(x)" in cases["kink [grad]"].find("system-out").text
    table = " ".join(batch(str(path), "-f", "table").output.split())  # unwrapped
    assert "undefined kink [grad]: one-sided derivatives differ (-1 and 1) at the kink of Abs(x)" in table
    assert "unknown huge [value]: the reference cannot be computed here" in table
    assert "1 undefined, 1 unknown" in table


@pytest.mark.parametrize(
    ("junit", "message"),
    [
        ("nodir/report.xml", "cannot write nodir/report.xml: no such directory"),
        ("suite.toml/report.xml", "cannot write suite.toml/report.xml: a part of the path is not a directory"),
        (".", "is a directory"),  # (click says so first)
    ],
)
def test_an_unwritable_junit_path_is_refused_before_any_case_runs(suite, junit, message, monkeypatch):
    monkeypatch.chdir(suite.parent)
    result = batch("suite.toml", "-f", "json", "--junit", junit)
    assert result.exit_code == 2 and "internal" not in result.output
    assert message in result.output and result.stdout == ""  # (nothing ran)
    with pytest.raises(DiffcliError, match=r"cannot write nodir/report\.xml: no such directory"):
        run_batch([("suite.toml", SUITE)], junit="nodir/report.xml", out=io.StringIO())


def test_a_suite_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_text(SUITE, encoding="utf-8-sig")
    assert batch(str(path), "-f", "json").exit_code == 1  # (runs: the typo case fails)


def test_a_long_note_in_the_table_is_not_broken_mid_phrase(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[case]]\nexpr = "x*y"\nsample = { box = { x = [0, 1] } }\n')
    lines = batch(str(path), "-f", "table").output.splitlines()
    assert any(line.endswith("each with every variable)") and "add it to sample.box" in line for line in lines)


def test_let_in_any_order_and_circular_lets_through_the_command_line(tmp_path):
    path = tmp_path / "s.toml"
    case = '[[case]]\nexpr = "a + x"\nlet = {{ a = "b*2", b = "{b}" }}\nat = [{{ x = 1 }}]\nchecks = ["grad"]\n'
    path.write_text(case.format(b="x") + case.format(b="a"))
    result = batch(str(path), "-f", "json")
    first, second, _ = jsonl(result.output)
    assert first["status"] == "ok" and first["results"][0]["reference"] == [3.0]  # by hand: d/dx (2x + x)
    assert second["error"] == "let: a circular definition (a -> b -> a); each name must come down to the variables"
    assert result.exit_code == 1 and "internal" not in result.output


def test_an_undefined_check_says_why_in_its_plain_line(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("Abs(x); x=0\n")
    line = batch(str(path), "-f", "plain", "--checks", "grad").output.splitlines()[0].split("\t")
    assert line[0] == "undefined" and line[-1] == "∂f/∂x: one-sided derivatives differ (-1 and 1) at the kink of Abs(x)"
