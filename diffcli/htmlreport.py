"""A batch as one self-contained HTML page (``diffcli batch --html report.html``).

The page opens offline and asks for nothing: its style is inline, its curves are
inline SVG, its formulas MathML (browsers render MathML Core natively), and its
filter buttons are radio inputs that CSS alone acts on (``:has``), so it runs no
script at all; a Content-Security-Policy forbids any request besides.

A record (case x check) is one ``<tbody class="record" data-status=...>``: a row with
its status, case, check, points, largest errors and expression, then its details:
why it is not ok, its formulas, for a mismatch its worst points, and for a case of
one variable a curve like ``diffcli plot``'s. Each record is laid out once, when it
finishes; the page is those pieces between a head and a foot.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from diffcli import __version__
from diffcli.commands import COMMANDS
from diffcli.plot import (
    ENTRY_COLOURS,
    MISMATCH_COLOUR,
    REFERENCE_COLOUR,
    UNDEFINED_COLOUR,
    robust_limits,
    runs,
    shown_entries,
)
from diffcli.verdict import MISMATCH, OK, STATUSES, UNDEFINED, UNKNOWN, element_errors

#: Statuses a record can have, in the order the filters list them.
RECORD_STATUSES = (*STATUSES, "error")
#: Text colours of the statuses (dark enough on white for WCAG AA), and their badges' fills.
STATUS_COLOURS = {OK: "#006B3C", UNDEFINED: "#8A5A00", UNKNOWN: "#0B5CAD", MISMATCH: "#B3261E", "error": "#6B2FA3"}
#: Formulas typeset per record, and worst points listed per failing record.
FORMULAS, WORST = 12, 5
#: Points a curve draws at most (evenly thinned beyond).
CURVE_POINTS = 400
#: Seconds between rewrites of the page while a batch runs (it is always written at the end).
REWRITE_SECONDS = 2.0

_CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
.summary { font-size: 1.1rem; font-weight: 600; margin: .2rem 0; }
.meta { color: #555; font-size: .85rem; margin: .2rem 0 .8rem; }
.interrupted { background: #FFF4CE; border-left: 4px solid #8A5A00; padding: .4rem .8rem; }
nav.filters { display: flex; flex-wrap: wrap; gap: .4rem; margin: .6rem 0 1rem; }
nav.filters input { position: absolute; opacity: 0; }
nav.filters label { border: 1px solid #999; border-radius: 1rem; padding: .2rem .8rem; cursor: pointer; }
nav.filters input:checked + label { background: #1b1b1b; color: #fff; border-color: #1b1b1b; }
nav.filters input:focus-visible + label { outline: 2px solid #0072B2; outline-offset: 2px; }
table.records { border-collapse: collapse; width: 100%; font-size: .9rem; }
table.records > thead th { text-align: left; border-bottom: 2px solid #333; padding: .3rem .5rem; white-space: nowrap; }
tbody.record { border-bottom: 1px solid #ccc; }
tbody.record td { padding: .35rem .5rem; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { font-weight: 700; }
.where { color: #666; font-size: .8rem; }
.message { margin: .2rem 0 .4rem; }
code { font-size: .85rem; overflow-wrap: anywhere; }
details > summary { cursor: pointer; color: #333; }
table.formulas td, table.worst td, table.worst th { padding: .15rem .6rem; text-align: left; }
table.worst { border-collapse: collapse; margin: .3rem 0; }
table.worst th { border-bottom: 1px solid #999; font-weight: 600; }
math { font-size: 1.05rem; display: inline math; math-style: normal; }
svg.curve { display: block; margin: .4rem 0; max-width: 100%; height: auto; }
"""


def _filter_css() -> str:
    return "\n".join(
        f'body:has(#show-{s}:checked) tbody.record:not([data-status="{s}"]) {{ display: none; }}'
        for s in RECORD_STATUSES
    ) + "\n" + "\n".join(f".status-{s} {{ color: {c}; }}" for s, c in STATUS_COLOURS.items())  # fmt: skip


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _full(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else str(x)


def _flat(nested) -> list:
    if isinstance(nested, (list, tuple)):
        return [leaf for item in nested for leaf in _flat(item)]
    return [nested]


def _formulas(record) -> str:
    report = record.report
    shown = shown_entries(report.command, report.variables, report.outputs, report.extra)
    texts = _flat(report.symbolic)
    maths = _flat(record.mathml["formulas"]) if record.mathml else [None] * len(texts)
    rows = []
    for k, label in shown[:FORMULAS]:
        text = texts[k] if k < len(texts) else ""
        body = maths[k] if k < len(maths) and maths[k] else f"<code>{_e(text)}</code>"
        rows.append(f"<tr><td>{_e(label)} =</td><td>{body}</td></tr>")
    more = (
        f"<p class='where'>and {len(shown) - FORMULAS} more (the JSON Lines have all)</p>"
        if len(shown) > FORMULAS
        else ""
    )
    return f"<table class='formulas'>{''.join(rows)}</table>{more}"


def _worst(record) -> str:
    """The points with the largest errors of a failing record, the worst element of each."""
    worst = record.report.worst(WORST)
    if not worst:
        return ""
    body = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            _e(", ".join(f"{v}={c:.6g}" for v, c in w.point.items()) or "–"), _e(w.entry),
            f"<code>{_e(_full(w.autodiff))}</code>", f"<code>{_e(_full(w.reference))}</code>",
            _e(_number(w.abs_err)), _e(_number(w.rel_err)),
        )) + "</tr>"
        for w in worst
    )  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in ("point", "entry", "autodiff", "reference", "abs err", "rel err"))
    return f"<table class='worst'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def curve_svg(report, width: int = 420, height: int = 150) -> str:
    """A small inline SVG of a one-variable check: autodiff solid, the reference dashed,
    mismatches crossed, undefined stretches grey (as ``diffcli plot`` draws them)."""
    if len(report.variables) != 1 or len(report) < 2:
        return ""
    shown = shown_entries(report.command, report.variables, report.outputs, report.extra)[: len(ENTRY_COLOURS)]
    index = [k for k, _ in shown]
    points = len(report)
    order = np.argsort(report.points[:, 0], kind="stable")
    if points > CURVE_POINTS:
        order = order[np.linspace(0, points - 1, CURVE_POINTS).round().astype(int)]
    x = report.points[order, 0]
    a = np.asarray(report.autodiff, dtype=np.float64).reshape(points, -1)[order][:, index]
    r = np.asarray(report.reference, dtype=np.float64).reshape(points, -1)[order][:, index]
    status = report.verdicts.status[order]
    limits = robust_limits(np.concatenate([a.ravel(), r.ravel()]))
    if x[-1] == x[0] or limits is None:
        return ""
    left, right, top, bottom = 52, width - 8, 8, height - 22
    y0, y1 = limits

    def px(v):
        return left + (v - x[0]) / (x[-1] - x[0]) * (right - left)

    def py(v):
        return bottom - (np.clip(v, y0, y1) - y0) / (y1 - y0) * (bottom - top)

    def path(ys) -> str:
        parts, pen = [], "M"
        for xv, yv in zip(x, ys):
            if not math.isfinite(yv):
                pen = "M"
                continue
            parts.append(f"{pen}{px(xv):.1f},{py(yv):.1f}")
            pen = "L"
        return " ".join(parts)

    out = [f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(COMMANDS[report.command].title)} along '
           f'{_e(report.variables[0])}">']  # fmt: skip
    edges = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2, [x[-1]]])
    for start, stop in runs(status == UNDEFINED):
        x0, x1 = px(edges[start]), px(edges[stop])
        out.append(f'<rect class="undefined" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{bottom - top}" fill="{UNDEFINED_COLOUR}"><title>undefined</title></rect>')  # fmt: skip
    out.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#888"/>')
    for j in range(len(index)):
        out.append(f'<path class="autodiff" d="{path(a[:, j])}" fill="none" stroke="{ENTRY_COLOURS[j]}" '
                   'stroke-width="2"/>')  # fmt: skip
        out.append(f'<path class="reference" d="{path(r[:, j])}" fill="none" stroke="{REFERENCE_COLOUR}" '
                   'stroke-width="1" stroke-dasharray="4 3"/>')  # fmt: skip
    _, _, close = element_errors(a, r, report.tolerance)
    for i, j in np.argwhere((status == MISMATCH)[:, None] & ~close):
        yv = a[i, j] if math.isfinite(a[i, j]) else r[i, j]
        cx, cy = px(x[i]), py(yv if math.isfinite(yv) else y1)
        out.append(f'<path class="mismatch" d="M{cx - 4:.1f},{cy - 4:.1f} L{cx + 4:.1f},{cy + 4:.1f} '
                   f'M{cx - 4:.1f},{cy + 4:.1f} L{cx + 4:.1f},{cy - 4:.1f}" stroke="{MISMATCH_COLOUR}" '
                   'stroke-width="2.5"/>')  # fmt: skip
    text = 'font-size="10" fill="#444"'
    out += [
        f'<text x="{left - 4}" y="{top + 9}" text-anchor="end" {text}>{_e(_number(y1))}</text>',
        f'<text x="{left - 4}" y="{bottom}" text-anchor="end" {text}>{_e(_number(y0))}</text>',
        f'<text x="{left}" y="{height - 6}" {text}>{_e(_number(x[0]))}</text>',
        f'<text x="{right}" y="{height - 6}" text-anchor="end" {text}>{_e(_number(x[-1]))}</text>',
        f'<text x="{(left + right) / 2:.0f}" y="{height - 6}" text-anchor="middle" {text}>'
        f"{_e(report.variables[0])}</text>",
        "</svg>",
    ]  # fmt: skip
    return "".join(out)


def _expression(record) -> str:
    maths = record.mathml["expression"] if record.mathml else None
    if isinstance(maths, list):  # a vector's components
        if all(maths):
            opening = '<math display="block">'
            cells = "".join(f"<mtd>{m.removeprefix(opening).removesuffix('</math>')}</mtd>" for m in maths)
            return f'<math display="block"><mrow><mo>[</mo><mtable><mtr>{cells}</mtr></mtable><mo>]</mo></mrow></math>'
        maths = None
    return maths or f"<code>{_e(record.case.expr)}</code>"


def record_html(record, number: int) -> str:
    """One record as a ``<tbody>``: its row and its details."""
    from diffcli.render import record_fields

    status, case, check, points, abs_err, rel_err, message = record_fields(record)
    where = record.case.where
    failing = status in (MISMATCH, "error")
    numbers = [_number(float(e)) if e != "-" else "–" for e in (abs_err, rel_err)]
    row = (
        f'<tr class="row"><td class="status"><span class="badge status-{status}">{_e(status)}</span></td>'
        f'<td class="case">{_e(case)}<div class="where">{_e(where)}</div></td><td class="check">{_e(check)}</td>'
        f'<td class="num points">{_e(points)}</td><td class="num">{_e(numbers[0])}</td>'
        f'<td class="num">{_e(numbers[1])}</td><td class="expression">{_expression(record)}</td></tr>'
    )
    parts = []
    if message:
        parts.append(f'<p class="message status-{status}">{_e(message)}</p>')
    if record.report is not None:
        inner = _formulas(record) + (_worst(record) if failing else "") + curve_svg(record.report)
        label = (
            "formulas"
            + (", worst points" if failing else "")
            + (", curve" if len(record.report.variables) == 1 else "")
        )
        parts.append(f"<details{' open' if status != OK else ''}><summary>{label}</summary>{inner}</details>")
    detail = f'<tr class="detail"><td></td><td colspan="6">{"".join(parts)}</td></tr>' if parts else ""
    return f'<tbody class="record" id="record-{number}" data-status="{_e(status)}">{row}{detail}</tbody>\n'


class HtmlReport:
    """A batch's page: each record laid out as it finishes, the page written atomically
    (at the start, every few seconds while records come in, and at the end)."""

    def __init__(self, path: str, files: Sequence[str] = ()):
        self.path, self.files = path, list(files)
        self.pieces: list[str] = []  # each record laid out once, when it finishes
        self.started = time.time()
        self._written = 0.0

    def add(self, record) -> None:
        self.pieces.append(record_html(record, len(self.pieces) + 1))

    def page(self, records: Sequence, cases: int, interrupted: bool, seconds: float, done: bool = True) -> str:
        from diffcli.render import batch_counts, batch_summary_text

        counts = {s: batch_counts(records).get(s, 0) for s in RECORD_STATUSES}
        status = next((s for s in reversed(RECORD_STATUSES) if counts[s]), OK)
        summary = batch_summary_text(records, cases, interrupted=False)  # (the banner says interrupted)
        state = ""
        if interrupted:
            state = '<p class="interrupted">Interrupted: this page holds the checks that finished before the stop.</p>'
        elif not done:
            state = '<p class="interrupted">Running: this page is rewritten as checks finish.</p>'
        filters = [("all", len(records))] + [(s, counts[s]) for s in RECORD_STATUSES if counts[s]]
        nav = "".join(
            f'<input type="radio" name="show" id="show-{s}" value="{s}"{" checked" if s == "all" else ""}>'
            f'<label for="show-{s}" class="{"" if s == "all" else f"status-{s}"}">{s} <b>{n}</b></label>'
            for s, n in filters
        )  # fmt: skip
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started))
        meta = f"{_e(', '.join(self.files))} · started {started} · {seconds:.1f} s · diffcli {__version__}"
        head = "".join(f"<th>{h}</th>" for h in ("status", "case", "check", "points", "max abs err", "max rel err",
                                                  "expression"))  # fmt: skip
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="diffcli {__version__}">\n'
            f"<title>diffcli: {_e(summary)}{' (interrupted)' if interrupted else ''}</title>\n"
            f"<style>{_CSS}{_filter_css()}</style></head>\n<body>\n<header><h1>diffcli batch report</h1>\n"
            f'<p class="summary status-{status}" id="summary">{_e(summary)}</p>\n<p class="meta">{meta}</p>\n'
            f'{state}<nav class="filters" aria-label="show only">{nav}</nav></header>\n<main>\n'
            f'<table class="records"><thead><tr>{head}</tr></thead>\n{"".join(self.pieces)}</table>\n'
            "</main>\n</body></html>\n"
        )

    def write(self, records: Sequence, cases: int, interrupted: bool, seconds: float, done: bool = True) -> None:
        from diffcli.render import write_atomically

        write_atomically(self.path, self.page(records, cases, interrupted, seconds, done))
        self._written = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._written >= REWRITE_SECONDS
