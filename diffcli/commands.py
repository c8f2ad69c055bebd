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
class Extra:
    """What a command's answer depends on besides EXPR and the point, as its shape, its
    labels and its reference need it: the tangent (jvp, taylor), the variables to
    differentiate by, in order (diff), and the order (taylor). Empty for the other commands."""

    tangent: tuple[float, ...] | None = None
    wrt: tuple[str, ...] = ()
    order: int = 0


NONE = Extra()


@dataclass(frozen=True)
class Command:
    """A command. ``m`` is the number of outputs of a vector EXPR, 0 for a scalar one."""

    name: str
    title: str  # in a table's heading: "gradient of ..."
    summary: str  # the one-line help
    example: str  # a command line that works
    #: One point's result, for n variables, m outputs and the extra inputs.
    shape: Callable[[int, int, Extra], tuple[int, ...]]
    entries: Callable[[Sequence[str], int, Extra], list[Entry]]  # its entries, in row-major order
    #: Extra inputs the command takes ("tangent", "cotangent", "mode", "wrt", "order").
    inputs: tuple[str, ...] = ()
    vector: bool = True  # whether EXPR may be a vector
    #: The scalar command the reference computes for each component (or, with
    #: ``combined``, for the cotangent's combination of the components, sum c_i f_i).
    reference: str = ""
    combined: bool = False
    #: The order of the derivatives it takes (what the exact reference expands to, and
    #: how much autodiff's tape holds per point).
    order: Callable[[Extra], int] = lambda e: 1

    def __post_init__(self) -> None:
        if not self.reference:
            object.__setattr__(self, "reference", self.name)


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def component(m: int, i: int) -> str:
    """``f`` for a scalar EXPR, ``f₂`` for the second component of a vector one."""
    return "f" if not m else f"f{str(i + 1).translate(_SUBSCRIPTS)}"


def _components(m: int) -> list[tuple[str, str]]:
    """(name, CSV index prefix) per component: ('f', '') for a scalar, ('f₁', '1,') ..."""
    return [("f", "")] if not m else [(component(m, i), f"{i + 1},") for i in range(m)]


def _each(m: int, suffix: str) -> str:
    """A component's CSV suffix where the scalar has none: '' or '[2]'."""
    return f"[{suffix[:-1]}]" if suffix else ""


def _value_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [Entry(f, _each(m, k)) for f, k in _components(m)]


def _grad_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [Entry(f"∂f/∂{v}", f"[{v}]") for v in names]


def _hessian_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [
        Entry(partial_label(f, (a, b)), f"[{k}{a},{b}]", c * len(names) + i)
        for c, (f, k) in enumerate(_components(m)) for i, a in enumerate(names) for b in names
    ]  # fmt: skip


def _jvp_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [Entry(f"∂{f}·t", _each(m, k)) for f, k in _components(m)]


def _jacobian_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    rows = _components(m) if m else [("f", "1,")]
    return [Entry(f"∂{f}/∂{v}", f"[{k}{v}]", c) for c, (f, k) in enumerate(rows) for v in names]


def _vjp_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [Entry(f"c·∂f/∂{v}", f"[{v}]") for v in names]


def _superscript(k: int) -> str:
    return "" if k == 1 else str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def partial_label(f: str, wrt: Sequence[str]) -> str:
    """``∂³f/∂x²∂y`` for wrt x, x, y (runs of one variable grouped, in the order given)."""
    runs: list[list] = []
    for v in wrt:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    return f"∂{_superscript(len(wrt))}{f}/" + "".join(f"∂{v}{_superscript(k)}" for v, k in runs)


def _diff_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [Entry(partial_label(f, extra.wrt), _each(m, k)) for f, k in _components(m)]


def _taylor_entries(names: Sequence[str], m: int, extra: Extra) -> list[Entry]:
    return [
        Entry(f"c{str(j).translate(_SUBSCRIPTS)}" + (f" of {f}" if m else ""), f"[{k}{j}]", c)
        for c, (f, k) in enumerate(_components(m)) for j in range(extra.order + 1)
    ]  # fmt: skip


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "value", "value", "The value of EXPR at each point.", 'diffcli value "sqrt(x^2 + y^2)" --at x=3,y=4',
            shape=lambda n, m, e: (m,) if m else (), entries=_value_entries, order=lambda e: 0,
        ),
        Command(
            "grad", "gradient", "The gradient (and value) of EXPR at each point.",
            'diffcli grad "x^2 sin(y)" --at x=1,y=2',
            shape=lambda n, m, e: (n,), entries=_grad_entries, vector=False,
        ),
        Command(
            "hessian", "Hessian", "The Hessian matrix of EXPR (of each component) at each point.",
            'diffcli hessian "x^3 y + exp(y)" --at x=1,y=0',
            shape=lambda n, m, e: (m, n, n) if m else (n, n), entries=_hessian_entries, order=lambda e: 2,
        ),
        Command(
            "jvp", "Jacobian-vector product", "The value and directional derivative of EXPR along --tangent.",
            'diffcli jvp "x^2 sin(y)" --at x=1,y=2 --tangent x=1,y=0',
            shape=lambda n, m, e: (m,) if m else (), entries=_jvp_entries, inputs=("tangent",),
        ),
        Command(
            "jacobian", "Jacobian", "The Jacobian matrix of EXPR at each point (m x n; 1 x n for a scalar EXPR).",
            'diffcli jacobian "[r cos(t), r sin(t)]" --at r=2,t=0.5',
            shape=lambda n, m, e: (max(m, 1), n), entries=_jacobian_entries, inputs=("mode",), reference="grad",
        ),
        Command(
            "vjp", "vector-Jacobian product", "The value and the product c·J of --cotangent c and EXPR's Jacobian.",
            'diffcli vjp "[x y, x + y]" --at x=1,y=2 --cotangent 1,-1',
            shape=lambda n, m, e: (n,), entries=_vjp_entries, inputs=("cotangent",), reference="grad", combined=True,
        ),
        Command(
            "diff", "partial derivative", "A partial derivative of any order (1 to 10) of EXPR, by --wrt.",
            'diffcli diff "x^3 y^2" --at x=1,y=2 --wrt x:2,y',
            shape=lambda n, m, e: (m,) if m else (), entries=_diff_entries, inputs=("wrt",),
            order=lambda e: len(e.wrt),
        ),
        Command(
            "taylor", "Taylor coefficients", "The coefficients c0..cN of f(p + s t) as a polynomial in s.",
            'diffcli taylor "exp(sin(x))" --at x=0 --order 6',
            shape=lambda n, m, e: (m, e.order + 1) if m else (e.order + 1,), entries=_taylor_entries,
            inputs=("order", "tangent"), order=lambda e: e.order,
        ),
    )
}  # fmt: skip

#: The checks a batch case runs when it names none: for a scalar EXPR, and for a vector one.
DEFAULT_CHECKS = ("value", "grad", "hessian", "jvp")
DEFAULT_VECTOR_CHECKS = ("value", "jacobian", "hessian", "jvp", "vjp")

#: Most components of a vector EXPR.
MAX_OUTPUTS = 64

#: Orders of `diff` (the number of variables in --wrt) and of `taylor` (--order), and
#: taylor's default.
DIFF_ORDERS = (1, 10)
TAYLOR_ORDERS = (0, 20)
TAYLOR_ORDER = 5

#: How a Jacobian is computed: one reverse pass per output, or one forward pass per
#: variable; "auto" takes the fewer passes.
MODES = ("auto", "reverse", "forward")

#: Output formats (their implementations: ``diffcli.render.FORMATS``).
FORMATS = ("table", "plain", "json", "csv")

#: Where `batch` also reports failing checks, beside its output: "github" writes GitHub
#: Actions workflow commands (the default when GITHUB_ACTIONS=true); implementations:
#: ``diffcli.render.ANNOTATIONS``.
ANNOTATIONS = ("github", "none")

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
