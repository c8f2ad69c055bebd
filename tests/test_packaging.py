"""Packaging: the sdist and wheel build and pass ``twine check``, the wheel installs
and runs in a fresh virtual environment (its console script, its pytest plugin, its
type hints under ``mypy --strict``), the sdist carries the tests and samples, and the
pre-commit hook's entry runs as pre-commit runs it.

Everything works offline: the build uses this environment's setuptools
(``--no-isolation``), and the fresh environment gets the wheel alone (``--no-deps``)
and finds torch, SymPy and the rest through a ``.pth`` line to this environment's
site-packages (a line that adds a directory, not its own ``.pth`` files: this
checkout's editable install stays out of it).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What a checkout holds that is not the project's (environments, caches, build output).
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache", ".hypothesis",
              ".benchmarks")  # fmt: skip


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, check=True, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The sdist and the wheel, built from a copy of this checkout (the build writes
    build/ and *.egg-info next to the sources), the wheel from the sdist."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", work / "dist", source)
    (sdist,) = (work / "dist").glob("diffcli-*.tar.gz")
    (wheel,) = (work / "dist").glob("diffcli-*-py3-none-any.whl")
    return {"work": work, "sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def installed(built) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin directory."""
    env = built["work"] / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", built["wheel"])
    return env / "bin"


def test_twine_check_passes_on_both(built):
    result = run(sys.executable, "-m", "twine", "check", "--strict", built["sdist"], built["wheel"])
    assert result.stdout.count("PASSED") == 2


def test_the_sdist_carries_the_tests_samples_and_docs(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {Path(*Path(name).parts[1:]).as_posix() for name in sdist.getnames()}
    wanted = {"pyproject.toml", "README.md", "SECURITY.md", ".pre-commit-hooks.yaml", "diffcli/py.typed"}
    for folder in ("diffcli", "tests", "samples"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                wanted.add(path.relative_to(ROOT).as_posix())
    assert wanted - names == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_sdist_s_own_tests_run(built, installed, tmp_path):
    """A few of the sdist's tests, run from the unpacked sdist with the installed wheel."""
    with tarfile.open(built["sdist"]) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.glob("diffcli-*")
    tests = ["tests/test_parser.py", "tests/test_samples.py::test_seed_sample_lines"]
    result = subprocess.run([str(installed / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                            capture_output=True, text=True, cwd=unpacked)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]


def test_the_wheel_has_the_package_its_type_marker_and_entry_points(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
    assert {"diffcli/__init__.py", "diffcli/py.typed", "diffcli/pytest_plugin.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "samples/"))]
    assert re.search(r"\[console_scripts\]\ndiffcli = diffcli\.client:main", text)
    assert re.search(r"\[pytest11\]\ndiffcli = diffcli\.pytest_plugin", text)


def test_the_installed_wheel_runs(installed, tmp_path):
    where = run(installed / "python", "-c", "import diffcli; print(diffcli.__file__)", cwd=tmp_path).stdout
    assert where.startswith(str(installed.parent)), where  # the wheel's copy, not this checkout
    result = run(installed / "diffcli", "grad", "x^2 sin(y)", "--at", "x=1,y=2", "--format", "json", cwd=tmp_path)
    doc = json.loads(result.stdout)
    # ∂/∂x = 2x sin(y) = 2 sin 2, ∂/∂y = x^2 cos(y) = cos 2
    assert doc["ok"] and doc["results"][0]["autodiff"] == [1.8185948536513634, -0.4161468365471424]


def test_the_installed_pytest_plugin_collects_suites(installed, tmp_path):
    (tmp_path / "square.diffcli.toml").write_text('[[case]]\nname = "square"\nexpr = "x^2"\nat = [{ x = 3 }]\n')
    result = run(installed / "python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert "square.diffcli.toml::square::grad" in result.stdout.splitlines()


USER_CODE = """\
import diffcli

report: diffcli.Report = diffcli.check("grad", "x^2 sin(y)", "x=1,y=2", grid=["x=0:1:3"], variables="x,y")
ok: bool = report.ok
request: diffcli.Request = diffcli.prepare("value", "x", [{"x": 1}], points_csv="points.csv", let={"r": "x"})
summary = diffcli.run_summary(request).counts()
try:
    diffcli.check("jvp", "x y", at=[1.5, 2.5], tangent=(1, 0), rtol=1e-6, limits=diffcli.Limits(timeout=2))
except diffcli.DiffcliError as error:
    print(error.render())
"""

MYPY_CONFIG = """\
[mypy]
strict = True
# the API's own types only: torch's and SymPy's sources are large and not part of it
[mypy-torch.*,sympy.*,mpmath.*,matplotlib.*,rich.*,click.*]
follow_imports = skip
"""


def test_the_public_api_is_typed_for_mypy_strict(installed, tmp_path):
    (tmp_path / "user.py").write_text(USER_CODE)
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    (tmp_path / "wrong.py").write_text('import diffcli\n\nreport: int = diffcli.check("grad", "x", grid=3)\n')
    mypy = [sys.executable, "-m", "mypy", "--python-executable", installed / "python", "--config-file", "mypy.ini",
            "--cache-dir", tmp_path / "cache"]  # fmt: skip
    result = subprocess.run([*map(str, mypy), "user.py"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    wrong = subprocess.run([*map(str, mypy), "wrong.py"], capture_output=True, text=True, cwd=tmp_path)
    assert wrong.returncode == 1
    assert 'Incompatible types in assignment (expression has type "Report"' in wrong.stdout
    assert 'Argument "grid" to "check" has incompatible type "int"' in wrong.stdout


def test_the_pre_commit_hook_runs_as_pre_commit_runs_it(tmp_path):
    """pre-commit runs ``entry`` + ``args`` + the staged files that match ``files``
    (``re.search`` on each path), in the repository's top directory."""
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "diffcli" and hook["language"] == "python" and hook.get("require_serial")
    (tmp_path / "good.diffcli.toml").write_text('[[case]]\nexpr = "x^2"\nat = [{ x = 3 }]\n')
    (tmp_path / "bad.diffcli.txt").write_text("x sqrt(x^2); x=0\n")  # torch: NaN slope at 0
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "notes.txt").write_text("sin(\n")

    def pre_commit(*staged: str) -> subprocess.CompletedProcess:
        files = [f for f in staged if re.search(hook["files"], f)]
        command, *rest = shlex.split(hook["entry"])
        executable = Path(sys.executable).parent / command  # the console script this environment installed
        argv = [str(executable), *rest, *hook.get("args", []), *files]
        env = {**os.environ, "GITHUB_ACTIONS": ""}
        return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)

    everything = pre_commit("good.diffcli.toml", "bad.diffcli.txt", "pyproject.toml", "notes.txt")
    assert everything.returncode == 1, everything.stderr
    lines = everything.stdout.splitlines()
    # x^2's four checks pass; x|x|'s value is ok, its second derivative at 0 does not exist
    # (undefined), and torch's NaN slope there fails grad and jvp
    assert lines[-1] == "# 8 checks of 2 cases: 5 ok, 1 undefined, 2 mismatch"
    assert "mismatch\tx sqrt(x^2)\tgrad" in everything.stdout
    assert pre_commit("good.diffcli.toml", "notes.txt").returncode == 0
