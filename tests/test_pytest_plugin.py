"""The pytest plugin (diffcli.pytest_plugin): suites collected and run as tests.

Each test runs pytest on a temporary project (pytester). The values in the
failure reports are worked out by hand: x sqrt(x^2) = x|x| has derivative 2|x|,
0 at x = 0, where torch's sqrt'(0) makes NaN; x^3 has derivative 12 at 2.
"""

import sys
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _loaded():
    """pytester's in-process runs drop the modules they import when they end, and numpy
    cannot be imported twice in a process: have this process import them all first."""
    import diffcli.batch
    import diffcli.render

    diffcli.batch.run_case  # noqa: B018
    diffcli.render.failure_text  # noqa: B018
    from diffcli import check

    check("grad", "sin(x)", "x=1")


GOOD = """\
[[case]]
name = "square"
expr = "x^2"
at = [{ x = 3 }]
checks = ["value", "grad"]
expect = { grad = [[6.0]] }

[[case]]
name = "trig"
expr = "sin(x) cos(y)"
at = [{ x = 1, y = 2 }]
checks = ["grad"]
"""

# [[case]] headers on lines 1, 6, 11
BAD = """\
[[case]]
name = "kink"
expr = "x sqrt(x^2)"
at = [{ x = 0 }, { x = 1 }]
checks = ["value", "grad"]
[[case]]
name = "golden"
expr = "x^3"
at = [{ x = 2 }]
expect = { grad = [[11.0]] }
[[case]]
name = "typo"
expr = "sinn(x)"
at = [{ x = 1 }]
checks = ["value"]
"""


@pytest.fixture
def project(pytester):
    pytester.makefile(".diffcli.toml", good=GOOD, bad=BAD)
    return pytester


def ids(result) -> list[str]:
    return [line for line in result.outlines if "::" in line and not line.startswith(("FAILED", "ERROR"))]


def test_collects_one_item_per_case_and_check(project):
    result = project.runpytest("--collect-only", "-q")
    assert ids(result) == [
        "bad.diffcli.toml::kink::value",
        "bad.diffcli.toml::kink::grad",
        "bad.diffcli.toml::golden::value",
        "bad.diffcli.toml::golden::grad",
        "bad.diffcli.toml::golden::hessian",
        "bad.diffcli.toml::golden::jvp",
        "bad.diffcli.toml::typo::value",
        "good.diffcli.toml::square::value",
        "good.diffcli.toml::square::grad",
        "good.diffcli.toml::trig::grad",
    ]


def test_failures_show_the_worst_points_the_formula_and_golden_values(project):
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=7, failed=3)
    out = result.stdout.str()
    # the mismatch: at its case's line, the expression, the formula and the worst point
    result.stdout.fnmatch_lines(
        [
            "*kink [[]grad[]]: mismatch (bad.diffcli.toml:1)",
            "expression: x sqrt(x^2)",
            "reference: ∂f/∂x = *",
            "1 of 2 points mismatch; the worst:",
            "  point  entry  autodiff  reference  abs err  rel err  status",
            "  x=0.0  ∂f/∂x  nan       0.0        inf      inf      mismatch",
        ]
    )
    # the golden value missed: expected and found (12 = 3 * 2^2)
    assert "golden [grad]: mismatch (bad.diffcli.toml:6)" in out
    assert "expect.grad at x=2.0: expected [11.0], found [12.0]" in out
    # the input error: the one-line error, at the case's line
    result.stdout.fnmatch_lines(["*typo [[]value[]]: error (bad.diffcli.toml:11)", "unknown function 'sinn'*"])
    result.stdout.fnmatch_lines(
        [
            "FAILED bad.diffcli.toml::kink::grad - *",
            "FAILED bad.diffcli.toml::golden::grad - *",
            "FAILED bad.diffcli.toml::typo::value - *",
        ]
    )


def test_a_case_the_suite_refuses_fails_each_of_its_items_at_its_line(pytester):
    pytester.makefile(".diffcli.toml", odd='[[case]]\nexpr = "x"\nat = [{ x = 1 }]\n\n[[case]]\nname = "odd"\n'
                      'expr = "x"\ncolour = "red"\nchecks = ["value", "grad"]\n')  # fmt: skip
    result = pytester.runpytest()
    result.assert_outcomes(passed=4, failed=4)  # a refused case runs (and fails) the default checks
    result.stdout.fnmatch_lines(["*odd [[]value[]]: error (odd.diffcli.toml:5)", "odd.diffcli.toml: case 2 ('odd'): *"])
    result.stdout.fnmatch_lines(["*odd [[]grad[]]: error (odd.diffcli.toml:5)"])


def test_an_item_s_location_is_its_case_s_line(project):
    """What pytest reports and CI annotation plugins use: (path, 0-based line, name)."""
    failed = project.inline_run("-k", "golden or typo").listoutcomes()[2]
    assert sorted(report.location for report in failed) == [
        ("bad.diffcli.toml", 5, "golden [grad]"),  # [[case]] on line 6
        ("bad.diffcli.toml", 10, "typo [value]"),  # line 11
    ]


def test_k_selects_a_case_and_the_passing_suite_passes(project):
    result = project.runpytest("-k", "trig")
    result.assert_outcomes(passed=1, deselected=9)
    assert project.runpytest("good.diffcli.toml").ret == pytest.ExitCode.OK


def test_x_stops_at_the_first_failure_and_lf_reruns_the_failures(project):
    project.runpytest("-x").assert_outcomes(passed=1, failed=1)  # kink::value, then kink::grad
    project.runpytest().assert_outcomes(passed=7, failed=3)
    rerun = project.runpytest("--lf")
    rerun.assert_outcomes(failed=3, deselected=7)


def test_xdist_runs_the_items_in_worker_processes(project):
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, failed=3)
    result.stdout.fnmatch_lines(["*kink [[]grad[]]: mismatch (bad.diffcli.toml:1)", "*x=0.0  ∂f/∂x  nan*"])


def test_junitxml_has_a_testcase_per_item(project):
    project.runpytest("--junitxml=report.xml")
    cases = {
        (c.get("classname"), c.get("name")): [x.tag for x in c]
        for c in ET.parse(project.path / "report.xml").iter("testcase")
    }
    assert len(cases) == 10
    assert cases[("bad.diffcli.toml.kink", "grad")] == ["failure"]
    assert cases[("good.diffcli.toml.square", "grad")] == []


def test_disabled_with_p_no_diffcli(project):
    result = project.runpytest("-p", "no:diffcli")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_text_lists_by_default_and_more_globs_through_the_ini_option(pytester):
    pytester.makefile(".diffcli.txt", lines="x^2; x=1\n")
    pytester.makefile(".txt", checks="sqrt(x) x; x=0\n", notes="not a suite\n")
    pytester.mkdir("derivatives")
    (pytester.path / "derivatives" / "deep.toml").write_text('[[case]]\nname = "deep"\nexpr = "x"\nat = [{ x = 1 }]\n')
    every = [f"{case}::{check}" for case in ("x^2",) for check in ("value", "grad", "hessian", "jvp")]
    assert ids(pytester.runpytest("--collect-only", "-q")) == [f"lines.diffcli.txt::{i}" for i in every]
    pytester.makeini("[pytest]\ndiffcli_suites = checks.txt derivatives/*.toml\n")
    more = ids(pytester.runpytest("--collect-only", "-q"))
    assert [i for i in more if not i.startswith("lines.")] == [
        *(f"checks.txt::sqrt(x) x::{check}" for check in ("value", "grad", "hessian", "jvp")),
        *(f"derivatives/deep.toml::deep::{check}" for check in ("value", "grad", "hessian", "jvp")),
    ]


def test_a_file_that_is_not_a_suite_is_one_collection_error(pytester):
    pytester.makefile(".diffcli.toml", broken="not = [toml\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["broken.diffcli.toml: not valid TOML: *"])
    assert "Traceback" not in result.stdout.str()


def test_limits_from_options_and_ini(project):
    slow = project.runpytest("-k", "trig", "--diffcli-timeout", "1e-6")
    slow.assert_outcomes(failed=1)
    slow.stdout.fnmatch_lines(
        ["*the symbolic work took longer than 1e-06 s and was stopped (raise the limit with --diffcli-timeout)"]
    )
    project.makeini("[pytest]\ndiffcli_timeout = 1e-6\n")
    project.runpytest("-k", "trig").assert_outcomes(failed=1)
    project.runpytest("-k", "trig", "--diffcli-timeout", "30").assert_outcomes(passed=1)
    bad = project.runpytest("--diffcli-max-memory", "0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--diffcli-max-memory must be a positive number*"])


def test_a_run_without_suites_imports_neither_torch_nor_sympy(pytester):
    pytester.makepyfile(
        test_light="""
        import sys

        def test_nothing_heavy_was_imported():
            heavy = {"torch", "sympy"} & set(sys.modules)
            assert not heavy, heavy
            assert "diffcli.pytest_plugin" in sys.modules  # the plugin itself was loaded
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_collecting_a_suite_imports_neither_torch_nor_sympy(pytester):
    pytester.makefile(".diffcli.toml", good=GOOD)
    pytester.makeconftest(
        """
        import sys

        def pytest_collection_finish(session):
            print("heavy:", sorted({"torch", "sympy"} & set(sys.modules)))
        """
    )
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-s")
    result.stdout.fnmatch_lines(["heavy: []"])
    assert sys.executable  # (the subprocess is this interpreter: the installed entry point)
