"""Every output format in one place: table (rich), plain, JSON and CSV.

Nothing here computes: it only lays out a :class:`~diffcli.report.Report`.
rich is imported only when a table is drawn, so the other formats start fast.

Non-finite numbers are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` in JSON (so the document stays strict RFC 8259 that ``jq``
reads), and as ``nan``, ``inf`` and ``-inf`` in plain and CSV output.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from diffcli.report import PointResult, Report
from diffcli.verdict import MISMATCH, OK, judge

FORMATS = ("table", "plain", "json", "csv")

_JSON_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_number(x: float) -> float | str:
    x = float(x)
    if math.isnan(x):
        return "NaN"
    return _JSON_NONFINITE.get(x, x)


def _nested(array: np.ndarray, leaf) -> Any:
    array = np.asarray(array)
    return leaf(array.item()) if array.ndim == 0 else [_nested(a, leaf) for a in array]


def _optional(x: float | None) -> float | str | None:
    return None if x is None else json_number(x)


def result_dict(result: PointResult) -> dict[str, Any]:
    return {
        "point": {k: json_number(v) for k, v in result.point.items()},
        "value": json_number(result.value),
        "autodiff": _nested(result.autodiff, json_number),
        "reference": _nested(result.reference, json_number),
        "abs_err": _optional(result.verdict.abs_err),
        "rel_err": _optional(result.verdict.rel_err),
        "status": result.status,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON contract: see the README's "JSON output" section."""
    doc: dict[str, Any] = {
        "command": report.command,
        "expression": report.expression,
        "variables": list(report.variables),
        "symbolic": report.symbolic,
        "results": [result_dict(r) for r in report.results],
        "ok": report.ok,
        "counts": report.counts(),
        "dtype": report.dtype,
        "device": report.device,
        "rtol": report.tolerance.rtol,
        "atol": report.tolerance.atol,
    }
    if report.tangent is not None:
        doc["tangent"] = dict(zip(report.variables, map(json_number, report.tangent)))
    return doc


def write_json(report: Report, out: IO[str]) -> None:
    json.dump(report_dict(report), out, allow_nan=False, indent=2)
    out.write("\n")


# -- plain: one tab-separated line per point ---------------------------------


def plain_number(x: float) -> str:
    return repr(float(x))


def _flat(array: np.ndarray) -> str:
    array = np.asarray(array)
    if array.ndim == 0:
        return plain_number(array.item())
    sep = "," if array.ndim == 1 else ";"
    return sep.join(_flat(a) for a in array)


def point_text(point: dict[str, float]) -> str:
    return ",".join(f"{k}={plain_number(v)}" for k, v in point.items())


def plain_lines(report: Report) -> Iterator[str]:
    """point, value, autodiff, reference, abs_err, rel_err, status."""
    for r in report.results:
        errors = ["-" if e is None else plain_number(e) for e in (r.verdict.abs_err, r.verdict.rel_err)]
        fields = [
            point_text(r.point) or "-",
            plain_number(r.value),
            _flat(r.autodiff),
            _flat(r.reference),
            *errors,
            r.status,
        ]
        yield "\t".join(fields)


def write_plain(report: Report, out: IO[str]) -> None:
    for line in plain_lines(report):
        out.write(line + "\n")


# -- CSV: one row per point, one column per element ---------------------------


def element_labels(report: Report) -> list[str]:
    """Suffixes naming each element of the quantity: '', '[x]' or '[x,y]'."""
    names = report.variables
    if report.command == "grad":
        return [f"[{v}]" for v in names]
    if report.command == "hessian":
        return [f"[{a},{b}]" for a in names for b in names]
    return [""]


def write_csv(report: Report, out: IO[str]) -> None:
    labels = element_labels(report)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [f"at[{v}]" for v in report.variables]
        + ["value"]
        + [f"autodiff{s}" for s in labels]
        + [f"reference{s}" for s in labels]
        + ["abs_err", "rel_err", "status"]
    )
    for r in report.results:
        errors = ["" if e is None else plain_number(e) for e in (r.verdict.abs_err, r.verdict.rel_err)]
        writer.writerow(
            [plain_number(v) for v in r.point.values()]
            + [plain_number(r.value)]
            + [plain_number(x) for x in np.ravel(r.autodiff)]
            + [plain_number(x) for x in np.ravel(r.reference)]
            + errors
            + [r.status]
        )


# -- table: rich, side by side ------------------------------------------------

_STYLE = {OK: "green", MISMATCH: "bold red", "undefined": "yellow"}
_COMMAND_TITLE = {"value": "value", "grad": "gradient", "hessian": "Hessian", "jvp": "Jacobian-vector product"}


def short_number(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else plain_number(x)


def _element_rows(report: Report, result: PointResult) -> Iterator[tuple[str, int, float, float, str]]:
    """(label, group, autodiff, reference, formula) for each element of the quantity."""
    names = report.variables
    auto, ref = np.ravel(result.autodiff), np.ravel(result.reference)
    formulas = np.ravel(np.asarray(report.symbolic, dtype=object))
    if report.command == "value":
        labels = [("f", 0)]
    elif report.command == "jvp":
        labels = [("∂f·t", 0)]
    elif report.command == "grad":
        labels = [(f"∂f/∂{v}", 0) for v in names]
    else:
        labels = [(f"∂²f/∂{a}∂{b}" if a != b else f"∂²f/∂{a}²", i) for i, a in enumerate(names) for b in names]
    for (label, group), a, r, formula in zip(labels, auto, ref, formulas):
        yield label, group, float(a), float(r), str(formula)


def _point_table(report: Report, result: PointResult):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    where = ", ".join(f"{k}={short_number(v)}" for k, v in result.point.items()) or "(no variables)"
    title = Text.assemble(("at ", "dim"), where, ("  f = ", "dim"), short_number(result.value))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), expand=False, show_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("autodiff", justify="right", no_wrap=True)
    table.add_column("symbolic", overflow="fold", ratio=1)
    table.add_column("reference", justify="right", no_wrap=True)
    table.add_column("abs err", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    previous_group = 0
    for label, group, a, r, formula in _element_rows(report, result):
        if group != previous_group:
            table.add_section()
            previous_group = group
        verdict = judge(np.asarray(a), np.asarray(r), report.tolerance)
        err = "" if verdict.abs_err is None else f"{verdict.abs_err:.1e}"
        table.add_row(
            label, short_number(a), formula, short_number(r), err, Text(verdict.status, style=_STYLE[verdict.status])
        )
    return table


def summary_text(report: Report) -> str:
    counts = report.counts()
    n = len(report.results)
    parts = ", ".join(f"{counts[s]} {s}" for s in (OK, "undefined", MISMATCH) if counts.get(s))
    return f"{n} point{'s' * (n != 1)}: {parts}"


def write_table(report: Report, out: IO[str]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=False)
    heading = Text.assemble(
        (_COMMAND_TITLE[report.command], "bold"),
        " of ",
        (report.expression, "bold cyan"),
        ("  variables: ", "dim"),
        ", ".join(report.variables) or "none",
    )
    console.print(heading)
    if report.tangent is not None:
        tangent = ", ".join(f"{v}={short_number(t)}" for v, t in zip(report.variables, report.tangent))
        console.print(Text.assemble(("tangent t: ", "dim"), tangent))
    for result in report.results:
        console.print()
        console.print(_point_table(report, result))
    status = MISMATCH if not report.ok else (OK if report.counts().get(OK) == len(report.results) else "undefined")
    tol = report.tolerance
    console.print()
    console.print(
        Text.assemble(
            (summary_text(report), _STYLE[status]), (f"  ({report.dtype}, rtol={tol.rtol:g}, atol={tol.atol:g})", "dim")
        )
    )


WRITERS = {"table": write_table, "plain": write_plain, "json": write_json, "csv": write_csv}


def write(report: Report, fmt: str, out: IO[str]) -> None:
    WRITERS[fmt](report, out)
