"""The ``compiled`` engine (torch.compile of the traced autograd engine).

Each compilation takes seconds, so the default run compiles one expression per
command; the exhaustive test (``-m exhaustive``, minutes) compiles every
function of the language at once.
"""

import math
import os
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from diffcli import autodiff
from diffcli.cli import cli
from diffcli.errors import DiffcliError
from diffcli.pipeline import check, prepare

# torch.compile builds C++ kernels on the CPU: where no compiler is found, only the
# clean-error test below runs (a test without a compiler would test nothing).
needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++")),
    reason="torch.compile needs a C++ compiler",
)

# Reverse and forward passes, a Piecewise (masked branches), sqrt near its
# singular point, atan2 and a let-free constant exponent.
EXPR = "x**2*sin(y) + exp(x*y)/(1+y**2) + Piecewise((sqrt(x), x > 0), (atan2(y, 1 - x), True))"
GRID = ["x=-1:1:9", "y=-2:2:7"]


@pytest.fixture
def small_chunks(monkeypatch):
    """Several chunks, the last one short, so the padding path runs."""
    monkeypatch.setattr(autodiff, "CHUNK", 16)


@needs_compiler
@pytest.mark.parametrize("command", ["value", "grad", "hessian", "jvp"])
def test_compiled_engine_agrees_with_autograd(small_chunks, command):
    tangent = "x=0.5,y=-2" if command == "jvp" else None
    compiled = autodiff.compute(prepare(command, EXPR, grid=GRID, tangent=tangent, engine="compiled"))
    eager = autodiff.compute(prepare(command, EXPR, grid=GRID, tangent=tangent))
    for a, b in zip(compiled[:2], eager[:2], strict=True):
        assert a.shape == b.shape and a.shape[0] == 63
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)


@needs_compiler
@pytest.mark.parametrize(("command", "options"), [("jacobian", {"mode": "reverse"}), ("jacobian", {"mode": "forward"}),
                                                  ("vjp", {"cotangent": "2,-1,0.5"})])  # fmt: skip
def test_compiled_engine_agrees_with_autograd_on_a_vector(small_chunks, command, options):
    text = "[x y, sin(x) - y^2, atan2(y, 2 + x)]"
    compiled = autodiff.compute(prepare(command, text, grid=GRID, engine="compiled", **options))
    eager = autodiff.compute(prepare(command, text, grid=GRID, **options))
    for a, b in zip(compiled[:2], eager[:2], strict=True):
        assert a.shape == b.shape and a.shape[0] == 63
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)


@needs_compiler
def test_compiled_engine_values_by_hand():
    # d/dx and d/dy of x**2*sin(y) + exp(x*y)/(1+y**2) at (1, 0): (0, 1 + 1) and the value 1
    report = check("grad", "x**2*sin(y) + exp(x*y)/(1+y**2)", ["x=1,y=0"], engine="compiled")
    result = report.results[0]
    assert result.status == "ok" and result.value == 1.0
    np.testing.assert_allclose(result.autodiff, [0.0, 2.0], rtol=0, atol=1e-15)


@needs_compiler
def test_compiled_engine_with_let_values():
    # r = sqrt(x^2 + y^2) at (1, 2) is sqrt(5); d/dx, d/dy of r^2 + x = (2x + 1, 2y) = (3, 4)
    result = check("grad", "r**2 + x", ["x=1,y=2"], let={"r": "sqrt(x^2+y^2)"}, engine="compiled").results[0]
    assert result.status == "ok" and result.aux == {"r": pytest.approx(math.sqrt(5), rel=1e-15)}
    np.testing.assert_allclose(result.autodiff, [3.0, 4.0], rtol=1e-15)


@needs_compiler
def test_compiled_engine_on_the_command_line():
    result = CliRunner().invoke(
        cli, ["grad", "x**2*sin(y) + exp(x*y)/(1+y**2)", "--at", "x=1,y=0", "--engine", "compiled", "--format", "plain"]
    )
    assert result.exit_code == 0, result.output
    point, value, autodiff, reference, _, _, status, _ = result.output.strip().split("\t")
    assert (point, value, autodiff, reference, status) == ("x=1.0,y=0.0", "1.0", "0.0,2.0", "0.0,2.0", "ok")


def test_chunk_sizes():
    from diffcli.pipeline import prepare

    assert autodiff.points_per_chunk(prepare("grad", "x y", ["x=1,y=2"]), 8) == autodiff.CHUNK
    # a Hessian of 50 variables: 50 + 1 + 2500 + 1 numbers a point, 64 MiB of them at most
    names = [f"x{i}" for i in range(50)]
    many = prepare("hessian", " + ".join(names) + " + a", [",".join(f"{v}=1" for v in names)], let={"a": "x0"})
    assert autodiff.points_per_chunk(many, 8) == 2048
    engine = autodiff._Inductor("grad", None, None, limit=autodiff.CHUNK)
    assert engine._chunk_for(1) == 1  # a one-liner is not padded to a big chunk
    assert engine._chunk_for(1000) == 1024 and engine._chunk_for(10**6) == autodiff.CHUNK
    engine.kernels = {autodiff.CHUNK: None}
    assert engine._chunk_for(100) == autodiff.CHUNK  # a summary's short last chunk reuses the big kernel


def test_every_engine_is_offered_on_the_command_line():
    from diffcli.pipeline import ENGINES

    for command in ("value", "grad", "hessian", "jvp", "batch"):
        (option,) = [p for p in cli.commands[command].params if p.name == "engine"]
        assert tuple(option.type.choices) == ENGINES


def test_a_failed_compilation_is_a_clean_error(monkeypatch):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    autodiff._compiled.cache_clear()
    reason = r"torch.compile failed \(InvalidCxxCompiler: No working C\+\+ compiler found\)"
    with pytest.raises(DiffcliError, match=reason):
        check("value", "x*cos(x) + 7", ["x=1"], engine="compiled")
    result = CliRunner().invoke(cli, ["value", "x*cos(x) + 7", "--at", "x=1", "--engine", "compiled"])
    assert result.exit_code == 2 and "use --engine autograd" in result.output and "Traceback" not in result.output
    autodiff._compiled.cache_clear()


@pytest.mark.exhaustive
@needs_compiler
@pytest.mark.parametrize("command", ["value", "grad", "jvp", "hessian"])
def test_every_function_compiles_to_the_same_answers(command):
    """Every case of test_functions in one sum, each with its own variables."""
    from tests.test_functions import CASES

    terms, at = [], []
    for i, (expr, point, _) in enumerate(CASES):
        terms.append("(" + re.sub(r"\b([xy])\b", rf"\g<1>{i}", expr) + ")")
        at += [f"{k}{i}={v!r}" for k, v in point.items()]
    expression, point = " + ".join(terms), [",".join(at)]
    compiled = check(command, expression, point, engine="compiled").results[0]
    eager = check(command, expression, point).results[0]
    assert compiled.status == eager.status == "ok"
    np.testing.assert_allclose(compiled.autodiff, eager.autodiff, rtol=1e-14, atol=1e-300)
    assert math.isclose(compiled.value, eager.value, rel_tol=1e-14)
