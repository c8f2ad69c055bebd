"""The library entry point: check one expression at some points.

    >>> from diffcli.pipeline import check
    >>> report = check("grad", "x^2 sin(y)", ["x=1,y=2"])
    >>> report.ok, report.autodiff[0].tolist()
    (True, [1.8185948536513634, -0.4161468365471424])

Input is validated completely (expression, variables, points, tangent,
options) before torch or SymPy does any work, so bad input fails fast with a
:class:`~diffcli.errors.DiffcliError`.
"""

from __future__ import annotations

import keyword
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffcli.commands import (
    COMMANDS,
    DIFF_ORDERS,
    DTYPES,
    ENGINES,
    MODES,
    NONE,
    SAMPLES,
    TAYLOR_ORDER,
    TAYLOR_ORDERS,
    Extra,
    component,
)
from diffcli.errors import DiffcliError, ParseError
from diffcli.expr import Node, substitute
from diffcli.limits import DEFAULT, PRECISE_POINTS, Limits, read_path
from diffcli.parser import check_loops, check_name, parse_expression
from diffcli.points import Points, PointSpec, resolve_point
from diffcli.report import Reference, Report, Summary, quantity_shape
from diffcli.verdict import MISMATCH, Tolerance, Verdicts, judge_many, tolerance_for


@dataclass(frozen=True)
class Request:
    """A fully validated check, ready to run."""

    command: str
    tree: Node  # with `let` names substituted
    variables: tuple[str, ...]
    points: np.ndarray  # (P, n), as the dtype holds them
    tangent: tuple[float, ...] | None
    tolerance: Tolerance
    dtype: str
    device: str
    expression: str = ""  # as typed, `let` names included
    exact_rows: int = 0  # the first rows get the 30-digit reference, the rest float64
    by_hand: int = 0  # the first rows were given by hand (--at, a case's `at`), the rest generated
    aux: dict[str, Node] = field(default_factory=dict)  # `let` name -> tree
    engine: str = "autograd"  # one of ENGINES: see diffcli.autodiff
    outputs: int = 0  # components of a vector EXPR (tree is a Vector node); 0 for a scalar one
    cotangent: tuple[float, ...] | None = None  # vjp: one weight per output
    mode: str = "auto"  # jacobian: one of MODES
    wrt: tuple[str, ...] = ()  # diff: the variables to differentiate by, in order
    order: int | None = None  # taylor

    @property
    def extra(self) -> Extra:
        """What the answer depends on besides the tree and the point (see :class:`Extra`)."""
        return Extra(self.tangent, self.wrt, self.order or 0)

    @property
    def components(self) -> tuple[Node, ...]:
        """The scalar trees: a vector's components, or the tree itself."""
        return self.tree.args if self.outputs else (self.tree,)


def parse_variables(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``--vars x,y``: names, checked and in order; None when not given."""
    if spec is None:
        return None
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [unicodedata.normalize("NFKC", n) for n in names if n]
    seen = set()
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise DiffcliError(f"--vars: '{name}' is not a valid variable name")
        problem = check_name(name)
        if problem:
            raise DiffcliError(f"--vars: {problem}")
        if name in seen:
            raise DiffcliError(f"--vars: '{name}' is listed twice")
        seen.add(name)
    return tuple(names)


def parse_lets(lets: Mapping[str, str], given: tuple[str, ...] | None, limits: Limits = DEFAULT) -> dict[str, Node]:
    """Named sub-expressions, parsed (not yet substituted into each other: see :func:`bind`)."""
    names = tuple(str(name) for name in lets)
    parsed: dict[str, Node] = {}
    for name, text in zip(names, lets.values()):
        if not name.isidentifier() or keyword.iskeyword(name) or check_name(name):
            raise DiffcliError(f"let: '{name}' is not a valid name")
        if given and name in given:
            raise DiffcliError(f"let: '{name}' is also a variable")
        try:
            parsed[name] = parse_expression(str(text), (given or ()) + names, limits)
        except ParseError as exc:
            raise ParseError(f"let {name}: {exc.message}", exc.source, exc.start, exc.end) from None
    return parsed


def bind(tree: Node, lets: Mapping[str, Node], limits: Limits = DEFAULT) -> tuple[Node, dict[str, Node]]:
    """The tree with the `let` names substituted, and each name's own tree. A name may use
    any other, in any order (they are resolved in dependency order); one that depends on
    itself, directly or through others, is refused, and so is a result past the size limits
    (a chain of names can double the tree at each step)."""
    trees: dict[str, Node] = {}
    sizes: dict[str, tuple[int, int]] = {}  # each resolved tree's nodes (counted as a tree) and depth

    def resolve(name: str | None, path: tuple[str, ...]) -> Node:
        if name in path:
            if path[-1] == name:
                raise DiffcliError(f"let: '{name}' refers to itself")
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise DiffcliError(f"let: a circular definition ({cycle}); each name must come down to the variables")
        if len(path) > limits.max_depth:
            raise DiffcliError(f"let: definitions nest more than {limits.max_depth} levels deep ({path[0]} -> ...)")
        if name in trees:
            return trees[name]
        parsed = tree if name is None else lets[name]
        uses = Counter(n.text for n in parsed.walk() if n.op == "var" and n.text in lets)
        inner = path if name is None else (*path, name)
        bindings = {other: resolve(other, inner) for other in sorted(uses)}
        size = sum(1 for _ in parsed.walk()) + sum(k * (sizes[o][0] - 1) for o, k in uses.items())
        depth = _depth(parsed) + max((sizes[o][1] - 1 for o in uses), default=0)  # (a bound)
        if size > limits.max_nodes or depth > limits.max_depth:
            what = f"{size:,} nodes" if size > limits.max_nodes else f"{depth} levels deep"
            limit = f"{limits.max_nodes:,} nodes" if size > limits.max_nodes else f"{limits.max_depth} levels"
            label = "the expression" if name is None else f"let {name}"
            raise DiffcliError(f"{label}: with the let definitions substituted it is {what} (limit {limit})")
        result = substitute(parsed, bindings)
        if name is not None:
            trees[name], sizes[name] = result, (size, depth)
        return result

    for name in lets:  # every definition is checked, used or not
        resolve(name, ())
    result = resolve(None, ())
    problem = check_loops(result, limits) if lets else None  # (without lets the parser has checked)
    if problem:
        raise DiffcliError(f"with the let definitions substituted, {problem[0]}")
    return result, trees


def _depth(node: Node) -> int:
    return 1 + max((_depth(a) for a in node.args), default=0)


def _variables(trees: Sequence[Node], given: tuple[str, ...] | None, lets: Mapping[str, Node]) -> tuple[str, ...]:
    used = set().union(*(t.variables() for t in trees)) - set(lets)
    if given is None:
        return tuple(sorted(used))
    missing = sorted(used - set(given))
    if missing:
        raise DiffcliError(f"the expression uses {', '.join(repr(m) for m in missing)}, which --vars does not list")
    return given


def _by_hand(at, grid, sample, points_text, union) -> int:
    """How many leading points were given by hand: `at` (on the command line, only when
    alone: beside --grid, --sample or --points it fixes the other variables)."""
    return len(at) if union or not (grid or sample or points_text is not None) else 0


def _exact_rows(precise, total, by_hand) -> int:
    """How many leading points get the 30-digit reference: all with --precise; else
    the points given by hand (they come first), if there are few; generated ones never."""
    if precise is not None:
        return total if precise else 0
    return min(by_hand, total) if by_hand <= PRECISE_POINTS else 0


def _points(names, at, grid, sample, n, seed, points_text, union, max_points) -> np.ndarray:
    from diffcli import pointsets

    if n is not None and not sample:
        raise DiffcliError("--n needs --sample")
    if union:  # a suite case: its `at` points, then its sampled ones
        if names and not at and not sample:
            raise DiffcliError("this case has no points: give 'at' or 'sample'")
        if len(at) > max_points:
            raise DiffcliError(f"{len(at)} points; at most {max_points} (--max-points)")
        rows = [resolve_point(spec, names, "at") for spec in at] or ([()] if not names else [])
        fixed = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
        if not sample:
            return fixed
        sampled = pointsets.combine(
            [pointsets.sample(sample, SAMPLES if n is None else n, seed, max_points, "sample.box")], names,
            hint=pointsets.SUITE_HINT,
        )  # fmt: skip
        return np.concatenate([fixed, sampled])
    if not (grid or sample or points_text is not None):
        if not at:
            if names:
                raise DiffcliError(f"give a point with --at, e.g. --at {','.join(f'{v}=1' for v in names)}")
            at = [""]
        return np.array([resolve_point(spec, names) for spec in at], dtype=np.float64).reshape(len(at), len(names))
    if len(at) > max_points:
        raise DiffcliError(f"{len(at)} points requested; at most {max_points} (--max-points)")
    tables = [pointsets.grid(spec, max_points) for spec in grid]
    if sample:
        tables.append(pointsets.sample(sample, SAMPLES if n is None else n, seed, max_points))
    if points_text is not None:
        tables.append(pointsets.read_csv(points_text))
    if at:
        tables.append(pointsets.at_table(at, names))
    return pointsets.combine(tables, names, max_points)


def _listed(value: Any) -> list:
    """One item or several: a string (or a mapping, a point) is one item, never its characters."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _point_list(at: Any) -> list[PointSpec]:
    """``at`` as a list of points; a bare number is a one-variable point."""
    return [(p,) if isinstance(p, (int, float)) and not isinstance(p, bool) else p for p in _listed(at)]


def prepare(
    command: str,
    expression: str,
    at: Points = (),
    *,
    variables: str | Sequence[str] | None = None,
    grid: str | Sequence[str] = (),
    sample: str | Sequence[str] = (),
    n: int | None = None,
    seed: int = 0,
    points_csv: str | os.PathLike[str] | None = None,
    points_text: str | None = None,
    let: Mapping[str, str] | None = None,
    tangent: PointSpec | None = None,
    cotangent: PointSpec | None = None,
    wrt: str | Sequence[str] | None = None,
    order: int | str | None = None,
    mode: str = "auto",
    dtype: str = "float64",
    device: str = "cpu",
    engine: str = "autograd",
    rtol: float | None = None,
    atol: float | None = None,
    precise: bool | None = None,
    limits: Limits = DEFAULT,
    union: bool = False,
) -> Request:
    """Validate everything and return the :class:`Request` that :func:`run` (or
    :func:`run_summary`) computes. The arguments are :func:`check`'s, and two more:
    ``points_text``, a CSV table's text rather than its path (the command line reads
    ``--points -`` from standard input), and ``union=True``, which makes the points
    `at` followed by `sample` (as in a suite case) rather than their product (as on
    the command line, where --at fixes the other variables)."""
    if command not in COMMANDS:
        raise DiffcliError(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    if engine not in ENGINES:
        raise DiffcliError(f"--engine must be one of {', '.join(ENGINES)}")
    if dtype not in DTYPES:
        raise DiffcliError(f"--dtype must be one of {', '.join(DTYPES)}")
    for name, tol in (("--rtol", rtol), ("--atol", atol)):
        if tol is not None and not (0 <= tol < math.inf):
            raise DiffcliError(f"{name} must be a finite number >= 0")
    if points_csv is not None:
        if points_text is not None:
            raise DiffcliError("give points_csv (a path) or points_text (its text), not both")
        points_text = read_path(points_csv, limits.max_file_mb)
    at, grid, sample = _point_list(at), _listed(grid), _listed(sample)
    given = parse_variables(variables)
    parsed = parse_lets(let or {}, given, limits)
    typed = parse_expression(expression, (given or ()) + tuple(parsed), limits, vector=True)
    row = COMMANDS[command]
    outputs = len(typed.args) if typed.op == "Vector" else 0
    if outputs and not row.vector:
        vector_ones = ", ".join(name for name, c in COMMANDS.items() if c.vector)
        raise DiffcliError(f"{command} takes a scalar EXPR; for a vector of {outputs} components use {vector_ones}")
    if mode not in MODES:
        raise DiffcliError(f"--mode must be one of {', '.join(MODES)}")
    tree, lets = bind(typed, parsed, limits)
    names = _variables([typed, *lets.values()], given, lets)
    points = _points(names, at, grid, sample, n, seed, points_text, union, limits.max_points)
    points = _as_dtype(points, dtype, names, "a point has")  # the coordinates as the dtype holds them
    slots = tuple(f"f{i + 1}" for i in range(outputs)) if outputs else ("f",)
    direction = _direction(row, "tangent", tangent, names, "variable", union, dtype)
    weights = _direction(row, "cotangent", cotangent, slots, "component", union, dtype)
    by_hand = min(_by_hand(at, grid, sample, points_text, union), points.shape[0])
    by = _wrt(row, wrt, names, _option("wrt", union))
    degree = _order(row, order, _option("order", union))
    return Request(
        command, tree, names, points, direction, tolerance_for(dtype, rtol, atol), dtype, device,
        expression=str(typed), exact_rows=_exact_rows(precise, points.shape[0], by_hand), by_hand=by_hand,
        aux=lets, engine=engine, outputs=outputs, cotangent=weights, mode=mode, wrt=by, order=degree,
    )  # fmt: skip


def _option(key: str, union: bool) -> str:
    """How an input is named in messages: a suite case's key, or the command line's option."""
    return key if union else f"--{key}"


def _users(key: str) -> str:
    return ", ".join(c for c, other in COMMANDS.items() if key in other.inputs)


def _wrt(row, spec: str | Sequence[str] | None, names: tuple[str, ...], option: str) -> tuple[str, ...]:
    """``x:3,y`` (or a list of such items): the variables to differentiate by, in order,
    each repeated as often as asked."""
    if "wrt" not in row.inputs:
        if spec:
            raise DiffcliError(f"{option} only applies to {_users('wrt')}")
        return ()
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        if len(names) == 1:
            return names
        if not names:
            raise DiffcliError(f"{option}: the expression has no variables (--vars names them)")
        example = ",".join(names[:2]) or "x"
        raise DiffcliError(f"{option}: say which variables to differentiate by, e.g. {option} {example}")
    items = [i.strip() for i in spec.split(",")] if isinstance(spec, str) else [str(i).strip() for i in spec]
    low, high = DIFF_ORDERS
    out: list[str] = []
    for item in items:
        name, colon, times = (part.strip() for part in item.partition(":"))
        name = unicodedata.normalize("NFKC", name)
        if not name:
            raise DiffcliError(f"{option}: an empty item in {spec!r} (write x:2,y)")
        if name not in names:
            known = ", ".join(names) or "none"
            raise DiffcliError(f"{option}: '{name}' is not a variable of the expression (its variables: {known})")
        count = 1
        if colon:
            if not times.isdigit() or not (1 <= int(times) <= high):
                raise DiffcliError(f"{option}: in '{item}', the count must be a whole number from 1 to {high}")
            count = int(times)
        out += [name] * count
        if len(out) > high:
            raise DiffcliError(f"{option}: order {len(out)} or more; orders go from {low} to {high}")
    return tuple(out)


def _order(row, spec: int | str | None, option: str) -> int | None:
    """taylor's order, from 0 to 20 (default 5); None for the other commands."""
    if "order" not in row.inputs:
        if spec is not None:
            raise DiffcliError(f"{option} only applies to {_users('order')}")
        return None
    if spec is None:
        return TAYLOR_ORDER
    low, high = TAYLOR_ORDERS
    text = str(spec).strip()
    if isinstance(spec, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise DiffcliError(f"{option} must be a whole number from {low} to {high} (got {spec!r})")
    return int(text)


def _direction(row, key: str, spec, slots, noun: str, union: bool, dtype: str) -> tuple[float, ...] | None:
    """A tangent (one value per variable) or cotangent (one per component) if the command
    takes it (default all ones), as the dtype holds it; None if it does not (given anyway: an error)."""
    if key not in row.inputs:
        if spec is not None:
            raise DiffcliError(f"--{key} only applies to {_users(key)}")
        return None
    option = _option(key, union)
    raw = resolve_point(spec, slots, option, noun) if spec is not None else (1.0,) * len(slots)
    return tuple(_as_dtype(np.array([raw], dtype=np.float64), dtype, slots, f"{option} has")[0].tolist())


def _as_dtype(values: np.ndarray, dtype: str, names: Sequence[str], what: str) -> np.ndarray:
    """(R, n) float64 values as the dtype holds them. One beyond the dtype's range is an
    error: float32 would hold 1e300 as inf, and the check would be about infinity."""
    if dtype == "float64":
        return values
    with np.errstate(over="ignore"):
        held = values.astype(dtype).astype(np.float64)
    beyond = np.argwhere(~np.isfinite(held) & np.isfinite(values))
    if len(beyond):
        row, column = beyond[0]
        largest = float(np.finfo(dtype).max)
        raise DiffcliError(
            f"{what} {names[column]}={values[row, column]:g}, beyond {dtype}'s range (±{largest:.3g}); "
            "use --dtype float64"
        )
    return held


def check(
    command: str,
    expression: str,
    at: Points = (),
    *,
    variables: str | Sequence[str] | None = None,
    grid: str | Sequence[str] = (),
    sample: str | Sequence[str] = (),
    n: int | None = None,
    seed: int = 0,
    points_csv: str | os.PathLike[str] | None = None,
    let: Mapping[str, str] | None = None,
    tangent: PointSpec | None = None,
    cotangent: PointSpec | None = None,
    wrt: str | Sequence[str] | None = None,
    order: int | str | None = None,
    mode: str = "auto",
    dtype: str = "float64",
    device: str = "cpu",
    engine: str = "autograd",
    rtol: float | None = None,
    atol: float | None = None,
    precise: bool | None = None,
    limits: Limits = DEFAULT,
) -> Report:
    """Run one check: torch's answer and the reference at every point, judged.

    Every argument takes what the command line and the suites take. Bad input
    raises :class:`~diffcli.errors.DiffcliError` before any work starts.

    Args:
        command: what to check: a name in the command table
            (:data:`diffcli.commands.COMMANDS`: ``"value"``, ``"grad"``,
            ``"hessian"``, ...), as on the command line.
        expression: the expression as a person types it (``"x^2 sin(y)"``); a
            vector is ``"[x y, x + y]"``.
        at: a point or a list of points. A point is ``"x=1,y=2"`` (values may be
            constant expressions such as ``pi/4``), a mapping ``{"x": 1, "y": 2}``,
            values in variable order (``"1,2"`` or ``(1, 2)``), or a bare number for
            one variable. With ``grid``, ``sample`` or ``points_csv``: fixed values
            for the other variables (``--at``).
        variables: the variables and their order, ``"x,y"`` or ``["x", "y"]``
            (``--vars``); default: the expression's names, sorted.
        grid: ``"x=0:1:11"`` (11 values from 0 to 1) or a list of them, which make
            a mesh (``--grid``).
        sample: ``"x=0:1"`` or a list of them: uniform points in that box
            (``--sample``), ``n`` of them drawn with ``seed``.
        n: how many points ``sample`` draws (``--n``; default
            :data:`diffcli.commands.SAMPLES`).
        seed: the random seed of ``sample`` (``--seed``).
        points_csv: the path of a CSV file whose header names the variables
            (``--points``).
        let: names for subexpressions, ``{"r": "sqrt(x^2 + y^2)"}`` (as a suite's
            ``let``).
        tangent: jvp's direction, one value per variable, written as a point
            (``"x=1,y=0"``, ``(1, 0)`` or a mapping); default all ones.
        cotangent: vjp's weights, one per component (``"f1=1,f2=0"`` or ``(1, 0)``);
            default all ones.
        wrt: diff's variables, in order, each repeated as often as asked:
            ``"x:2,y"`` or ``["x", "x", "y"]``.
        order: taylor's highest order, a whole number (``--order``; default
            :data:`diffcli.commands.TAYLOR_ORDER`).
        mode: jacobian's mode, one of :data:`diffcli.commands.MODES` (``--mode``).
        dtype: torch's dtype, one of :data:`diffcli.commands.DTYPES` (``--dtype``);
            the default tolerances follow it.
        device: the torch device, ``"cpu"`` or e.g. ``"cuda"``.
        engine: how torch differentiates, one of :data:`diffcli.commands.ENGINES`
            (``--engine``).
        rtol: the relative tolerance (default: the dtype's).
        atol: the absolute tolerance (default: the dtype's).
        precise: ``True``: the 30-digit reference at every point; ``False``: at
            none; ``None`` (the default): at points given by hand, if there are few.
        limits: the resource limits (:class:`~diffcli.limits.Limits`): size of
            the expression, points, and the symbolic worker's time and memory when
            one is used (see :func:`diffcli.worker.using`).

    Returns:
        A :class:`~diffcli.report.Report`: arrays over the points and a verdict at each.
    """
    request = prepare(
        command, expression, at, variables=variables, grid=grid, sample=sample, n=n, seed=seed,
        points_csv=points_csv, let=let, tangent=tangent, cotangent=cotangent, wrt=wrt, order=order,
        mode=mode, dtype=dtype, device=device, engine=engine, rtol=rtol, atol=atol, precise=precise,
        limits=limits,
    )  # fmt: skip
    return run(request)


@dataclass
class Started:
    """A check whose symbolic side is under way (see :func:`start`)."""

    request: Request
    reference: object  # a concurrent.futures.Future, or diffcli.worker.Deferred
    backend: object = None  # where the symbolic work runs (it also confirms float64 mismatches)


def start(request: Request, backend=None) -> Started:
    """Send the symbolic side off first: in a worker process it runs while this
    process does the autodiff (and, in a batch, the next case's)."""
    from diffcli import worker

    backend = backend or worker.current()
    return Started(request, _submit(request, backend), backend)


def reference_jobs(request: Request) -> list[tuple[Node, str, str]]:
    """The scalar references a request needs: (tree, command, label) per component of a
    vector EXPR (or the EXPR itself), or, for a command the table marks ``combined`` (vjp),
    one for the cotangent's combination sum c_i f_i. The reference side knows only scalar
    trees; :meth:`Reference.stack` puts their answers together."""
    row = COMMANDS[request.command]
    trees = request.components
    if row.combined:
        weights = [Node("num", text=repr(float(c))) for c in request.cotangent]
        terms = tuple(Node("Product", (c, t), "*") for c, t in zip(weights, trees))
        return [(terms[0] if len(terms) == 1 else Node("Sum", terms, "+" * (len(terms) - 1)), row.reference, "")]
    labels = [component(request.outputs, i) if request.outputs else "" for i in range(len(trees))]
    return [(tree, row.reference, label) for tree, label in zip(trees, labels)]


def _extra(request: Request, command: str) -> Extra:
    """The extra inputs of a reference job's command (none for the grad behind jacobian and vjp)."""
    return request.extra if command == request.command else NONE


def _stacked(request: Request) -> bool:
    """Whether the answers of :func:`reference_jobs` are stacked along a component axis."""
    row, n, extra = COMMANDS[request.command], len(request.variables), request.extra
    return row.shape(n, request.outputs, extra) != COMMANDS[row.reference].shape(n, 0, extra)


def _combine(request: Request, parts: list) -> Reference:
    if not _stacked(request):
        return parts[0]
    return Reference.stack(parts, [label for _, _, label in reference_jobs(request)])


class _Together:
    """The futures of a request's reference jobs, as one future of their combination."""

    def __init__(self, request: Request, futures: list):
        self.request, self.futures = request, futures

    def result(self) -> Reference:
        return _combine(self.request, [f.result() for f in self.futures])


def _submit(request: Request, backend):
    futures = [
        backend.submit_reference(
            tree, request.variables, command, request.points, _extra(request, command), request.exact_rows
        )
        for tree, command, _ in reference_jobs(request)
    ]
    return _Together(request, futures)


class _Typeset:
    """The futures of a request's MathML, as one: the expression's and the formulas' (for
    a vector EXPR, one per component, stacked as the reference stacks them)."""

    def __init__(self, request: Request, futures: list, components: list | None = None):
        self.request, self.futures, self.components = request, futures, components

    def result(self) -> dict[str, Any]:
        parts = [f.result() for f in self.futures]
        if self.components is not None:  # (vjp: the formulas are of sum c_i f_i; show the f_i)
            return {"expression": [f.result()["expression"] for f in self.components], "formulas": parts[0]["formulas"]}
        if not _stacked(self.request):
            return parts[0]
        return {"expression": [p["expression"] for p in parts], "formulas": [p["formulas"] for p in parts]}


def typeset(started: Started, limit: int | None = None) -> _Typeset:
    """Ask for the MathML of a started check's expression and formulas (queued behind its
    reference, whose formulas it reuses), the first ``limit`` distinct formulas of each
    component; ``.result()`` waits for it."""
    from diffcli import worker

    request, backend = started.request, started.backend or worker.current()
    futures = [backend.submit_typeset(tree, request.variables, command, _extra(request, command), limit)
               for tree, command, _ in reference_jobs(request)]  # fmt: skip
    components = None
    if request.outputs and COMMANDS[request.command].combined:
        components = [backend.submit_typeset(tree, request.variables, "value", NONE) for tree in request.components]
    return _Typeset(request, futures, components)


def _judge(request: Request, quantities: np.ndarray, ref, backend) -> Verdicts:
    """Autodiff against the reference; a mismatch against a float64 reference is confirmed
    against the exact one first (float64 may have cancelled where torch did not)."""
    verdicts = judge_many(quantities, ref.values, request.tolerance, ref.defined, ref.unknown)
    doubtful = np.flatnonzero((verdicts.status == MISMATCH) & ~ref.exact)
    if not len(doubtful):
        return verdicts
    confirmed = _combine(request, [
        backend.confirm(tree, request.variables, command, request.points[doubtful], _extra(request, command))
        for tree, command, _ in reference_jobs(request)
    ])  # fmt: skip
    done = confirmed.exact
    ref.take(doubtful[done], confirmed.rows(done))
    return judge_many(quantities, ref.values, request.tolerance, ref.defined, ref.unknown)


def _report(request: Request, symbolic, **arrays) -> Report:
    """A report of a request: the arrays (or the streamed summary) come from the caller."""
    return Report(
        command=request.command, expression=request.expression, variables=request.variables, symbolic=symbolic,
        tolerance=request.tolerance, dtype=request.dtype, device=request.device, engine=request.engine,
        tangent=request.tangent, outputs=request.outputs, cotangent=request.cotangent, wrt=request.wrt,
        order=request.order,
        exact_rows=request.exact_rows, by_hand=request.by_hand, **arrays,
    )  # fmt: skip


def finish(started: Started, progress=None) -> Report:
    """Compute the autodiff side, wait for the reference, and judge.
    ``progress(done, total)`` hears about the autodiff side's progress through the points."""
    from diffcli import autodiff, worker

    request = started.request
    values, quantities, aux = autodiff.compute(request, progress)
    ref = started.reference.result()
    verdicts = _judge(request, quantities, ref, started.backend or worker.current())
    return _report(
        request, ref.formulas, points=request.points, values=values, autodiff=quantities,
        reference=ref.values, verdicts=verdicts, aux=aux, defined=ref.defined, unknown=ref.unknown,
        reasons=ref.reasons, exact=ref.exact,
    )  # fmt: skip


def run_summary(request: Request, progress=None, backend=None) -> Report:
    """Only the summary, chunk by chunk, so memory does not grow with the number of points:
    each chunk's reference is computed (in a worker) while the previous chunk's autodiff
    runs, then judged, counted and dropped. The report's arrays are empty."""
    from dataclasses import replace

    from diffcli import autodiff, worker

    backend = backend or worker.current()
    total = request.points.shape[0]
    step = autodiff.points_per_chunk(request, itemsize=8)
    parts = [replace(request, points=request.points[i : i + step], exact_rows=min(max(request.exact_rows - i, 0), step))
             for i in range(0, total, step)]  # fmt: skip

    summary = Summary(request.variables)
    ahead = _submit(parts[0], backend)
    symbolic = None
    for k, part in enumerate(parts):
        pending, ahead = ahead, _submit(parts[k + 1], backend) if k + 1 < len(parts) else None
        _, quantities, _ = autodiff.compute(part)
        ref = pending.result()
        verdicts = _judge(part, quantities, ref, backend)
        summary.add(part.points, verdicts, ref.reasons, int(ref.exact[part.exact_rows :].sum()))
        symbolic = ref.formulas
        if progress is not None:
            progress(min((k + 1) * step, total), total)
    shape = (0, *quantity_shape(request.command, len(request.variables), request.outputs, request.extra))
    nothing = Verdicts(np.zeros(0, dtype=object), np.zeros(0), np.zeros(0))
    values = np.zeros((0, request.outputs) if request.outputs else 0)
    return _report(
        request, symbolic, points=np.zeros((0, len(request.variables))), values=values,
        autodiff=np.zeros(shape), reference=np.zeros(shape), verdicts=nothing, streamed=summary,
    )  # fmt: skip


def run(request: Request, progress=None) -> Report:
    """Compute and judge one check; the symbolic side goes to the current backend
    (see :mod:`diffcli.worker`)."""
    return finish(start(request), progress)
