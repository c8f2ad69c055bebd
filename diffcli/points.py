"""Point and tangent specifications: ``x=1,y=pi/4`` or positional ``1,0.5``.

Coordinates may be constant expressions; they go through the same safe
parser as expressions and are rounded to the nearest float. Every variable
needs exactly one value, and mistakes name the variable at fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from diffcli.errors import DiffcliError, ParseError, plural
from diffcli.language import suggest
from diffcli.parser import parse_assignments, parse_expression

PointSpec = str | Mapping[str, float | int | str] | Sequence[float | int | str]

#: One point or a list of them; a bare number is a point of one variable.
Points = PointSpec | float | Sequence[PointSpec | float]


def _plain_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def constant(text: str, source: str, column: int, label: str) -> float:
    """A coordinate's value; plain numbers skip SymPy entirely."""
    value = _plain_float(text)
    if value is None:
        try:
            node = parse_expression(text)
        except ParseError as exc:
            lead = len(text) - len(text.lstrip())
            raise ParseError(exc.message, source, column + lead + exc.start, column + lead + exc.end) from None
        names = sorted(node.variables())
        if names:
            message = f"{label} must be a constant, but uses the name '{names[0]}'"
            raise ParseError(message, source, column, column + len(text))
        from diffcli import worker

        value = worker.current().constant(node)
    if not math.isfinite(value):
        raise ParseError(f"{label} is not a finite real number", source, column, column + len(text))
    return value


def spec_names(spec: PointSpec) -> tuple[str, ...]:
    """The variable names a named point specification gives values for."""
    if isinstance(spec, str):
        names = tuple(name for name, _, _ in parse_assignments(spec) if name is not None)
    elif isinstance(spec, Mapping):
        names = tuple(str(k) for k in spec)
    else:
        names = ()
    if not names:
        raise DiffcliError(f"--at {spec}: with other point sources, give values by name (x=1)")
    return names


def resolve_point(
    spec: PointSpec, variables: Sequence[str], option: str = "--at", noun: str = "variable"
) -> tuple[float, ...]:
    """The coordinates of one point, in ``variables`` order (``noun``: what they are, in messages)."""
    items: Sequence[tuple[str | None, str | float | int, int]]
    if isinstance(spec, str):
        items = parse_assignments(spec) if spec.strip() else []
    elif isinstance(spec, Mapping):
        items = [(str(k), str(v) if isinstance(v, str) else v, 0) for k, v in spec.items()]
    else:
        items = [(None, v, 0) for v in spec]
    source = spec if isinstance(spec, str) else ",".join(f"{k}={v}" if k else f"{v}" for k, v, _ in items)
    named = [name for name, _, _ in items if name is not None]
    if named and len(named) != len(items):
        raise DiffcliError(f"{option} {source}: give every value by name, or none")
    if not named:
        if len(items) != len(variables):
            raise DiffcliError(
                f"{option} {source}: {len(items)} value{'s' * (len(items) != 1)} for "
                f"{plural(len(variables), noun)} ({', '.join(variables) or 'none'})"
            )
        names = list(variables)
    else:
        names = named
    values: dict[str, float] = {}
    for name, (_, text, column) in zip(names, items):
        if name not in variables:
            hint = suggest(name, list(variables))
            known = f"({noun}s: {', '.join(variables) or 'none'})"
            raise DiffcliError(f"{option}: unknown {noun} '{name}' " + (f"(did you mean '{hint}'?)" if hint else known))
        if name in values:
            raise DiffcliError(f"{option}: '{name}' is given twice")
        if isinstance(text, (int, float)):
            value = float(text)
        else:  # a mapping's or list's text is its own source: point at it, not at the joined spec
            value = constant(text, *((source, column) if isinstance(spec, str) else (text, 0)), f"{option} {name}")
        if not math.isfinite(value):
            raise DiffcliError(f"{option} {name}: {value} is not a finite real number")
        values[name] = value
    missing = [v for v in variables if v not in values]
    if missing:
        raise DiffcliError(f"{option} {source}: no value for {', '.join(repr(m) for m in missing)}")
    return tuple(values[v] for v in variables)
