"""Expression files: TOML suites and plain text lists, read into cases.

A bad case (unknown key, wrong type, no expression) becomes a case carrying
its error, so the rest of the file still runs; only a file that cannot be read
at all (not TOML) is an error for the whole batch.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from diffcli.commands import COMMANDS, MODES
from diffcli.errors import DiffcliError, plural

_CASE_KEYS = {"name", "expr", "vars", "let", "at", "sample", "tangent", "cotangent", "mode", "wrt", "order", "expect",
              "checks", "rtol", "atol"}  # fmt: skip
_DEFAULT_KEYS = {"checks", "rtol", "atol", "mode", "wrt", "order"}
_SAMPLE_KEYS = {"box", "n", "seed"}

#: Points a case's `sample` draws when it gives no `n`.
CASE_SAMPLES = 10


@dataclass
class Case:
    name: str
    expr: str
    file: str
    line: int | None = None  # its line in the file: a text list's line, a TOML case's [[case]] header
    variables: list[str] | None = None
    let: dict[str, str] = field(default_factory=dict)
    at: list[Any] = field(default_factory=list)
    sample: dict[str, Any] | None = None
    tangent: Any = None
    cotangent: Any = None
    mode: str = "auto"
    wrt: str | list[str] | None = None  # diff: "x:2,y" or ["x", "x", "y"]
    order: int | None = None  # taylor
    expect: dict[str, list] = field(default_factory=dict)
    checks: tuple[str, ...] | None = None
    rtol: float | None = None
    atol: float | None = None
    error: str | None = None  # why this case cannot run

    @property
    def where(self) -> str:
        """``file:line`` (or the file alone when the line is unknown)."""
        return f"{self.file}:{self.line}" if self.line else self.file


class CaseError(Exception):
    """A problem with one case: reported for that case, the others still run."""


#: TOML's names for what tomllib returns.
_TOML_TYPES = {str: "a string", int: "an integer", float: "a float", bool: "a boolean", list: "an array",
               dict: "a table"}  # fmt: skip


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _expect_type(where: str, key: str, value: Any, kind: str) -> None:
    ok = {
        "string": isinstance(value, str),
        "number": _is_number(value),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "table": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    if not ok:
        article = "an" if kind[0] in "aeiou" else "a"
        raise CaseError(f"{where}: '{key}' must be {article} {kind}, not {_TOML_TYPES.get(type(value), 'that')}")


def _numbers(value: Any) -> bool:
    """A number, or a (nested) array of numbers: a golden value."""
    return _is_number(value) or (isinstance(value, list) and all(_numbers(v) for v in value))


def _number_or_text(where: str, key: str, value: Any) -> None:
    if not (_is_number(value) or isinstance(value, str)):
        raise CaseError(f"{where}: '{key}' must be a number or an expression string, not {type(value).__name__}")


def _checks(where: str, value: Any) -> tuple[str, ...]:
    _expect_type(where, "checks", value, "array")
    for check in value:
        if check not in COMMANDS:
            raise CaseError(f"{where}: unknown check {check!r} in 'checks' (choose from {', '.join(COMMANDS)})")
    return tuple(value)


def _unknown(where: str, table: dict, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise CaseError(f"{where}: unknown key '{extra[0]}' (allowed: {', '.join(sorted(allowed))})")


def _point_table(where: str, key: str, value: Any) -> dict:
    _expect_type(where, key, value, "table")
    for name, v in value.items():
        _number_or_text(where, f"{key}.{name}", v)
    return value


def _sample(where: str, value: Any) -> dict:
    _expect_type(where, "sample", value, "table")
    _unknown(f"{where} sample", value, _SAMPLE_KEYS)
    if "box" not in value:
        raise CaseError(f"{where}: 'sample' needs a 'box' (e.g. box = {{ x = [0, 1] }})")
    _expect_type(where, "sample.box", value["box"], "table")
    for name, bounds in value["box"].items():
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise CaseError(f"{where}: 'sample.box.{name}' must be [low, high]")
        for b in bounds:
            _number_or_text(where, f"sample.box.{name}", b)
    for key in ("n", "seed"):
        if key in value:
            _expect_type(where, f"sample.{key}", value[key], "integer")
    return value


def _case(raw: Any, defaults: dict, file: str, position: int, line: int | None) -> Case:
    where = f"{file}: case {position}"
    if not isinstance(raw, dict):
        raise CaseError(f"{where}: must be a table")
    if isinstance(raw.get("name"), str):
        where = f"{file}: case {position} ({raw['name']!r})"
    _unknown(where, raw, _CASE_KEYS)
    if "expr" not in raw:
        raise CaseError(f"{where}: missing 'expr'")
    _expect_type(where, "expr", raw["expr"], "string")
    name = raw.get("name", raw["expr"])
    _expect_type(where, "name", name, "string")
    case = Case(name=str(name), expr=raw["expr"], file=file, line=line)
    if "vars" in raw:
        _expect_type(where, "vars", raw["vars"], "array")
        for v in raw["vars"]:
            _expect_type(where, "vars", v, "string")
        case.variables = list(raw["vars"])
    if "let" in raw:
        _expect_type(where, "let", raw["let"], "table")
        for key, text in raw["let"].items():
            _expect_type(where, f"let.{key}", text, "string")
        case.let = dict(raw["let"])
    if "at" in raw:
        _expect_type(where, "at", raw["at"], "array")
        case.at = [_point_table(where, f"at[{i}]", p) for i, p in enumerate(raw["at"])]
    if "sample" in raw:
        case.sample = _sample(where, raw["sample"])
    for key in ("tangent", "cotangent"):
        if key in raw:
            vector = raw[key]
            if isinstance(vector, list):
                for t in vector:
                    _number_or_text(where, key, t)
            else:
                _point_table(where, key, vector)
            setattr(case, key, vector)
    if "expect" in raw:
        _expect_type(where, "expect", raw["expect"], "table")
        for check, values in raw["expect"].items():
            if check not in COMMANDS:
                raise CaseError(f"{where}: unknown check {check!r} in 'expect'")
            _expect_type(where, f"expect.{check}", values, "array")
            if len(values) != len(case.at):
                given, points = plural(len(values), "value"), plural(len(case.at), "point")
                raise CaseError(f"{where}: 'expect.{check}' has {given} for {points} in 'at'")
            for i, value in enumerate(values):
                if not _numbers(value):
                    raise CaseError(f"{where}: 'expect.{check}[{i}]' must be a number or an array of numbers")
        case.expect = dict(raw["expect"])
    merged = {**defaults, **{k: raw[k] for k in _DEFAULT_KEYS if k in raw}}
    if "mode" in merged:
        if merged["mode"] not in MODES:
            raise CaseError(f"{where}: 'mode' must be one of {', '.join(MODES)}")
        case.mode = merged["mode"]
    if "wrt" in merged:
        wrt = merged["wrt"]
        if not (isinstance(wrt, str) or (isinstance(wrt, list) and all(isinstance(v, str) for v in wrt))):
            raise CaseError(f"{where}: 'wrt' must be a string (\"x:2,y\") or an array of variable names")
        case.wrt = wrt
    if "order" in merged:
        _expect_type(where, "order", merged["order"], "integer")
        case.order = merged["order"]
    if "checks" in merged:
        case.checks = _checks(where, merged["checks"])
    for key in ("rtol", "atol"):
        if key in merged:
            _expect_type(where, key, merged[key], "number")
            if not 0 <= merged[key] < math.inf:
                raise CaseError(f"{where}: '{key}' must be a finite number >= 0")
            setattr(case, key, float(merged[key]))
    return case


def read_toml(text: str, file: str) -> list[Case]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DiffcliError(f"{file}: not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"defaults", "case"})
    if extra:
        raise DiffcliError(f"{file}: unknown top-level key '{extra[0]}' (expected [defaults] and [[case]])")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise DiffcliError(f"{file}: [defaults] must be a table")
    try:
        _unknown(f"{file}: [defaults]", defaults, _DEFAULT_KEYS)
        if "checks" in defaults:
            _checks(f"{file}: [defaults]", defaults["checks"])
    except CaseError as exc:
        raise DiffcliError(str(exc)) from None
    raw_cases = doc.get("case", [])
    if not isinstance(raw_cases, list):
        raise DiffcliError(f"{file}: 'case' must be an array of tables ([[case]])")
    lines = _header_lines(text, len(raw_cases))
    cases = []
    for position, (raw, line) in enumerate(zip(raw_cases, lines), start=1):
        try:
            cases.append(_case(raw, defaults, file, position, line))
        except CaseError as exc:
            name = raw.get("name") or raw.get("expr") if isinstance(raw, dict) else None
            label = name if isinstance(name, str) else f"case {position}"
            cases.append(Case(name=label, expr="", file=file, line=line, error=str(exc)))
    return cases


_CASE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*case[ \t]*\]\]", re.MULTILINE)


def _header_lines(text: str, count: int) -> list[int | None]:
    """The line of each case's ``[[case]]`` header (tomllib keeps no positions); None for
    each when the headers do not match the cases one to one (an inline ``case = [...]``)."""
    lines: list[int | None] = []
    line, at = 1, 0
    for match in _CASE_HEADER.finditer(text):
        line += text.count("\n", at, match.start())
        at = match.start()
        lines.append(line)
    return lines if len(lines) == count else [None] * count


def read_text(text: str, file: str) -> list[Case]:
    """One case per line: ``EXPR; POINT; POINT``; ``#`` starts a comment."""
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        expr, *points = (part.strip() for part in body.split(";"))
        case = Case(name=expr, expr=expr, file=file, line=number, at=[p for p in points if p])
        if not expr:
            case.error = f"{file}:{number}: no expression before ';'"
        cases.append(case)
    return cases


#: A TOML suite, whatever its file is called: a [defaults] or [[case]] header on a line of its own.
_TOML_HEADER = re.compile(r"^[ \t]*\[\[?[ \t]*(case|defaults)[ \t]*\]\]?[ \t]*(#.*)?$", re.MULTILINE)


def read_cases(file: str, text: str) -> list[Case]:
    """Cases from one file: a TOML suite (by its .toml name, or by its [[case]] and
    [defaults] headers), else a text list (standard input included). A file with no
    case is an error: a CI job must not pass on a wrong path or an emptied file."""
    text = text.removeprefix("\ufeff")  # (a byte-order mark, as some Windows editors write)
    toml = file.endswith(".toml") or _TOML_HEADER.search(text) is not None
    cases = read_toml(text, file) if toml else read_text(text, file)
    if not cases:
        raise DiffcliError(f"no cases in {file}")
    return cases
