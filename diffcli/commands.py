"""What diffcli offers, as data: its commands, output formats, engines, dtypes with
their default tolerances, and its exit statuses. Each has its home here and only here.

The command line builds its subcommands from :data:`COMMANDS`, the suite reader
takes its check names from it, reports take their shapes from it and renderers
their labels. The modules that compute (``autodiff``, ``reference``, ``exact``)
keep per-command implementation tables keyed by the same names, as ``torch_compile``
and ``symbolic`` do for the functions of :mod:`diffcli.language`. Adding a command is
a row here plus those implementations.

Kept free of heavy imports (no torch, SymPy, numpy or rich): ``--help`` and argument
parsing read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    """Exit statuses of the command line."""

    OK = 0  # no mismatch (undefined and unknown allowed)
    MISMATCH = 1  # a mismatch (a batch: or a case error)
    INPUT = 2  # invalid input
    INTERNAL = 3  # a bug in diffcli
    INTERRUPTED = 130  # 128 + SIGINT
    BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports it


@dataclass(frozen=True)
class Entry:
    """One entry of a command's result at a point: how a table (``∂f/∂x``) and a CSV
    column (``[x]``) name it, and the group it is listed in (a Hessian's row)."""

    label: str
    suffix: str
    group: int = 0


@dataclass(frozen=True)
class Command:
    name: str
    title: str  # in a table's heading: "gradient of ..."
    summary: str  # the one-line help
    example: str  # a command line that works
    shape: Callable[[int], tuple[int, ...]]  # one point's result, for n variables
    entries: Callable[[Sequence[str]], list[Entry]]  # its entries, in row-major order
    inputs: tuple[str, ...] = ()  # extra inputs the command takes ("tangent")


def _partial(a: str, b: str) -> str:
    return f"∂²f/∂{a}²" if a == b else f"∂²f/∂{a}∂{b}"


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "value", "value", "The value of EXPR at each point.", 'diffcli value "sqrt(x^2 + y^2)" --at x=3,y=4',
            shape=lambda n: (), entries=lambda names: [Entry("f", "")],
        ),
        Command(
            "grad", "gradient", "The gradient (and value) of EXPR at each point.",
            'diffcli grad "x^2 sin(y)" --at x=1,y=2',
            shape=lambda n: (n,), entries=lambda names: [Entry(f"∂f/∂{v}", f"[{v}]") for v in names],
        ),
        Command(
            "hessian", "Hessian", "The Hessian matrix of EXPR at each point.",
            'diffcli hessian "x^3 y + exp(y)" --at x=1,y=0',
            shape=lambda n: (n, n),
            entries=lambda names: [Entry(_partial(a, b), f"[{a},{b}]", i) for i, a in enumerate(names) for b in names],
        ),
        Command(
            "jvp", "Jacobian-vector product", "The value and directional derivative of EXPR along --tangent.",
            'diffcli jvp "x^2 sin(y)" --at x=1,y=2 --tangent x=1,y=0',
            shape=lambda n: (), entries=lambda names: [Entry("∂f·t", "")], inputs=("tangent",),
        ),
    )
}  # fmt: skip

#: Output formats (their implementations: ``diffcli.render.FORMATS``).
FORMATS = ("table", "plain", "json", "csv")

#: How torch differentiates (see :mod:`diffcli.autodiff`).
ENGINES = ("autograd", "func", "compiled")

#: Default (rtol, atol) per dtype: a few thousand ulps of relative error, and an absolute
#: floor for results whose true value is 0 but that autodiff reaches through
#: cancellation (sin(pi) is 1.2e-16, not 0).
TOLERANCES: dict[str, tuple[float, float]] = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-6)}
DTYPES = tuple(TOLERANCES)

#: Above this many points a table shows the summary instead of one table per point.
TABLE_POINTS = 20

#: Points --sample draws when --n is not given (a suite case's default is ``suite.CASE_SAMPLES``).
SAMPLES = 100
