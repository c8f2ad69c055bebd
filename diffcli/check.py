"""The library entry point: check one expression at some points.

    >>> from diffcli.check import check
    >>> report = check("grad", "x^2 sin(y)", ["x=1,y=2"])
    >>> report.ok, report.results[0].autodiff.tolist()
    (True, [1.8185948536513634, -0.4161468365471424])

Input is validated completely (expression, variables, points, tangent,
options) before torch or SymPy does any work, so bad input fails fast with a
:class:`~diffcli.errors.DiffcliError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffcli.errors import DiffcliError
from diffcli.expr import Node
from diffcli.parser import parse_expression
from diffcli.points import PointSpec, resolve_point
from diffcli.report import COMMANDS, PointResult, Report
from diffcli.verdict import DEFAULT_TOLERANCES, Tolerance, judge, tolerance_for

DTYPES = tuple(DEFAULT_TOLERANCES)


@dataclass(frozen=True)
class Request:
    """A fully validated check, ready to run."""

    command: str
    tree: Node
    variables: tuple[str, ...]
    points: tuple[tuple[float, ...], ...]
    tangent: tuple[float, ...] | None
    tolerance: Tolerance
    dtype: str
    device: str


def parse_variables(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``--vars x,y``: names, checked and in order; None when not given."""
    if spec is None:
        return None
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [n for n in names if n]
    for name in names:
        if not name.isidentifier():
            raise DiffcliError(f"--vars: '{name}' is not a valid variable name")
    seen = set()
    for name in names:
        if name in seen:
            raise DiffcliError(f"--vars: '{name}' is listed twice")
        seen.add(name)
    return tuple(names)


def _variables(tree: Node, given: tuple[str, ...] | None) -> tuple[str, ...]:
    used = tree.variables()
    if given is None:
        return tuple(sorted(used))
    missing = sorted(used - set(given))
    if missing:
        raise DiffcliError(f"the expression uses {', '.join(repr(m) for m in missing)}, which --vars does not list")
    return given


def _round(values: tuple[float, ...], dtype: str) -> tuple[float, ...]:
    """Coordinates as the dtype holds them: the reference is evaluated at exactly these."""
    return tuple(float(v) for v in np.asarray(values, dtype=dtype))


def prepare(
    command: str,
    expression: str,
    at: Sequence[PointSpec] = (),
    *,
    variables: str | Sequence[str] | None = None,
    tangent: PointSpec | None = None,
    dtype: str = "float64",
    device: str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
) -> Request:
    if command not in COMMANDS:
        raise DiffcliError(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    if dtype not in DTYPES:
        raise DiffcliError(f"--dtype must be one of {', '.join(DTYPES)}")
    for name, tol in (("--rtol", rtol), ("--atol", atol)):
        if tol is not None and not (tol >= 0):
            raise DiffcliError(f"{name} must be a number >= 0")
    given = parse_variables(variables)
    tree = parse_expression(expression, given or ())
    names = _variables(tree, given)
    if not at:
        if names:
            raise DiffcliError(f"give a point with --at, e.g. --at {','.join(f'{n}=1' for n in names)}")
        at = [""]
    points = tuple(_round(resolve_point(spec, names), dtype) for spec in at)
    if tangent is not None and command != "jvp":
        raise DiffcliError("--tangent only applies to jvp")
    direction = None
    if command == "jvp":
        direction = _round(
            resolve_point(tangent, names, "--tangent") if tangent is not None else (1.0,) * len(names), dtype
        )
    return Request(command, tree, names, points, direction, tolerance_for(dtype, rtol, atol), dtype, device)


def check(command: str, expression: str, at: Sequence[PointSpec] = (), **options) -> Report:
    """Run one check: autodiff and the symbolic reference at every point."""
    return run(prepare(command, expression, at, **options))


def run(request: Request) -> Report:
    from diffcli import autodiff, reference

    values, quantities = autodiff.compute(request)
    ref = reference.compute(request)
    results = [
        PointResult(
            point=dict(zip(request.variables, point)),
            value=float(value),
            autodiff=np.asarray(quantity),
            reference=expected.reshape(np.shape(quantity)),
            verdict=judge(quantity, expected, request.tolerance),
        )
        for point, value, quantity, expected in zip(request.points, values, quantities, ref.values)
    ]
    return Report(
        command=request.command,
        expression=str(request.tree),
        variables=request.variables,
        symbolic=ref.formulas,
        results=results,
        tolerance=request.tolerance,
        dtype=request.dtype,
        device=request.device,
        tangent=request.tangent,
    )
