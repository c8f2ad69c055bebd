"""``batch --annotations github``: GitHub Actions workflow commands for failing checks.

The format is GitHub's documented one
(docs.github.com/en/actions/reference/workflow-commands-for-github-actions,
"Setting an error message"): ``::error file={name},line={line},title={title}::{message}``,
with the message's ``%``, CR and LF escaped as ``%25``, ``%0D`` and ``%0A``, and the
properties' ``:`` and ``,`` also as ``%3A`` and ``%2C`` (what actions/toolkit's
``command.ts`` does). The lines below are counted by hand in the texts.
"""

import json
import re

import pytest
from click.testing import CliRunner

from diffcli.cli import cli

# Line numbers (1-based): the [[case]] headers are on lines 5, 10, 15 and 19.
SUITE = """\
[defaults]
checks = ["grad"]

# a passing case
[[case]]
name = "square"
expr = "x^2"
at = [{ x = 1 }]

[[case]]
name = "kink, at: 0"
expr = "x sqrt(x^2)"
at = [{ x = 0 }, { x = 1 }]

[[case]]
name = "typo"
expr = "sinn(x)"
at = [{ x = 1 }]
[[case]]
name = "golden"
expr = "x^3"
at = [{ x = 2 }]
expect = { grad = [[11.0]] }
"""

# Failing lines: 3 (a mismatch at 0), 5 (does not parse); 1 and 6 pass.
TEXT = """\
x^2; x=1
# a comment
x*sqrt(x^2); x=0

sin(x; x=1
exp(x); x=0
"""

COMMAND = re.compile(r"^::error (?P<properties>[^:]*)::(?P<message>[^\r\n]*)$")


def unescape(text: str) -> str:
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def parse(stderr: str) -> list[dict]:
    """Each workflow command as its properties and message, checked against the format."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("::"):
            continue
        match = COMMAND.match(line)
        assert match, line
        properties = dict(item.split("=", 1) for item in match["properties"].split(","))
        assert set(properties) <= {"file", "line", "endLine", "col", "endColumn", "title"}
        for value in properties.values():  # escaped: no raw separator can cut a property short
            assert not set(value) & set(":,\r\n")
        found.append({**{k: unescape(v) for k, v in properties.items()}, "message": unescape(match["message"])})
    return found


def run(*args, env=None):
    result = CliRunner().invoke(cli, ["batch", *args], env=env or {})
    return result


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.toml").write_text(SUITE)
    (tmp_path / "cases.txt").write_text(TEXT)
    return tmp_path


def test_toml_cases_are_marked_at_their_case_header(files):
    result = run("suite.toml", "--annotations", "github", "--format", "json")
    assert result.exit_code == 1
    notes = parse(result.stderr)
    assert [(n["file"], n["line"], n["title"]) for n in notes] == [
        ("suite.toml", "10", "diffcli: kink, at: 0 [grad]: mismatch"),
        ("suite.toml", "15", "diffcli: typo [grad]: error"),
        ("suite.toml", "19", "diffcli: golden [grad]: mismatch"),
    ]
    kink, typo, golden = (n["message"] for n in notes)
    # the expression, the formula, and the worst point: torch's NaN against the true slope 0 (2|x| at 0)
    assert "expression: x sqrt(x^2)" in kink
    assert "reference: ∂f/∂x = " in kink
    worst = kink.splitlines()[-1].split()
    assert worst == ["x=0.0", "∂f/∂x", "nan", "0.0", "inf", "inf", "mismatch"]
    assert "unknown function 'sinn'" in typo
    assert "expect.grad at x=2.0: expected [11.0], found [12.0]" in golden
    # stdout is still the format's alone
    statuses = [json.loads(line)["status"] for line in result.stdout.splitlines()[:-1]]  # (then the summary)
    assert statuses == ["ok", "mismatch", "error", "mismatch"]


def test_text_lists_are_marked_at_their_line(files):
    result = run("cases.txt", "--checks", "grad", "--annotations", "github", "--format", "csv")
    assert result.exit_code == 1
    assert [(n["file"], n["line"]) for n in parse(result.stderr)] == [("cases.txt", "3"), ("cases.txt", "5")]


def test_on_by_default_only_under_github_actions(files):
    assert parse(run("cases.txt", "--checks", "grad", env={"GITHUB_ACTIONS": "true"}).stderr)
    assert not parse(run("cases.txt", "--checks", "grad", env={"GITHUB_ACTIONS": ""}).stderr)
    assert not parse(run("cases.txt", "--checks", "grad").stderr)
    forced_off = run("cases.txt", "--checks", "grad", "--annotations", "none", env={"GITHUB_ACTIONS": "true"})
    assert forced_off.exit_code == 1 and not parse(forced_off.stderr)


def test_paths_inside_the_workspace_are_made_relative_to_it(files):
    path = str(files / "cases.txt")
    notes = parse(run(path, "--checks", "grad", env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(files)}).stderr)
    assert {n["file"] for n in notes} == {"cases.txt"}
    outside = parse(
        run(path, "--checks", "grad", env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/elsewhere"}).stderr
    )
    assert {n["file"] for n in outside} == {path}


def test_standard_input_has_no_file_to_mark():
    result = CliRunner().invoke(cli, ["batch", "-", "--checks", "grad", "--annotations", "github"], input=TEXT)
    notes = parse(result.stderr)
    assert len(notes) == 2 and all("file" not in n and "line" not in n for n in notes)


def test_escaping_keeps_percent_signs_and_newlines(files):
    (files / "odd.toml").write_text('[[case]]\nname = "100% wrong,\\nreally"\nexpr = "x sqrt(x^2)"\nat = [{ x = 0 }]\n')
    (note,) = parse(run("odd.toml", "--checks", "grad", "--annotations", "github").stderr)
    assert note["title"] == "diffcli: 100% wrong,\nreally [grad]: mismatch"
    assert note["line"] == "1"


def test_bad_choice_is_an_input_error(files):
    result = run("cases.txt", "--annotations", "gitlab")
    assert result.exit_code == 2 and "gitlab" in result.output


def test_a_long_formula_is_clipped_in_the_message():
    from diffcli import check
    from diffcli.batch import Record
    from diffcli.render import FORMULA_CHARS, failure_text
    from diffcli.suite import Case

    report = check("grad", "x sqrt(x^2)", "x=0")
    report.symbolic = ["x + " * 500 + "x"]
    text = failure_text(Record(Case("long", "x sqrt(x^2)", "f.toml", 3), "grad", report))
    assert text.splitlines()[0] == "long [grad]: mismatch (f.toml:3)"
    (formula,) = [line for line in text.splitlines() if line.startswith("reference: ")]
    assert formula.endswith("…") and len(formula) == len("reference: ∂f/∂x = ") + FORMULA_CHARS
