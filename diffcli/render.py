"""Every output format in one place: table (rich), plain, JSON, CSV, JUnit.

Nothing here computes: it only lays out reports. rich is imported only when
a table is drawn, so the other formats start fast.

Non-finite numbers are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` in JSON (so the document stays strict RFC 8259 that ``jq``
reads), and as ``nan``, ``inf`` and ``-inf`` in plain and CSV output.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from diffcli.commands import COMMANDS, TABLE_POINTS
from diffcli.errors import DiffcliError, plural
from diffcli.limits import PRECISE_POINTS
from diffcli.report import PointResult, Report
from diffcli.verdict import MISMATCH, OK, STATUSES, UNDEFINED, UNKNOWN, judge, tolerance_of, worst


@dataclass(frozen=True)
class Layout:
    """How much to show: per-point results, the summary, or both."""

    summary: bool = False  # a summary instead of per-point output
    results: bool = False  # per-point results in JSON even with the summary


# -- numbers ----------------------------------------------------------------------

_JSON_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_number(x: float) -> float | str:
    x = float(x)
    if math.isnan(x):
        return "NaN"
    return _JSON_NONFINITE.get(x, x)


def json_safe(obj: Any) -> Any:
    """Floats made strict-JSON-safe, everywhere in a nested structure."""
    if isinstance(obj, float):
        return json_number(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def plain_number(x: float) -> str:
    return repr(float(x))


def short_number(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else plain_number(x)


def _nested(array: np.ndarray, leaf) -> Any:
    array = np.asarray(array)
    return leaf(array.item()) if array.ndim == 0 else [_nested(a, leaf) for a in array]


def _optional(x: float | None) -> float | str | None:
    return None if x is None else json_number(x)


# -- JSON -----------------------------------------------------------------------


def result_dict(result: PointResult) -> dict[str, Any]:
    out = {
        "point": {k: json_number(v) for k, v in result.point.items()},
        "value": _nested(result.value, json_number),
        "autodiff": _nested(result.autodiff, json_number),
        "reference": _nested(result.reference, json_number),
        "abs_err": _optional(result.verdict.abs_err),
        "rel_err": _optional(result.verdict.rel_err),
        "status": result.status,
    }
    if result.reason is not None:
        out["reason" if result.status in (UNDEFINED, UNKNOWN) else "note"] = result.reason
    if result.aux:
        out["aux"] = {k: json_number(v) for k, v in result.aux.items()}
    return out


def report_dict(report: Report, layout: Layout = Layout()) -> dict[str, Any]:
    """The JSON contract: see the README's "JSON output" section."""
    doc: dict[str, Any] = {
        "command": report.command,
        "expression": report.expression,
        "variables": list(report.variables),
        "symbolic": report.symbolic,
    }
    if not layout.summary or layout.results:
        doc["results"] = [result_dict(report.result(i)) for i in range(len(report))]
    doc |= {
        "ok": report.ok,
        "summary": json_safe(report.summary()),
        "dtype": report.dtype,
        "device": report.device,
        "engine": report.engine,
        "rtol": report.tolerance.rtol,
        "atol": report.tolerance.atol,
        "reference_precision": reference_precision(report),
    }
    if report.tangent is not None:
        doc["tangent"] = dict(zip(report.variables, map(json_number, report.tangent)))
    if report.cotangent is not None:
        doc["cotangent"] = [json_number(c) for c in report.cotangent]
    if report.wrt:
        doc["wrt"] = list(report.wrt)
    if report.order is not None:
        doc["order"] = report.order
    return doc


def reference_precision(report: Report) -> str:
    if report.precise:
        return "30 digits"
    recomputed = report.recomputed
    also = f" (30 digits at {recomputed} where float64 could not be trusted)" if recomputed else ""
    if report.exact_rows:
        return f"30 digits at the first {plural(report.exact_rows, 'point')} (given by hand), float64 at the rest{also}"
    return "float64" + also


def write_json(report: Report, out: IO[str], layout: Layout = Layout()) -> None:
    json.dump(report_dict(report, layout), out, allow_nan=False, indent=2)
    out.write("\n")


# -- plain: one tab-separated line per point ---------------------------------------


def _flat(array: np.ndarray) -> str:
    array = np.asarray(array)
    if array.ndim == 0:
        return plain_number(array.item())
    sep = "," if array.ndim == 1 else ";"
    return sep.join(_flat(a) for a in array)


def point_text(variables, coordinates) -> str:
    return ",".join(f"{k}={plain_number(v)}" for k, v in zip(variables, coordinates))


def _errors(report: Report, i: int, missing: str) -> list[str]:
    return [
        missing if math.isnan(e[i]) else plain_number(e[i]) for e in (report.verdicts.abs_err, report.verdicts.rel_err)
    ]


def plain_lines(report: Report) -> Iterator[str]:
    """point, value, autodiff, reference, abs_err, rel_err, status."""
    for i in range(len(report)):
        fields = [
            point_text(report.variables, report.points[i]) or "-",
            _flat(report.values[i]),
            _flat(report.autodiff[i]),
            _flat(report.reference[i]),
            *_errors(report, i, "-"),
            str(report.verdicts.status[i]),
            _reason(report, i) or "-",
        ]
        yield "\t".join(fields)


def _reason(report: Report, i: int) -> str | None:
    """The point's reason, on one line (plain and CSV are line-oriented)."""
    reason = None if report.reasons is None else report.reasons[i]
    return None if reason is None else " ".join(str(reason).split())


def _where(entry: dict | None) -> tuple[str, str]:
    if entry is None:
        return "-", "-"
    return plain_number(entry["value"]), point_text(entry["point"], entry["point"].values())


def summary_fields(report: Report) -> dict[str, str]:
    s = report.summary()
    abs_err, abs_at = _where(s["max_abs_err"])
    rel_err, rel_at = _where(s["max_rel_err"])
    counts = s["counts"]
    return {
        "command": report.command,
        "points": str(s["points"]),
        **{status: str(counts.get(status, 0)) for status in STATUSES},
        "max_abs_err": abs_err,
        "max_abs_err_at": abs_at,
        "max_rel_err": rel_err,
        "max_rel_err_at": rel_at,
        "recomputed": str(s["recomputed"]),
    }


def write_plain(report: Report, out: IO[str], layout: Layout = Layout()) -> None:
    if layout.summary:
        out.write("\t".join(f"{k}={v}" for k, v in summary_fields(report).items()) + "\n")
        return
    for line in plain_lines(report):
        out.write(line + "\n")


# -- CSV: one row per point, one column per element ----------------------------------


def element_labels(report: Report) -> list[str]:
    """Suffixes naming each element of the quantity: '', '[x]' or '[x,y]'."""
    return [entry.suffix for entry in COMMANDS[report.command].entries(report.variables, report.outputs, report.extra)]


def write_csv(report: Report, out: IO[str], layout: Layout = Layout()) -> None:
    writer = csv.writer(out, lineterminator="\n")
    if layout.summary:
        fields = summary_fields(report)
        writer.writerows([list(fields), list(fields.values())])
        return
    labels = element_labels(report)
    aux = list(report.aux)
    writer.writerow(
        [f"at[{v}]" for v in report.variables]
        + ([f"value[{k + 1}]" for k in range(report.outputs)] if report.outputs else ["value"])
        + [f"autodiff{s}" for s in labels]
        + [f"reference{s}" for s in labels]
        + ["abs_err", "rel_err", "status", "reason"]
        + [f"aux[{a}]" for a in aux]
    )
    for i in range(len(report)):
        writer.writerow(
            [plain_number(v) for v in report.points[i]]
            + [plain_number(v) for v in np.ravel(report.values[i])]
            + [plain_number(x) for x in np.ravel(report.autodiff[i])]
            + [plain_number(x) for x in np.ravel(report.reference[i])]
            + _errors(report, i, "")
            + [str(report.verdicts.status[i]), _reason(report, i) or ""]
            + [plain_number(report.aux[a][i]) for a in aux]
        )


# -- table: rich, side by side ---------------------------------------------------

STYLE = {OK: "green", MISMATCH: "bold red", UNDEFINED: "yellow", UNKNOWN: "blue"}


def _element_rows(report: Report, result: PointResult) -> Iterator[tuple]:
    """(label, group, autodiff, reference, formula, defined, unknown) for each element of the quantity."""
    auto, ref = np.ravel(result.autodiff), np.ravel(result.reference)
    defined = np.isfinite(ref) if result.defined is None else np.ravel(result.defined)
    unknown = np.zeros(ref.shape, bool) if result.unknown is None else np.ravel(result.unknown)
    formulas = np.ravel(np.asarray(report.symbolic, dtype=object))
    entries = COMMANDS[report.command].entries(report.variables, report.outputs, report.extra)
    for entry, a, r, formula, d, u in zip(entries, auto, ref, formulas, defined, unknown):
        yield entry.label, entry.group, float(a), float(r), str(formula), bool(d), bool(u)


def _point_table(report: Report, result: PointResult):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    where = ", ".join(f"{k}={short_number(v)}" for k, v in result.point.items()) or "(no variables)"
    value = np.ravel(result.value)
    shown = short_number(value[0]) if not report.outputs else f"({', '.join(map(short_number, value))})"
    title = Text.assemble(("at ", "dim"), where, ("  f = ", "dim"), shown)
    for name, value in result.aux.items():
        title.append_text(Text.assemble((f"  {name} = ", "dim"), short_number(value)))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False,
                  caption=_caption(result), caption_justify="left",
                  caption_style=STYLE[result.status] if result.status in (UNDEFINED, UNKNOWN) else "dim")  # fmt: skip
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("autodiff", justify="right", no_wrap=True)
    table.add_column("symbolic", overflow="fold", ratio=1)
    table.add_column("reference", justify="right", no_wrap=True)
    table.add_column("abs err", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    previous_group = 0
    for label, group, a, r, formula, defined, unknown in _element_rows(report, result):
        if group != previous_group:
            table.add_section()
            previous_group = group
        verdict = judge(np.asarray(a), np.asarray(r), report.tolerance, np.asarray(defined), np.asarray(unknown))
        err = "" if verdict.abs_err is None else f"{verdict.abs_err:.1e}"
        status = Text(verdict.status, style=STYLE[verdict.status])
        table.add_row(label, short_number(a), formula, short_number(r), err, status)
    return table


def _caption(result: PointResult) -> str | None:
    if result.reason is None:
        return None
    return f"{result.status if result.status in (UNDEFINED, UNKNOWN) else 'note'}: {result.reason}"


def _summary_table(report: Report):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    s = report.summary()
    table = Table(box=box.SIMPLE, padding=(0, 1), show_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(overflow="fold")
    table.add_row("points", str(s["points"]), "")
    for status in STATUSES:
        count = s["counts"].get(status, 0)
        if count or status != UNKNOWN:
            table.add_row(status, Text(str(count), style=STYLE[status] if count else "dim"), "")
    for label, key in (("max abs err", "max_abs_err"), ("max rel err", "max_rel_err")):
        entry = s[key]
        if entry is None:
            table.add_row(label, "-", "")
            continue
        where = ", ".join(f"{k}={short_number(v)}" for k, v in entry["point"].items())
        table.add_row(label, f"{entry['value']:.2e}", Text.assemble(("at ", "dim"), where))
    for reason, count in list(s["reasons"].items())[:5]:
        table.add_row("why", str(count), Text(reason, style="dim"))
    if s["recomputed"]:
        table.add_row(
            "recomputed", str(s["recomputed"]), Text("points where float64 could not be trusted", style="dim")
        )
    return table


def summary_text(report: Report) -> str:
    counts = report.counts()
    n = len(report)
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    return f"{plural(n, 'point')}: {parts}"


def overall_status(counts: dict[str, int]) -> str:
    return worst(s for s, n in counts.items() if n)


@contextmanager
def progress_bar(out: IO[str], *, enabled: bool, total: int, minimum: int = 100_000):
    """A transient rich progress bar for long runs on a terminal; a no-op otherwise."""
    if not enabled or total < minimum:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=console(out), transient=True) as bar:
        task = bar.add_task("autodiff", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def console(out: IO[str]):
    from rich.console import Console

    return Console(file=out, highlight=False, soft_wrap=False)


def write_table(report: Report, out: IO[str], layout: Layout = Layout()) -> None:
    from rich.text import Text

    con = console(out)
    heading = Text.assemble(
        (COMMANDS[report.command].title, "bold"),
        " of ",
        (report.expression, "bold cyan"),
        ("  variables: ", "dim"),
        ", ".join(report.variables) or "none",
    )
    con.print(heading)
    if report.tangent is not None:
        tangent = ", ".join(f"{v}={short_number(t)}" for v, t in zip(report.variables, report.tangent))
        con.print(Text.assemble(("tangent t: ", "dim"), tangent))
    if report.cotangent is not None:
        con.print(Text.assemble(("cotangent c: ", "dim"), ", ".join(map(short_number, report.cotangent))))
    if report.wrt:
        con.print(Text.assemble(("with respect to: ", "dim"), ", ".join(report.wrt)))
    if report.order is not None:
        note = "  (c_k: the k-th derivative along t, divided by k!)"
        con.print(Text.assemble(("order: ", "dim"), str(report.order), (note, "dim")))
    if layout.summary or len(report) > TABLE_POINTS:
        con.print()
        con.print(_summary_table(report))
    else:
        for i in range(len(report)):
            con.print()
            con.print(_point_table(report, report.result(i)))
    tol = report.tolerance
    con.print()
    con.print(
        Text.assemble(
            (summary_text(report), STYLE[overall_status(report.counts())]),
            (f"  ({report.dtype}, rtol={tol.rtol:g}, atol={tol.atol:g})", "dim"),
        )
    )
    if not report.precise:
        con.print(Text(_float64_footer(report), style="dim"))


def _float64_footer(report: Report) -> str:
    """Which points had the float64 reference: generated ones, or (past PRECISE_POINTS) hand-given ones."""
    recomputed = f", 30 digits at {report.recomputed} of them" if report.recomputed else ""
    if report.by_hand >= len(report):
        where = f"at these {plural(len(report), 'point')} given by hand (more than {PRECISE_POINTS})"
    else:
        where = "at generated points"
    return f"reference in float64 {where}{recomputed} (--precise: 30 digits everywhere)"


# -- batch: records as they finish, then a summary ------------------------------------


def record_dict(record) -> dict[str, Any]:
    head = {"case": record.case.name, "check": record.check, "file": record.case.file}
    if record.error is not None:
        return {**head, "error": record.error, "status": "error", "ok": False}
    doc = {**head, **report_dict(record.report), "status": record.status}
    doc["ok"] = record.ok
    if record.expect_failures:
        doc["expect_failures"] = json_safe(record.expect_failures)
    return doc


def _record_errors(record) -> tuple[str, str]:
    if record.report is None:
        return "-", "-"
    s = record.report.summary()
    return tuple(plain_number(s[k]["value"]) if s[k] else "-" for k in ("max_abs_err", "max_rel_err"))


def record_fields(record, missing: str = "-") -> list[str]:
    """status, case, check, points, max_abs_err, max_rel_err, message (``missing``: for no number)."""
    points = str(len(record.report)) if record.report is not None else missing
    errors = [missing if e == "-" else e for e in _record_errors(record)]
    return [record.status, record.case.name, record.check or "-", points, *errors, record.message]


RECORD_COLUMNS = ["status", "case", "check", "points", "max_abs_err", "max_rel_err", "message"]


def batch_counts(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def batch_summary_text(records, cases: int, interrupted: bool) -> str:
    counts = batch_counts(records)
    parts = ", ".join(f"{counts[s]} {s}" for s in (*STATUSES, "error") if counts.get(s))
    tail = " (interrupted)" if interrupted else ""
    return f"{plural(len(records), 'check')} of {plural(cases, 'case')}: {parts or 'nothing run'}{tail}"


def junit_xml(records, seconds: float) -> str:
    """One testcase per case x check: mismatches are failures, case errors are errors."""
    import xml.etree.ElementTree as ET

    counts = batch_counts(records)
    suites = ET.Element("testsuites", name="diffcli")
    suite = ET.SubElement(
        suites, "testsuite", name="diffcli batch", tests=str(len(records)),
        failures=str(counts.get(MISMATCH, 0)), errors=str(counts.get("error", 0)),
        skipped=str(counts.get(UNKNOWN, 0)), time=f"{seconds:.3f}",
    )  # fmt: skip
    for r in records:
        name = f"{r.case.name} [{r.check}]" if r.check else r.case.name
        case = ET.SubElement(suite, "testcase", classname=r.case.file, name=name, time=f"{r.seconds:.3f}")
        if r.error is not None:
            ET.SubElement(case, "error", message=r.error.splitlines()[0], type="error").text = r.error
        elif r.status == MISMATCH:
            message = r.message or f"{r.report.counts().get(MISMATCH, 0)} of {plural(len(r.report), 'point')} mismatch"
            failures = {"expect_failures": r.expect_failures} if r.expect_failures else {}
            detail = json.dumps(json_safe({**r.report.summary(), **failures}), allow_nan=False)
            ET.SubElement(case, "failure", message=message, type="mismatch").text = detail
        elif r.status == UNKNOWN:  # not checked: the reference could not be computed
            unknown = r.report.counts().get(UNKNOWN, 0)
            message = f"{plural(unknown, 'point')} could not be checked: {_top_reason(r.report)}"
            ET.SubElement(case, "skipped", message=message)
        elif r.status == UNDEFINED:
            undefined = r.report.counts().get(UNDEFINED, 0)
            text = f"{plural(undefined, 'point')} without a reference: {_top_reason(r.report)}"
            ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


#: A formula in a failure's text is cut after this many characters (the JSON output has it whole).
FORMULA_CHARS = 400


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_title(record) -> str:
    """``name [check]: status``, as JUnit names a testcase."""
    return f"{record.case.name} [{record.check}]: {record.status}" if record.check else f"{record.case.name}: error"


def failure_text(record, limit: int = 5, head: bool = True) -> str:
    """A failing record in words, for a test report or an annotation: what failed and where
    (with ``head``), then the expression, the reference's formulas, golden values missed,
    and the worst points."""
    case = record.case
    lines = [f"{record_title(record)} ({case.where})"] if head else []
    if record.error is not None:
        return "\n".join([*lines, record.error])
    report = record.report
    lines.append(f"expression: {case.expr}")
    from diffcli.plot import shown_entries

    formulas = np.asarray(report.symbolic, dtype=object).reshape(-1)
    shown = shown_entries(report.command, report.variables, report.outputs, report.extra)
    for k, label in shown[: 2 * limit]:
        formula = _clipped(str(formulas[k]), FORMULA_CHARS)
        lines.append(f"reference: {label} = {formula}" if label else f"reference: {formula}")
    if len(shown) > 2 * limit:
        lines.append(f"reference: and {len(shown) - 2 * limit} more (--format json has them all)")
    for failure in record.expect_failures:
        point = point_text(report.variables, report.points[failure["index"]])
        lines.append(f"expect.{record.check} at {point}: expected {failure['expected']}, found {failure['found']}")
    counts = report.counts()
    if record.status != MISMATCH or not counts.get(MISMATCH):
        reason = record.message if record.status != MISMATCH else ""
        return "\n".join(lines + ([reason] if reason else []))
    # the points where torch parts from the reference (a missed golden value alone is said above)
    worst = [w for w in report.worst(limit) if not w.abs_err <= tolerance_of(w.reference, report.tolerance)]
    if not worst:
        return "\n".join(lines)
    lines.append(f"{counts[MISMATCH]} of {plural(len(report), 'point')} mismatch; the worst:")
    columns = ("point", "entry", "autodiff", "reference", "abs err", "rel err", "status")
    rows = [columns] + [
        (point_text(report.variables, list(w.point.values())) or "-", w.entry or "f", plain_number(w.autodiff),
         plain_number(w.reference), f"{w.abs_err:.3g}", f"{w.rel_err:.3g}", w.status)
        for w in worst
    ]  # fmt: skip
    widths = [max(len(row[j]) for row in rows) for j in range(len(columns))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def github_annotation(record, workspace: str | None = None) -> str | None:
    """A GitHub Actions workflow command for a failing record (None for a passing one):
    ``::error file=F,line=L,title=T::MESSAGE``, escaped as GitHub's toolkit escapes them;
    ``file`` relative to ``workspace`` (the checkout) when it lies inside it."""
    if record.ok:
        return None
    import os

    path: str | None = record.case.file
    if path.startswith("<"):  # <stdin>: no file to mark
        path = None
    elif workspace and os.path.isabs(workspace) and path.startswith(os.path.join(workspace, "")):
        path = os.path.relpath(path, workspace)
    properties = {"file": path, "line": record.case.line if path else None, "title": f"diffcli: {record_title(record)}"}
    fields = ",".join(f"{k}={_escape_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::error {fields}::{_escape_data(failure_text(record, head=False))}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


#: How ``batch --annotations`` reports each failing record (see commands.ANNOTATIONS).
ANNOTATIONS = {"github": github_annotation, "none": None}


def _top_reason(report: Report) -> str:
    return report.top_reason() or "no reason recorded"


def write_atomically(path: str, data: str | bytes) -> None:
    """Readers (and an interrupted run) only ever see a whole file: text (UTF-8) or bytes."""
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.isdir(path) or path.endswith(os.sep):
            raise IsADirectoryError
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".diffcli-", suffix=os.path.splitext(path)[1])
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            mask = os.umask(0o022)  # mkstemp's file is private; the report is as any file the user writes
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise DiffcliError(f"cannot write {path}: {_why_not(exc)}") from None


_WHY_NOT = {
    IsADirectoryError: "it is a directory",
    FileNotFoundError: "no such directory",
    NotADirectoryError: "a part of the path is not a directory",
    PermissionError: "permission denied",
}


def _why_not(exc: OSError) -> str:
    """Why a file cannot be written, in words (errno says 'No such file' of a missing directory)."""
    return _WHY_NOT.get(type(exc)) or exc.strerror or type(exc).__name__


class BatchWriter:
    """Writes each record as it finishes, in the chosen format (see :data:`FORMATS`)."""

    def __init__(
        self, fmt: str, out: IO[str], junit: str | None, html: str | None = None, *, progress: bool, total: int,
        files: list[str] | None = None, annotations: str = "none", err: IO[str] | None = None,
        workspace: str | None = None,
    ):  # fmt: skip
        import sys
        import time

        self.format, self.out, self.junit = FORMATS[fmt], out, junit
        # Annotations go to stderr: GitHub reads workflow commands there too, and stdout stays the format's.
        self.annotate, self.err, self.workspace = ANNOTATIONS[annotations], err or sys.stderr, workspace
        self.html = None
        if html:
            from diffcli.htmlreport import HtmlReport

            self.html = HtmlReport(html, files or [])
        self.records: list = []
        self.cases = total
        self.started = time.perf_counter()
        self._progress = self._task = None
        if progress and fmt == "table" and total:
            from rich.progress import Progress

            self._progress = Progress(console=console(out), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("checking", total=total)
        self.format.batch_start(self)
        if junit:
            write_atomically(junit, junit_xml([], 0.0))
        if self.html is not None:
            self.html.write([], total, interrupted=False, seconds=0.0, done=False)

    def elapsed(self) -> float:
        import time

        return time.perf_counter() - self.started

    def add(self, record) -> None:
        self.records.append(record)
        self.format.batch_record(self, record)
        self.out.flush()
        note = self.annotate(record, self.workspace) if self.annotate else None
        if note:
            print(note, file=self.err, flush=True)
        if self.junit:
            write_atomically(self.junit, junit_xml(self.records, self.elapsed()))
        if self.html is not None:
            self.html.add(record)
            if self.html.due():
                self.html.write(self.records, self.cases, interrupted=False, seconds=self.elapsed(), done=False)

    def case_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def close(self, interrupted: bool) -> None:
        if self._progress is not None:
            self._progress.stop()
        self.format.batch_end(self, interrupted)
        self.out.flush()
        if self.junit:
            write_atomically(self.junit, junit_xml(self.records, self.elapsed()))
        if self.html is not None:
            self.html.write(self.records, self.cases, interrupted, self.elapsed())


# -- the formats: a single report, and a batch's records as they finish --------------


class Format:
    """An output format. A batch writes through ``batch_start``, ``batch_record`` for
    each record as it finishes, and ``batch_end``; each may write nothing."""

    def report(self, report: Report, out: IO[str], layout: Layout) -> None:
        raise NotImplementedError

    def batch_start(self, writer: BatchWriter) -> None:
        pass

    def batch_record(self, writer: BatchWriter, record) -> None:
        pass

    def batch_end(self, writer: BatchWriter, interrupted: bool) -> None:
        pass

    def plot(self, reports: list[Report], path: str, out: IO[str]) -> None:
        """The checks behind a picture written to ``path``: each one's summary."""
        for report in reports:
            self.report(report, out, Layout(summary=True))


class TableFormat(Format):
    """rich tables: one per point, or the summary; a batch's records at the end."""

    def report(self, report: Report, out: IO[str], layout: Layout) -> None:
        write_table(report, out, layout)

    def batch_end(self, writer: BatchWriter, interrupted: bool) -> None:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
        for column in ("status", "case", "check", "points", "max abs err", "max rel err"):
            table.add_column(column, justify="right" if column in ("points", "max abs err", "max rel err") else "left",
                             overflow="fold")  # fmt: skip
        for record in writer.records:
            status, case, check, points, abs_err, rel_err, _ = record_fields(record)
            errors = [short_error(e) for e in (abs_err, rel_err)]
            table.add_row(Text(status, style=STYLE.get(status, "bold magenta")), case, check, points, *errors)
        con = console(writer.out)
        con.print(table)
        for (_, status, why), records in itertools.groupby(
            (r for r in writer.records if r.status in ("error", UNDEFINED, UNKNOWN) or r.expect_failures), key=_why
        ):  # a case that does not parse fails every check alike: one line, its checks listed
            records = list(records)
            checks = ", ".join(r.check for r in records if r.check)
            where = f"{records[0].case.name} [{checks}]" if checks else records[0].case.name
            # soft-wrapped: the terminal folds a long note, rich would break it mid-phrase at 80 columns
            note = Text.assemble((f"{status} ", STYLE.get(status, "bold magenta")), f"{where}: ", why)
            con.print(note, soft_wrap=True)
        counts = batch_counts(writer.records)
        status = "error" if counts.get("error") else overall_status(counts)
        text = f"{batch_summary_text(writer.records, writer.cases, interrupted)} in {writer.elapsed():.1f} s"
        con.print(Text(text, style=STYLE.get(status, "bold magenta")))


class PlainFormat(Format):
    """Tab-separated lines; a batch's summary is a '# ...' line."""

    def report(self, report: Report, out: IO[str], layout: Layout) -> None:
        write_plain(report, out, layout)

    def batch_record(self, writer: BatchWriter, record) -> None:
        writer.out.write("\t".join(record_fields(record)) + "\n")

    def batch_end(self, writer: BatchWriter, interrupted: bool) -> None:
        writer.out.write("# " + batch_summary_text(writer.records, writer.cases, interrupted) + "\n")


class JsonFormat(Format):
    """One JSON document; a batch is JSON Lines, a record per line, then the summary."""

    def report(self, report: Report, out: IO[str], layout: Layout) -> None:
        write_json(report, out, layout)

    def batch_record(self, writer: BatchWriter, record) -> None:
        writer.out.write(json.dumps(record_dict(record), allow_nan=False) + "\n")

    def batch_end(self, writer: BatchWriter, interrupted: bool) -> None:
        counts = batch_counts(writer.records)
        ok = not interrupted and not counts.get(MISMATCH) and not counts.get("error")
        summary = {"cases": writer.cases, "records": len(writer.records), "counts": counts,
                   "interrupted": interrupted, "seconds": round(writer.elapsed(), 3)}  # fmt: skip
        writer.out.write(json.dumps({"summary": summary, "ok": ok}, allow_nan=False) + "\n")

    def plot(self, reports: list[Report], path: str, out: IO[str]) -> None:
        checks = [report_dict(report, Layout(summary=True)) for report in reports]
        doc = {"plot": path, "ok": all(report.ok for report in reports), "checks": checks}
        json.dump(doc, out, allow_nan=False, indent=2)
        out.write("\n")


class CsvFormat(Format):
    """A header and a row per point (or per record); a missing number is an empty cell."""

    def report(self, report: Report, out: IO[str], layout: Layout) -> None:
        write_csv(report, out, layout)

    def batch_start(self, writer: BatchWriter) -> None:
        csv.writer(writer.out, lineterminator="\n").writerow(RECORD_COLUMNS)

    def batch_record(self, writer: BatchWriter, record) -> None:
        csv.writer(writer.out, lineterminator="\n").writerow(record_fields(record, missing=""))

    def plot(self, reports: list[Report], path: str, out: IO[str]) -> None:
        rows = [summary_fields(report) for report in reports]
        csv.writer(out, lineterminator="\n").writerows([list(rows[0]), *(list(row.values()) for row in rows)])


#: The formats, by the names of :data:`diffcli.commands.FORMATS`.
FORMATS: dict[str, Format] = {"table": TableFormat(), "plain": PlainFormat(), "json": JsonFormat(), "csv": CsvFormat()}


def write(report: Report, fmt: str, out: IO[str], layout: Layout = Layout()) -> None:
    FORMATS[fmt].report(report, out, layout)


def write_plot(reports: list[Report], path: str, fmt: str, out: IO[str]) -> None:
    FORMATS[fmt].plot(reports, path, out)


def _why(record) -> tuple[int, str, str]:
    """(case, status, reason): what groups a case's records in the table's notes."""
    why = record.message or _top_reason(record.report)
    if why.startswith("∂"):  # which entry it is about differs between checks; the reason does not
        why = why.split(": ", 1)[-1]
    return id(record.case), record.status, why


def short_error(text: str) -> str:
    return text if text == "-" else f"{float(text):.1e}"
