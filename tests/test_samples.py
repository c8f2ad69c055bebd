"""samples/ and the README stay true to the code: their commands run as shown."""

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffcli.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def invoke(command_line):
    args = shlex.split(command_line)
    assert args[0] == "diffcli"
    return CliRunner().invoke(cli, args[1:])


def script_lines(name):
    for line in (ROOT / "samples" / name).read_text().splitlines():
        if line.startswith("diffcli "):
            command, _, expected = line.partition("# exit ")
            yield pytest.param(command.strip(), int(expected), id=command.strip())


@pytest.mark.parametrize(("command", "status"), list(script_lines("seed.sh")))
def test_seed_sample_lines(command, status):
    result = invoke(command)
    assert result.exit_code == status, result.output


@pytest.mark.parametrize(("command", "status"), list(script_lines("pictures.sh")))
def test_picture_sample_lines(command, status, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason='the plot extra: pip install "diffcli[plot]"')
    monkeypatch.chdir(tmp_path)  # the pictures land here; the suites are read from samples/
    result = invoke(command.replace("samples/", f"{ROOT}/samples/"))
    assert result.exit_code == status, result.output
    written = shlex.split(command)[shlex.split(command).index("--out" if "--out" in command else "--html") + 1]
    assert (tmp_path / written).stat().st_size > 1000


def test_the_readme_pictures_exist():
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\((samples/[^)]+)\)", readme)
    assert len(pictures) >= 2
    for picture in pictures:
        assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def readme_sessions():
    """($ command, expected output) pairs from the README's console blocks."""
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        command, output = None, []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command:
                    yield command, output
                command, output = line[2:], []
            else:
                output.append(line)
        yield command, output


def test_readme_console_examples_are_real_output():
    sessions = list(readme_sessions())
    assert len(sessions) >= 4
    previous = None
    for command, expected in sessions:
        if command == "echo $?":
            assert [str(previous.exit_code)] == expected
            continue
        previous = invoke(command)
        actual = [_timeless(line) for line in previous.output.splitlines()]
        assert actual == [_timeless(line) for line in expected], command


def _timeless(line: str) -> str:
    """A batch table's summary ends with its duration, which no two runs share."""
    return re.sub(r" in \d+\.\d s$", " in ... s", line.rstrip())


@pytest.mark.parametrize("suite", ["seed.toml", "feynman.toml", "vectors.toml", "orders.toml", "loops.toml"])
def test_sample_suites_pass(suite):
    result = CliRunner().invoke(cli, ["batch", str(ROOT / "samples" / suite), "-f", "plain"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # every check ok, but for the cases with nothing to check at some point: "square if even"
    # has no derivative where it jumps, and the step that divides by zero has no value there
    undefined = ("square if even", "a step that divides by zero at step 2")
    assert all(line.startswith("ok\t") or line.split("\t")[:2] in [["undefined", u] for u in undefined]
               for line in lines[:-1])  # fmt: skip
