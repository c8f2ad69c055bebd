"""Many points at once: grids, random samples, CSV tables, and their combination.

Each source gives values for some of the variables: ``--grid x=-1:1:101`` one
variable on an inclusive linspace, all ``--sample`` boxes together ``n``
uniform points, ``--points`` a CSV table, ``--at`` one row per use. The point
set is the cartesian product of the sources, so ``--grid x=0:1:11 --at y=2``
is 11 points and two ``--grid`` options make a mesh. Every variable must be
covered by exactly one source.
"""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffcli.errors import DiffcliError, ParseError
from diffcli.limits import DEFAULT
from diffcli.parser import check_name
from diffcli.points import PointSpec, constant, resolve_point

MAX_POINTS = DEFAULT.max_points


@dataclass(frozen=True)
class Table:
    """Values for some variables: ``rows`` has one column per name."""

    names: tuple[str, ...]
    rows: np.ndarray  # (R, len(names))
    source: str


def _name_and_range(spec: str, option: str, parts: int) -> tuple[str, list[float]]:
    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise DiffcliError(f"{option} {spec}: expected NAME={'LOW:HIGH:COUNT' if parts == 3 else 'LOW:HIGH'}")
    fields = rest.split(":")
    if len(fields) != parts:
        form = "LOW:HIGH:COUNT (e.g. x=-1:1:101)" if parts == 3 else "LOW:HIGH (e.g. x=0:1)"
        raise DiffcliError(f"{option} {spec}: expected {name}={form}")
    offset = len(name) + 1
    values = []
    for field in fields[:2]:
        values.append(constant(field, spec, offset, f"{option} {name}"))
        offset += len(field) + 1
    _check_span(spec, option, values[0], values[1], box=parts == 2)
    if parts == 3:
        try:
            count = int(fields[2])
        except ValueError:
            raise DiffcliError(f"{option} {spec}: the count must be a whole number") from None
        if count < 1:
            raise DiffcliError(f"{option} {spec}: the count must be at least 1")
        values.append(count)
    return name, values


def _check_span(spec: str, option: str, low: float, high: float, box: bool) -> None:
    """Both point generators compute HIGH - LOW: an overflow there gave NaN grid points (and a crash for samples)."""
    if not math.isfinite(high - low):
        raise DiffcliError(f"{option} {spec}: HIGH - LOW is too large for float64")
    if box and low > high:
        # A grid may run downwards; a box may not (numpy would refuse it, and it is surely a typo).
        raise DiffcliError(f"{option} {spec}: LOW is greater than HIGH")


def grid(spec: str, max_points: int = MAX_POINTS) -> Table:
    """``x=-1:1:101``: 101 evenly spaced values from -1 to 1, both included."""
    name, (low, high, count) = _name_and_range(spec, "--grid", 3)
    if count > max_points:
        raise DiffcliError(f"--grid {spec}: at most {max_points} points (--max-points)")
    return Table((name,), np.linspace(low, high, int(count)).reshape(-1, 1), f"--grid {spec}")


def sample(specs: Sequence[str], n: int, seed: int, max_points: int = MAX_POINTS, option: str = "--sample") -> Table:
    """Uniform points in the box the ``--sample`` options describe; the seed makes them reproducible.
    ``option`` names the source in messages (a suite case's is ``sample.box``)."""
    boxes = [_name_and_range(spec, option, 2) for spec in specs]
    if n < 1:
        raise DiffcliError("--n must be at least 1")
    if n > max_points:
        raise DiffcliError(f"--n: at most {max_points} points (--max-points)")
    low = np.array([b[1][0] for b in boxes])
    high = np.array([b[1][1] for b in boxes])
    rows = np.random.default_rng(seed).uniform(low, high, size=(n, len(boxes)))
    return Table(tuple(b[0] for b in boxes), rows, option)


CLI_HINT = "add it with --at, --grid or --sample"
SUITE_HINT = "add it to sample.box (a case's points are its 'at' points and its sampled ones, each with every variable)"


def read_csv(text: str, source: str = "--points") -> Table:
    """A CSV table whose header names the variables; cells are numbers or constant expressions."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))  # (Excel starts its UTF-8 with a byte-order mark)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DiffcliError(f"{source}: the CSV is empty") from None
    header = [unicodedata.normalize("NFKC", h) for h in header]
    for name in header:
        if not name.isidentifier() or check_name(name):
            raise DiffcliError(f"{source}: header '{name}' is not a variable name")
    if len(set(header)) != len(header):
        raise DiffcliError(f"{source}: a column name is repeated")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DiffcliError(f"{source}: line {line} has {len(row)} cells for {len(header)} columns")
        try:
            rows.append([constant(cell, cell, 0, f"{source} line {line}, {name}") for name, cell in zip(header, row)])
        except ParseError as exc:
            raise DiffcliError(f"{exc.message} in '{exc.source}'") from None
    if not rows:
        raise DiffcliError(f"{source}: the CSV has a header but no rows")
    return Table(tuple(header), np.array(rows, dtype=np.float64), source)


def at_table(specs: Sequence[PointSpec], variables: Sequence[str]) -> Table:
    """``--at`` alongside other sources: each spec names the same variables."""
    from diffcli.points import spec_names

    names = spec_names(specs[0])
    for spec in specs[1:]:
        if spec_names(spec) != names:
            raise DiffcliError("--at: with --grid, --sample or --points, every --at must name the same variables")
    unknown = [n for n in names if n not in variables]
    if unknown:
        raise DiffcliError(f"--at: unknown variable '{unknown[0]}' (variables: {', '.join(variables)})")
    rows = np.array([resolve_point(spec, names) for spec in specs], dtype=np.float64).reshape(len(specs), len(names))
    return Table(tuple(names), rows, "--at")


def combine(
    tables: Sequence[Table], variables: Sequence[str], max_points: int = MAX_POINTS, hint: str = CLI_HINT
) -> np.ndarray:
    """The cartesian product of the tables, as a (P, n) array in ``variables`` order;
    ``hint`` says where a missing variable's values would go."""
    owner: dict[str, str] = {}
    for table in tables:
        for name in table.names:
            if name not in variables:
                raise DiffcliError(f"{table.source}: unknown variable '{name}' (variables: {', '.join(variables)})")
            if name in owner:
                raise DiffcliError(f"'{name}' gets values from both {owner[name]} and {table.source}")
            owner[name] = table.source
    missing = [v for v in variables if v not in owner]
    if missing:
        raise DiffcliError(f"no value for {', '.join(repr(m) for m in missing)}: {hint}")
    total = int(np.prod([t.rows.shape[0] for t in tables], dtype=np.float64))
    if total > max_points:
        raise DiffcliError(f"{total} points requested; at most {max_points} (--max-points)")
    index = {v: i for i, v in enumerate(variables)}
    points = np.empty((total, len(variables)))
    sizes = [t.rows.shape[0] for t in tables]
    for k, table in enumerate(tables):
        inner = int(np.prod(sizes[k + 1 :], dtype=np.int64))  # later tables vary fastest
        outer = total // (inner * sizes[k])
        for j, name in enumerate(table.names):  # column by column: no (P, n) index arrays
            column = points[:, index[name]].reshape(outer, sizes[k], inner)
            column[...] = table.rows[:, j][None, :, None]
    return points
