"""The Python API: ``import diffcli`` stays light, the lazy names, check()'s typed
signature, and the README's Library section run as a doctest (each keyword it
documents has an example there whose answer is worked out by hand: 2xy, 6x * 2y,
1/k!, the product of a grid's points ...)."""

import doctest
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import diffcli

ROOT = Path(__file__).resolve().parent.parent


def library_section() -> tuple[str, int]:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Library\n") + 1
    end = text.index("\n## ", start + 1)
    return text[start:end], text[:start].count("\n")


def test_the_readme_library_section_runs_as_written():
    section, offset = library_section()
    assert section.count(">>>") > 30
    test = doctest.DocTestParser().get_doctest(section, {}, "README.md#library", str(ROOT / "README.md"), offset)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_keyword_of_check_is_shown_in_the_readme():
    section, _ = library_section()
    examples = "\n".join(line for line in section.splitlines() if line.startswith((">>> ", "... ")))
    for name in list(inspect.signature(diffcli.check).parameters)[3:]:
        assert re.search(rf"\b{name}=", examples), f"no README example passes {name}="


def test_import_diffcli_is_light_and_the_names_load_on_use():
    code = (
        "import sys, diffcli\n"
        "heavy = {'torch', 'sympy', 'numpy', 'rich', 'click'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert callable(diffcli.check) and 'numpy' in sys.modules\n"
        "import diffcli.pipeline\n"  # the submodule is imported: diffcli.check is still the function
        "assert diffcli.check is diffcli.pipeline.check\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names():
    from diffcli.errors import DiffcliError
    from diffcli.pipeline import check, prepare, run, run_summary
    from diffcli.report import Report

    assert (diffcli.check, diffcli.prepare, diffcli.run, diffcli.run_summary) == (check, prepare, run, run_summary)
    assert diffcli.Report is Report and diffcli.DiffcliError is DiffcliError
    assert {"check", "prepare", "Report", "DiffcliError", "__version__"} <= set(dir(diffcli))
    assert set(diffcli.__all__) <= set(dir(diffcli))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        diffcli.nothing  # noqa: B018


def test_check_has_an_explicit_typed_signature_documented_per_argument():
    signature = inspect.signature(diffcli.check)
    hints = typing.get_type_hints(diffcli.check)
    assert all(p.kind is not p.VAR_KEYWORD for p in signature.parameters.values())
    args = diffcli.check.__doc__.split("Args:")[1].split("Returns:")[0]
    for name in signature.parameters:
        assert name in hints, name
        assert re.search(rf"^\s{{8}}{name}: \S", args, re.MULTILINE), f"no docstring section for {name}"
    assert hints["return"] is diffcli.Report


@pytest.mark.parametrize(
    ("one", "listed"),
    [
        ({"grid": "x=0:1:5"}, {"grid": ["x=0:1:5"]}),
        ({"sample": "x=0:1", "n": 3}, {"sample": ["x=0:1"], "n": 3}),
        ({"at": "x=1"}, {"at": ["x=1"]}),
        ({"at": {"x": 1}}, {"at": [{"x": 1}]}),
        ({"at": 1.5}, {"at": [(1.5,)]}),
        ({"variables": "x", "at": "1"}, {"variables": ["x"], "at": ["1"]}),
    ],
)
def test_a_string_where_a_list_is_expected_is_one_item(one, listed):
    a, b = diffcli.prepare("value", "x", **one), diffcli.prepare("value", "x", **listed)
    assert a.points.tolist() == b.points.tolist() and a.variables == b.variables


def test_points_csv_is_a_path_and_a_missing_file_is_an_input_error(tmp_path):
    (tmp_path / "p.csv").write_text("x\n1\n2\n")
    assert diffcli.check("value", "3 x", points_csv=tmp_path / "p.csv").autodiff.tolist() == [3.0, 6.0]
    assert diffcli.check("value", "3 x", points_csv=str(tmp_path / "p.csv")).autodiff.tolist() == [3.0, 6.0]
    with pytest.raises(diffcli.DiffcliError, match=r"no\.csv: No such file"):
        diffcli.check("value", "x", points_csv=tmp_path / "no.csv")
    (tmp_path / "big.csv").write_text("x\n" + "1\n" * 600_000)
    with pytest.raises(diffcli.DiffcliError, match="larger than 1 MiB"):
        diffcli.check("value", "x", points_csv=tmp_path / "big.csv", limits=diffcli.Limits(max_file_mb=1))
