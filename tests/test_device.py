"""The same answers on an accelerator as on the CPU (skipped without one).

``DIFFCLI_TEST_DEVICE`` picks the device (default ``cuda``); ``cpu`` runs these
tests anywhere, which checks the tests themselves.
"""

import os

import numpy as np
import pytest
import torch

from diffcli.commands import COMMANDS
from diffcli.pipeline import check, prepare, run_summary

DEVICE = os.environ.get("DIFFCLI_TEST_DEVICE", "cuda")

pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device")

EXPR = "x**2*sin(y) + exp(x*y)/(1 + y**2) + (sqrt(x) if x > 0 else -x)"
VECTOR = f"[{EXPR}, atan2(y, 2 + x), x*y]"
GRID = {"grid": ["x=-2:2:41", "y=-1:1:21"]}


@pytest.mark.parametrize("engine", ["autograd", "func"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_device_agrees_with_the_cpu(command, engine):
    text = VECTOR if COMMANDS[command].vector else EXPR
    options = {**GRID, **({"wrt": "x,y:2"} if command == "diff" else {})}
    on_cpu = check(command, text, engine=engine, **options)
    here = check(command, text, engine=engine, device=DEVICE, **options)
    assert here.device == DEVICE
    # same formulas, other math libraries: a few ulps apart
    np.testing.assert_allclose(here.autodiff, on_cpu.autodiff, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(here.reference, on_cpu.reference)  # the reference is computed on the CPU
    assert here.counts() == on_cpu.counts()


def test_float32_on_the_device():
    report = check("grad", EXPR, dtype="float32", device=DEVICE, **GRID)
    assert report.counts().get("mismatch", 0) == 0


def test_the_streamed_summary_on_the_device_equals_the_cpu_one():
    grid = {"grid": ["x=-2:2:700", "y=-1:1:300"]}  # 210,000 points: two chunks
    on_cpu = run_summary(prepare("hessian", EXPR, **grid)).summary()
    here = run_summary(prepare("hessian", EXPR, device=DEVICE, **grid)).summary()
    assert here["counts"] == on_cpu["counts"] and here["points"] == 210_000
    assert here["max_abs_err"]["value"] == pytest.approx(on_cpu["max_abs_err"]["value"], rel=1e-3, abs=1e-13)


LOOPS = "iterate((s + x*x/s)/2, s, 1, 20) + sum(y^k/factorial(k), k, 0, 12)*prod(1 + x*y/k, k, 1, 4)"


@pytest.mark.parametrize("engine", ["autograd", "func"])
@pytest.mark.parametrize("command", ["value", "grad", "hessian", "jvp", "diff", "taylor"])
def test_loops_on_the_device_agree_with_the_cpu(command, engine):
    grid = {"grid": ["x=0.5:2:21", "y=-1:1:11"], **({"wrt": "x,y:2"} if command == "diff" else {})}
    on_cpu = check(command, LOOPS, engine=engine, **grid)
    here = check(command, LOOPS, engine=engine, device=DEVICE, **grid)
    np.testing.assert_allclose(here.autodiff, on_cpu.autodiff, rtol=1e-12, atol=1e-14)
    assert here.counts() == on_cpu.counts() == {"ok": 231}
