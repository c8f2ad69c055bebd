"""Pictures of checks: curves along one variable, heatmaps over two, Taylor polynomials.

:func:`compute` runs the checks of a picture (every check on one grid, or, for
``taylor=True``, the value on the grid and the Taylor coefficients at one point);
:func:`figure` draws their reports with matplotlib (an optional extra: ``pip install
"diffcli[plot]"``), and :func:`save` writes the figure as PNG, SVG or PDF.

Nothing here imports pyplot: a :class:`matplotlib.figure.Figure` is drawn and saved
by the non-interactive backends (Agg for PNG), so a picture needs no display and
leaves matplotlib's global state alone.

How a picture reads:

- one grid: a panel per check, its entries as solid lines (autodiff) under black
  dashed ones (the reference); points whose entry mismatches marked with a red
  cross; stretches where the reference is undefined shaded grey, unknown hatched.
  Below each, |autodiff - reference| on a log scale, the tolerance dotted
  (atol + rtol |reference|, per entry).
- two grids: per entry a heatmap of autodiff's values and one of log10 |autodiff -
  reference|, mismatches crossed; undefined points are left blank.
- taylor: f and its Taylor polynomials of orders 1..N around the point, and
  below, how far each is from f.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffcli.commands import COMMANDS, DEFAULT_CHECKS, DEFAULT_VECTOR_CHECKS
from diffcli.errors import DiffcliError
from diffcli.report import Report
from diffcli.verdict import MISMATCH, STATUSES, UNDEFINED, UNKNOWN, element_errors, tolerance_of

#: The file types a picture is written as, by suffix.
SUFFIXES = (".png", ".svg", ".pdf")
DEFAULT_OUT = "diffcli-plot.png"
DPI = 100
#: Checks drawn when none are named: for a scalar EXPR, and for a vector one.
PLOT_CHECKS = DEFAULT_CHECKS[:2]
PLOT_VECTOR_CHECKS = DEFAULT_VECTOR_CHECKS[:2]
#: Pixels: a picture's width, and the height of each row of panels (a check's, or an entry's heatmaps).
WIDTH, ROW_HEIGHT, TITLE_HEIGHT = 1000, 330, 90
MAX_PIXELS = 10_000  # per side

#: Okabe and Ito's palette, readable by colour-blind people and in print. Vermillion is
#: kept for mismatches and black for the reference, so that neither is ever an entry.
PALETTE = "Okabe-Ito"
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "bluish green": "#009E73", "reddish purple": "#CC79A7",
    "sky blue": "#56B4E9", "yellow": "#F0E442", "vermillion": "#D55E00", "black": "#000000",
}  # fmt: skip
ENTRY_COLOURS = tuple(OKABE_ITO[c] for c in ("blue", "orange", "bluish green", "reddish purple", "sky blue", "yellow"))
MISMATCH_COLOUR = OKABE_ITO["vermillion"]
REFERENCE_COLOUR = OKABE_ITO["black"]
UNDEFINED_COLOUR = "#DDDDDD"
MARKERS = ("o", "s", "^", "D", "v", "P")  # a few per line, so lines differ in grey too
#: Colour maps (perceptually uniform, colour-blind safe): values, and log10 errors.
VALUE_MAP, ERROR_MAP = "viridis", "cividis"
#: Most lines in one panel (one per entry): as many as there are entry colours.
MAX_LINES = len(ENTRY_COLOURS)


@dataclass(frozen=True)
class Picture:
    """Where and how large a picture is written: ``width`` x ``height`` pixels at ``dpi``
    (a vector file gets the same proportions, width/dpi inches wide); a height of None
    grows with the panels."""

    out: str = DEFAULT_OUT
    width: int = WIDTH
    height: int | None = None
    dpi: int = DPI

    @property
    def format(self) -> str:
        return os.path.splitext(self.out)[1].lower()[1:]


def picture(out: str | None = None, size: str | None = None, dpi: int | None = None) -> Picture:
    """``--out``, ``--size WxH`` (pixels) and ``--dpi``, checked."""
    out = out or DEFAULT_OUT
    if os.path.splitext(out)[1].lower() not in SUFFIXES:
        raise DiffcliError(f"--out {out}: write a {', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]} file")
    if os.path.isdir(out):
        raise DiffcliError(f"--out {out}: it is a directory")
    width, height = WIDTH, None
    if size is not None:
        w, sep, h = size.lower().partition("x")
        if not (sep and w.strip().isdigit() and h.strip().isdigit()):
            raise DiffcliError(f"--size {size}: expected WIDTHxHEIGHT in pixels, e.g. 1200x800")
        width, height = int(w), int(h)
        if not (100 <= width <= MAX_PIXELS and 100 <= height <= MAX_PIXELS):
            raise DiffcliError(f"--size {size}: each side from 100 to {MAX_PIXELS:,} pixels")
    dpi = DPI if dpi is None else dpi
    if not 10 <= dpi <= 1000:
        raise DiffcliError(f"--dpi {dpi}: from 10 to 1000")
    return Picture(out, width, height, dpi)


def require_matplotlib() -> None:
    """matplotlib is an optional extra: without it, say what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DiffcliError(
            'plotting needs matplotlib: pip install matplotlib (or the extra: pip install "diffcli[plot]")'
        ) from None


# -- the checks behind a picture ---------------------------------------------------


@dataclass
class Plot:
    """The reports a picture is drawn from: ``kind`` is "curves", "heatmaps" or "taylor";
    ``axes`` the grid variables (horizontal first); for taylor, ``reports`` are the value
    on the grid and the coefficients at ``centre``."""

    kind: str
    axes: tuple[str, ...]
    reports: list[Report]
    centre: float | None = None
    text: str = ""  # the expression as typed (default: as SymPy writes it)

    @property
    def exit_code(self) -> int:
        return max(report.exit_code for report in self.reports)


def _grid_name(spec: str) -> str:
    name = spec.partition("=")[0].strip()
    if not name.isidentifier():
        raise DiffcliError(f"--grid {spec}: expected NAME=LOW:HIGH:COUNT (e.g. x=-3:3:401)")
    return name


def plan(
    expression: str,
    grid: str | Sequence[str],
    at: str | None = None,
    *,
    checks: Sequence[str] | None = None,
    taylor: bool = False,
    order: int | str | None = None,
    **options: Any,
) -> tuple[str, tuple[str, ...], list]:
    """The prepared checks of a picture: (kind, grid variables, requests); ``options`` are
    :func:`diffcli.pipeline.prepare`'s (each check takes those it has inputs for)."""
    from diffcli.pipeline import prepare

    grids = [grid] if isinstance(grid, str) else list(grid)
    if not 1 <= len(grids) <= 2:
        raise DiffcliError(f"plot: give one --grid (curves) or two (heatmaps); got {len(grids)}")
    axes = tuple(_grid_name(spec) for spec in grids)
    if len(set(axes)) < len(axes):
        raise DiffcliError(f"plot: --grid {axes[0]} is given twice")
    at_list = [at] if at else []
    if taylor:
        return "taylor", axes, _taylor_plan(expression, grids, at, checks, order, options)
    if order is not None and "taylor" not in (checks or ()):
        raise DiffcliError("--order applies to --taylor or --checks taylor")
    vector = expression.strip().startswith("[")
    names = tuple(checks or (PLOT_VECTOR_CHECKS if vector else PLOT_CHECKS))
    unknown = [c for c in names if c not in COMMANDS]
    if unknown or not names:
        raise DiffcliError(f"--checks: choose from {', '.join(COMMANDS)} (got {','.join(checks or ())!r})")
    requests = [
        prepare(check, expression, at_list, grid=grids, order=order if check == "taylor" else None,
                **_inputs(check, options))
        for check in dict.fromkeys(names)
    ]  # fmt: skip
    for request in requests:
        _shown(request.command, request.variables, request.outputs, request.extra)  # too many lines: say so now
    return ("curves" if len(grids) == 1 else "heatmaps"), axes, requests


def _inputs(check: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less the inputs (tangent, cotangent, wrt, mode) this check does not take."""
    inputs = COMMANDS[check].inputs
    return {k: v for k, v in options.items() if k not in ("tangent", "cotangent", "wrt", "mode") or k in inputs}


def _taylor_plan(expression, grids, at, checks, order, options) -> list:
    from diffcli.pipeline import prepare
    from diffcli.render import plain_number

    if len(grids) != 1:
        raise DiffcliError("--taylor draws along one variable: give one --grid")
    if checks:
        raise DiffcliError("--taylor draws f and its Taylor polynomials: --checks does not apply")
    if not at:
        raise DiffcliError("--taylor needs the point to expand around: --at x=a (and the other variables)")
    name = _grid_name(grids[0])
    inputs = {k: v for k, v in options.items() if k not in ("tangent", "cotangent", "wrt", "mode")}
    coefficients = prepare("taylor", expression, [at], order=order, **inputs)
    if name not in coefficients.variables:
        raise DiffcliError(f"--grid {name}: the expression has no variable '{name}'")
    tangent = ",".join(f"{v}={int(v == name)}" for v in coefficients.variables)
    coefficients = prepare("taylor", expression, [at], order=order, tangent=tangent, **inputs)
    others = ",".join(f"{v}={plain_number(c)}" for v, c in zip(coefficients.variables, coefficients.points[0])
                      if v != name)  # fmt: skip
    value = prepare("value", expression, [others] if others else [], grid=grids, **inputs)
    if value.outputs:
        raise DiffcliError("--taylor takes a scalar EXPR")
    return [value, coefficients]


def compute(
    expression: str,
    grid: str | Sequence[str],
    at: str | None = None,
    *,
    checks: Sequence[str] | None = None,
    taylor: bool = False,
    order: int | str | None = None,
    **options: Any,
) -> Plot:
    """Run a picture's checks (see :func:`plan`); their symbolic sides run together in the
    current backend while torch computes."""
    from diffcli.pipeline import finish, start

    kind, axes, requests = plan(expression, grid, at, checks=checks, taylor=taylor, order=order, **options)
    started = [start(request) for request in requests]
    reports = [finish(s) for s in started]
    centre = None
    if kind == "taylor":
        centre = float(reports[1].points[0, reports[1].variables.index(axes[0])])
    return Plot(kind, axes, reports, centre, " ".join(expression.split()))


# -- what is drawn of a report ------------------------------------------------------


@dataclass
class _Entries:
    """A report's entries as drawn: (P, E) arrays of the shown entries, and their labels."""

    labels: list[str]
    autodiff: np.ndarray
    reference: np.ndarray
    defined: np.ndarray
    error: np.ndarray  # |autodiff - reference| (inf where one is not finite)
    allowed: np.ndarray  # the tolerance
    mismatch: np.ndarray  # elements that mismatch


def shown_entries(command: str, variables, outputs: int, extra) -> list[tuple[int, str]]:
    """(flat index, label) of the entries drawn: a Hessian's upper triangle (it is
    symmetric), every other command's entries."""
    entries = COMMANDS[command].entries(variables, outputs, extra)
    n = len(variables)
    return [
        (k, e.label) for k, e in enumerate(entries)
        if command != "hessian" or (k % (n * n)) // n <= (k % (n * n)) % n
    ]  # fmt: skip


def _shown(command: str, variables, outputs: int, extra) -> list[tuple[int, str]]:
    """:func:`shown_entries`, at most MAX_LINES of them (one panel's lines)."""
    keep = shown_entries(command, variables, outputs, extra)
    if len(keep) > MAX_LINES:
        raise DiffcliError(
            f"plot: {command} has {len(keep)} entries to draw, more than the {MAX_LINES} a panel shows; "
            "draw fewer (e.g. --checks diff --wrt x,y for one entry)"
        )
    return keep


def entries(report: Report) -> _Entries:
    """The drawn entries of a report, with their errors and verdicts element by element."""
    shown = _shown(report.command, report.variables, report.outputs, report.extra)
    index = [k for k, _ in shown]
    points = len(report)
    a = np.asarray(report.autodiff, dtype=np.float64).reshape(points, -1)[:, index]
    r = np.asarray(report.reference, dtype=np.float64).reshape(points, -1)[:, index]
    defined = np.isfinite(r) if report.defined is None else np.asarray(report.defined).reshape(points, -1)[:, index]
    error, _, close = element_errors(a, r, report.tolerance)
    mismatch = defined & ~close
    if report.verdicts.status.size:  # an `expect` failure marks the point without an element
        mismatch |= ((report.verdicts.status == MISMATCH) & ~mismatch.any(axis=1))[:, None] & ~close
    return _Entries([label for _, label in shown], a, np.where(defined, r, np.nan), defined, error,
                    tolerance_of(r, report.tolerance), mismatch)  # fmt: skip


def counts_text(report: Report) -> str:
    counts = report.counts()
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s)) or "no points"


def title(plot: Plot) -> str:
    first = plot.reports[0]
    checks = "   ".join(f"{r.command}: {counts_text(r)}" for r in plot.reports)
    fixed = [f"{v}={c:g}" for v, c in zip(first.variables, first.points[0]) if v not in plot.axes] if len(first) else []
    return (plot.text or first.expression) + (f"   ({', '.join(fixed)})" if fixed else "") + f"\n{checks}"


def robust_limits(values: np.ndarray) -> tuple[float, float] | None:
    """y limits that show the curve, not a pole's spike: the data's range, or, where a few
    values lie far outside the bulk, the 2nd to 98th percentile widened by half its span."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    low, high = float(finite.min()), float(finite.max())
    p2, p98 = (float(v) for v in np.percentile(finite, [2, 98]))
    span = p98 - p2
    if span > 0 and (high - low) > 20 * span:
        low, high = p2 - span / 2, p98 + span / 2
    pad = (high - low) * 0.05 or max(abs(high) * 0.05, 1.0)
    return low - pad, high + pad


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _shade(ax, x: np.ndarray, status: np.ndarray) -> dict[str, Any]:
    """Grey bands over undefined stretches, hatched over unknown ones, reaching halfway
    to the neighbouring points (a lone point gets a band one grid step wide)."""
    from matplotlib.patches import Patch

    handles = {}
    edges = np.concatenate([[x[0] - (x[1] - x[0]) / 2 if len(x) > 1 else x[0] - 0.5],
                            (x[1:] + x[:-1]) / 2,
                            [x[-1] + (x[-1] - x[-2]) / 2 if len(x) > 1 else x[0] + 0.5]])  # fmt: skip
    styles = {
        UNDEFINED: {"color": UNDEFINED_COLOUR, "lw": 0},
        UNKNOWN: {"facecolor": "none", "edgecolor": "#777777", "hatch": "///", "lw": 0},
    }
    for status_name, style in styles.items():
        for start, stop in runs(status == status_name):
            ax.axvspan(edges[start], edges[stop], zorder=0, **style)
            handles[status_name] = Patch(label=f"{status_name} (no reference)" if status_name == UNDEFINED
                                         else f"{status_name} (not computed)", **style)  # fmt: skip
    return handles


def _clip_to(ax, y: np.ndarray) -> np.ndarray:
    low, high = ax.get_ylim()  # (a value off the scale, or not finite, is drawn at the edge)
    return np.clip(np.nan_to_num(y, nan=high, posinf=high, neginf=low), low, high)


def _curves(fig, plot: Plot) -> None:
    from matplotlib.lines import Line2D

    rows = fig.add_gridspec(2 * len(plot.reports), 1, height_ratios=[3, 1.3] * len(plot.reports))
    top = None
    for k, report in enumerate(plot.reports):
        axis = report.variables.index(plot.axes[0])
        order = np.argsort(report.points[:, axis], kind="stable")
        x = report.points[order, axis]
        drawn = entries(report)
        a, r, err, allowed, mismatch = (getattr(drawn, f)[order] for f in
                                        ("autodiff", "reference", "error", "allowed", "mismatch"))  # fmt: skip
        status = report.verdicts.status[order]
        curve = fig.add_subplot(rows[2 * k], sharex=top)
        below = fig.add_subplot(rows[2 * k + 1], sharex=curve)
        top = top or curve
        handles = []
        every = max(len(x) // 10, 1)
        for j, label in enumerate(drawn.labels):
            colour = ENTRY_COLOURS[j]
            line = curve.plot(x, a[:, j], color=colour, lw=2.2, marker=MARKERS[j], markevery=(j * every // 6, every),
                              ms=4, label=f"{label} (autodiff)", gid=f"autodiff-{report.command}-{j}")[0]  # fmt: skip
            handles.append(line)
            curve.plot(
                x, r[:, j], color=REFERENCE_COLOUR, lw=1.1, ls=(0, (4, 3)), gid=f"reference-{report.command}-{j}"
            )
        handles.append(Line2D([], [], color=REFERENCE_COLOUR, lw=1.1, ls=(0, (4, 3)), label="reference"))
        limits = robust_limits(np.concatenate([a.ravel(), r.ravel()]))
        if limits:
            curve.set_ylim(*limits)
        marked = np.argwhere(mismatch)
        if len(marked):
            at = np.where(np.isfinite(a), a, r)[marked[:, 0], marked[:, 1]]
            curve.plot(x[marked[:, 0]], _clip_to(curve, at), ls="none", marker="X", ms=9, mew=1.2, mec="white",
                       color=MISMATCH_COLOUR, zorder=5, gid=f"mismatch-{report.command}")  # fmt: skip
            handles.append(Line2D([], [], ls="none", marker="X", ms=9, color=MISMATCH_COLOUR, label="mismatch"))
        handles += _shade(curve, x, status).values()
        _shade(below, x, status)
        curve.set_title(f"{COMMANDS[report.command].title}: {counts_text(report)}", loc="left", fontsize=10)
        curve.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        curve.grid(alpha=0.3)
        curve.tick_params(labelbottom=False)
        _errors(below, x, err, allowed, mismatch, drawn.labels, report.command)
        below.set_xlabel(plot.axes[0] if k == len(plot.reports) - 1 else "")
        if k < len(plot.reports) - 1:
            below.tick_params(labelbottom=False)


def _floor(err: np.ndarray, allowed: np.ndarray) -> float:
    """Where a zero error is drawn on the log scale: well below the tolerance and the errors."""
    positive = np.concatenate([err[np.isfinite(err) & (err > 0)], allowed[np.isfinite(allowed) & (allowed > 0)]])
    return float(positive.min()) / 100 if positive.size else 1e-17


def _errors(ax, x, err, allowed, mismatch, labels, command: str) -> None:
    """|autodiff - reference| per entry on a log scale (a zero at the floor), the tolerance
    dotted; an infinite error (NaN or inf from autodiff) crossed at the top edge."""
    from matplotlib.lines import Line2D

    floor = _floor(err, allowed)
    shown = np.where(np.isfinite(err), np.maximum(err, floor), np.nan)
    for j in range(len(labels)):
        colour = ENTRY_COLOURS[j]
        ax.plot(x, shown[:, j], color=colour, lw=1.3, gid=f"error-{command}-{j}")
        ax.plot(x, allowed[:, j], color=colour if len(labels) > 1 else REFERENCE_COLOUR, lw=1, ls=":")
    top = float(np.nanmax(np.concatenate([shown.ravel(), allowed.ravel(), [floor * 10]])))
    infinite = (np.isinf(err) & mismatch).any(axis=1)
    if infinite.any():
        top *= 10
        ax.plot(x[infinite], np.full(int(infinite.sum()), top), ls="none", marker="X", ms=7, color=MISMATCH_COLOUR)
    ax.set_yscale("log")
    ax.set_ylim(floor / 3, top * 3)
    ax.set_ylabel("|error|", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(handles=[Line2D([], [], color=REFERENCE_COLOUR, ls=":", lw=1, label="tolerance")],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)  # fmt: skip


def _cells(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A grid axis's distinct values, and the edges of its first and last cells."""
    distinct = np.unique(values)
    step = (distinct[-1] - distinct[0]) / (len(distinct) - 1) if len(distinct) > 1 else 1.0
    return distinct, distinct[0] - step / 2, distinct[-1] + step / 2


def extent(report: Report, axes: tuple[str, str]) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of a heatmap: the grid's cells, centred on its points."""
    (_, x0, x1), (_, y0, y1) = (_cells(report.points[:, report.variables.index(a)]) for a in axes)
    return x0, x1, y0, y1


def _heatmaps(fig, plot: Plot) -> None:
    import matplotlib as mpl

    rows = [(report, j) for report in plot.reports for j in range(len(entries(report).labels))]
    grid = fig.add_gridspec(len(rows), 2)
    value_map = mpl.colormaps[VALUE_MAP].with_extremes(bad=UNDEFINED_COLOUR)
    error_map = mpl.colormaps[ERROR_MAP].with_extremes(bad=UNDEFINED_COLOUR)
    for row, (report, j) in enumerate(rows):
        drawn = entries(report)
        ih, iv = (report.variables.index(a) for a in plot.axes)
        xs, ys = np.unique(report.points[:, ih]), np.unique(report.points[:, iv])
        col = np.searchsorted(xs, report.points[:, ih])
        line = np.searchsorted(ys, report.points[:, iv])
        box = extent(report, plot.axes)
        error = np.log10(np.maximum(drawn.error[:, j], _floor(drawn.error, drawn.allowed)))
        for side, (values, cmap, label) in enumerate((
            (np.where(drawn.defined[:, j], drawn.autodiff[:, j], np.nan), value_map, f"{drawn.labels[j]} (autodiff)"),
            (np.where(drawn.defined[:, j], error, np.nan), error_map, f"log10 |error| of {drawn.labels[j]}"),
        )):  # fmt: skip
            image = np.full((len(ys), len(xs)), np.nan)
            image[line, col] = values
            ax = fig.add_subplot(grid[row, side])
            limits = robust_limits(values) if side == 0 else None
            shown = ax.imshow(np.ma.masked_invalid(image), origin="lower", extent=box, aspect="auto",
                              interpolation="nearest", cmap=cmap, vmin=limits and limits[0],
                              vmax=limits and limits[1], gid=f"heatmap-{report.command}-{j}-{side}")  # fmt: skip
            fig.colorbar(shown, ax=ax, fraction=0.05, pad=0.02)
            marked = drawn.mismatch[:, j]
            if marked.any():
                ax.plot(
                    report.points[marked, ih],
                    report.points[marked, iv],
                    ls="none",
                    marker="X",
                    ms=7,
                    mec="white",
                    mew=0.8,
                    color=MISMATCH_COLOUR,
                    gid=f"mismatch-{report.command}-{j}-{side}",
                )
            ax.set_title(f"{label}" + (f" — {counts_text(report)}" if side == 0 and j == 0 else ""), loc="left",
                         fontsize=9)  # fmt: skip
            ax.set_xlabel(plot.axes[0], fontsize=9)
            ax.set_ylabel(plot.axes[1], fontsize=9)


def _taylor(fig, plot: Plot) -> None:
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    value, coefficients = plot.reports
    axis = value.variables.index(plot.axes[0])
    order = np.argsort(value.points[:, axis], kind="stable")
    x = value.points[order, axis]
    drawn = entries(value)
    f, truth = drawn.autodiff[order, 0], drawn.reference[order, 0]
    status, mismatch = value.verdicts.status[order], drawn.mismatch[order, 0]
    a = plot.centre
    degree = coefficients.order or 0
    powers = (x[:, None] - a) ** np.arange(degree + 1)

    def polynomials(c: np.ndarray) -> np.ndarray:  # (P, degree + 1): P_0 .. P_N at each x
        with np.errstate(invalid="ignore", over="ignore"):
            return np.cumsum(powers * np.asarray(c, dtype=np.float64)[None, :], axis=1)

    ours = polynomials(coefficients.autodiff[0])
    wrong = not coefficients.ok
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1.3])
    curve = fig.add_subplot(grid[0])
    below = fig.add_subplot(grid[1], sharex=curve)
    colours = mpl.colormaps[VALUE_MAP](np.linspace(0.0, 0.9, max(degree, 1)))
    handles = []
    for k in range(1, degree + 1):
        handles += curve.plot(x, ours[:, k], color=colours[k - 1], lw=1.4, label=f"order {k}", gid=f"taylor-{k}")
        if wrong:
            curve.plot(x, polynomials(coefficients.reference[0])[:, k], color=colours[k - 1], lw=1, ls="--")
    handles += curve.plot(x, f, color=REFERENCE_COLOUR, lw=2.4, label="f (autodiff)", gid="autodiff-value-0")
    curve.plot(x, truth, color="white", lw=1, ls=(0, (4, 3)), gid="reference-value-0")
    handles.append(Line2D([], [], color="#999999", lw=1, ls=(0, (4, 3)), label="reference (white dashes on f)"))
    limits = robust_limits(np.concatenate([f, truth]))
    if limits:
        curve.set_ylim(*limits)
    centre_value = float(coefficients.autodiff[0][0]) if degree >= 0 else math.nan
    curve.plot([a], [centre_value], marker="o", ms=8, color=MISMATCH_COLOUR if wrong else REFERENCE_COLOUR,
               zorder=6, gid="centre")  # fmt: skip
    curve.axvline(a, color="#777777", lw=0.8, ls=":")
    if mismatch.any():
        curve.plot(x[mismatch], _clip_to(curve, f[mismatch]), ls="none", marker="X", ms=9, color=MISMATCH_COLOUR,
                   mec="white", zorder=5, gid="mismatch-value")  # fmt: skip
        handles.append(Line2D([], [], ls="none", marker="X", ms=9, color=MISMATCH_COLOUR, label="mismatch"))
    if wrong:
        handles.append(Line2D([], [], color="#777777", ls="--", label="from the reference's coefficients"))
    handles += _shade(curve, x, status).values()
    _shade(below, x, status)
    verdict = f"coefficients at {plot.axes[0]}={a:g}: {counts_text(coefficients)}"
    curve.set_title(f"Taylor polynomials — {verdict}; f on the grid: {counts_text(value)}", loc="left", fontsize=10)
    curve.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False,
                 ncols=1 if degree < 12 else 2)  # fmt: skip
    curve.grid(alpha=0.3)
    curve.tick_params(labelbottom=False)
    with np.errstate(invalid="ignore"):
        gaps = np.abs(truth[:, None] - ours[:, 1:])
    floor = _floor(gaps, np.zeros(0))
    for k in range(1, degree + 1):
        below.plot(x, np.maximum(gaps[:, k - 1], floor), color=colours[k - 1], lw=1.2)
    below.set_yscale("log")
    below.set_ylabel("|f − Pₖ|", fontsize=8)
    below.set_xlabel(plot.axes[0])
    below.grid(alpha=0.3)


_DRAW = {"curves": _curves, "heatmaps": _heatmaps, "taylor": _taylor}


def _rows(plot: Plot) -> int:
    if plot.kind == "heatmaps":
        return sum(len(entries(r).labels) for r in plot.reports)
    return 2 if plot.kind == "taylor" else len(plot.reports)


def figure(plot: Plot, picture: Picture = Picture()):
    """The picture as a matplotlib Figure (not yet written)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    height = picture.height or min(TITLE_HEIGHT + ROW_HEIGHT * _rows(plot), MAX_PIXELS)
    fig = Figure(figsize=(picture.width / picture.dpi, height / picture.dpi), dpi=picture.dpi, layout="constrained")
    fig.suptitle(title(plot), fontsize=11)
    _DRAW[plot.kind](fig, plot)
    return fig


def save(fig, picture: Picture) -> str:
    """Write the figure (atomically: a reader never sees half a file); the path written."""
    import io

    from diffcli.render import write_atomically

    buffer = io.BytesIO()
    metadata = {"Software": "diffcli"} if picture.format == "png" else {"Creator": "diffcli"}
    if picture.format == "svg":
        metadata = {"Creator": "diffcli", "Date": None}
    fig.savefig(buffer, format=picture.format, dpi=picture.dpi, metadata=metadata)
    write_atomically(picture.out, buffer.getvalue())
    return picture.out


def draw(plot: Plot, picture: Picture = Picture()) -> str:
    """Draw and write the picture; the path written."""
    return save(figure(plot, picture), picture)
