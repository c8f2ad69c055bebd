"""The torch side of every command, for many points at once (the tables AUTOGRAD and FUNC).

Three engines compute the same answers:

- ``autograd`` (the default): the compiled function evaluated on a batch of
  points held as one contiguous column per variable, each column an autograd
  leaf; the gradient is one reverse pass of ``torch.autograd.grad`` on the sum
  of the values (each point's value depends only on its own row), the Hessian
  one more reverse pass per variable (reverse-over-reverse), the JVP a forward
  pass with dual numbers (``torch.autograd.forward_ad``); a partial derivative of
  order k (and k Taylor coefficients) one more reverse pass per order.
- ``func``: ``torch.func.vmap`` over the point axis of ``grad_and_value``
  (with ``has_aux`` for named sub-expressions), ``hessian``
  (forward-over-reverse) and ``jvp``.
  Jacobians are ``jacrev`` or ``jacfwd``, partial derivatives of higher order
  forward over reverse, Taylor coefficients ``jvp`` of ``jvp``.
- ``compiled``: the ``autograd`` engine traced once into a graph of aten ops
  and compiled by ``torch.compile`` into one fused loop: several times the
  throughput, after a one-off compilation of seconds (longer for big
  expressions), so it pays only for very many points.

Why ``autograd`` is the default: the first reverse-mode call through torch.func
imports ``torch._dynamo`` (about 0.7 s here) and the first forward-mode one
``torch._decomp`` (about 0.15 s), which is most of a one-liner's own time;
plain autograd imports neither and is as fast on big batches. The answers
agree to within a few ulps (tests compare the engines on every function).

Points go :func:`points_per_chunk` at a time (at most :data:`CHUNK`), so
memory stays bounded however many points are asked for.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from diffcli.commands import COMMANDS
from diffcli.errors import DiffcliError
from diffcli.expr import work
from diffcli.report import quantity_shape
from diffcli.torch_compile import compile_torch

if TYPE_CHECKING:
    from diffcli.pipeline import Request

#: Points per batch.
CHUNK = 1 << 17


def resolve_device(name: str) -> torch.device:
    """A torch device, or a clear error where it cannot be used."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DiffcliError(f"--device: unknown device '{name}' (use cpu or cuda)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DiffcliError(f"--device {name}: CUDA is not available ({build}, torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DiffcliError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise DiffcliError(f"--device: '{name}' is not supported (use cpu or cuda)")
    return device


@dataclass(frozen=True)
class Inputs:
    """What a command needs besides the points: the tangent (n,) of jvp and taylor, the VJP's
    cotangent (max(m, 1),), the number of outputs m of a vector EXPR (0: a scalar one), the
    Jacobian's mode (see :func:`jacobian_mode`), diff's variables and taylor's order."""

    tangent: torch.Tensor | None = None
    cotangent: torch.Tensor | None = None
    outputs: int = 0
    mode: str = "reverse"
    wrt: tuple[int, ...] = ()  # diff: the variables' indices, in the order they are differentiated by
    order: int = 0  # taylor


def jacobian_mode(mode: str, m: int, n: int) -> str:
    """The mode to use: "auto" takes one reverse pass per output or one forward pass per variable,
    whichever is fewer."""
    return mode if mode != "auto" else ("reverse" if max(m, 1) <= n else "forward")


# -- torch.func -------------------------------------------------------------------


def _func_value(f, inputs: Inputs):
    def run(x):
        value, aux = f(x)
        return value, value, aux

    return run


def _func_grad(f, inputs: Inputs):
    from torch import func

    def run(x):
        grad, (value, aux) = func.grad_and_value(f, has_aux=True)(x)
        return value, grad, aux

    return run


def _func_hessian(f, inputs: Inputs):
    from torch import func

    def run(x):
        value, aux = f(x)
        return value, func.hessian(lambda x: f(x)[0])(x), aux  # (m, n, n) for a vector

    return run


def _func_jvp(f, inputs: Inputs):
    from torch import func

    def run(x):
        return func.jvp(f, (x,), (inputs.tangent,), has_aux=True)

    return run


def _func_jacobian(f, inputs: Inputs):
    from torch import func

    differentiate = func.jacrev if inputs.mode == "reverse" else func.jacfwd

    def with_value(x):
        value, aux = f(x)
        return value, (value, aux)

    def run(x):
        jacobian, (value, aux) = differentiate(with_value, has_aux=True)(x)
        return value, jacobian.reshape(max(inputs.outputs, 1), x.shape[-1]), aux

    return run


def _func_vjp(f, inputs: Inputs):
    from torch import func

    def run(x):
        value, pullback, aux = func.vjp(f, x, has_aux=True)
        (product,) = pullback(inputs.cotangent.reshape(value.shape))
        return value, product, aux

    return run


# -- derivatives of higher order: nested passes ------------------------------------------

#: A nested derivative whose remaining orders would take longer than this (projected from
#: the orders done) is refused: each order of nested autodiff costs a few times the one
#: before (see the README's "Derivatives of any order").
NESTED_SECONDS = 60.0


class Nesting:
    """Times the orders of a nested derivative and stops one whose remaining orders would
    take more than :data:`NESTED_SECONDS`, with an error that says how far it can go."""

    #: Orders faster than this say little about the growth (timer noise, warm-up).
    NOISE = 0.05

    def __init__(self, command: str, orders: int):
        self.command, self.orders, self.times = command, orders, []
        self.start = time.perf_counter()

    def done(self, order: int) -> None:
        now = time.perf_counter()
        took, self.start = now - self.start, now
        self.times.append(took)
        if order >= self.orders or len(self.times) < 2 or min(self.times[-2:]) < self.NOISE:
            return  # (a one-off cost, such as a lazy import, is not growth)
        growth = max(took / self.times[-2], 1.0)
        projected, reachable = 0.0, order
        for k in range(1, self.orders - order + 1):
            projected += took * growth**k
            if projected <= NESTED_SECONDS:
                reachable = order + k
        if projected > NESTED_SECONDS:
            raise DiffcliError(
                f"{self.command}: order {self.orders} is beyond what torch's nested autodiff can do in reasonable "
                f"time here: each order costs about {growth:.1f} times the one before (order {order} took "
                f"{took:.2g} s), so the rest would take about {_duration(projected)}; ask for order {reachable} or "
                "less"
            )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.2g} days"


def _func_diff(f, inputs: Inputs):
    """Forward over reverse: the first derivative by a reverse pass (torch.func.grad), each
    further one by a forward pass (torch.func.jvp) along its variable's axis."""
    from torch import func

    def run(x):
        value, aux = f(x)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        parts = []
        for c in range(max(inputs.outputs, 1)):
            nesting = Nesting("diff", len(inputs.wrt))
            g = _component(f, c, inputs.outputs)
            for level, i in enumerate(inputs.wrt, start=1):
                if level == 1:
                    g = functools.partial(lambda h, i, x: func.grad(h)(x)[i], g, i)
                else:
                    g = functools.partial(lambda h, e, x: func.jvp(h, (x,), (e,))[1], g, eye[i])
                derivative = g(x)  # each order computed as it comes, to stop a hopeless one early
                nesting.done(level)
            parts.append(derivative)
        return value, parts[0] if not inputs.outputs else torch.stack(parts), aux

    return run


def _component(f, c: int, m: int):
    """The scalar function of component c (of f's value: a scalar, or m components)."""
    return (lambda x: f(x)[0]) if not m else (lambda x: f(x)[0][c])


def _func_taylor(f, inputs: Inputs):
    """jvp of jvp: s -> f(x + s t) differentiated N times by nested torch.func.jvp, each
    level returning the derivatives of every lower order too."""
    from torch import func

    def run(x):
        value, aux = f(x)

        def deeper(h):
            def g(s):
                lower, higher = func.jvp(h, (s,), (torch.ones_like(s),))
                return (*lower, higher[-1])

            return g

        s = x.new_zeros(())
        h, derivatives = (lambda s: (f(x + s * inputs.tangent)[0],)), (value,)
        nesting = Nesting("taylor", inputs.order)
        for k in range(1, inputs.order + 1):
            h = deeper(h)
            derivatives = h(s)  # each order computed as it comes, to stop a hopeless one early
            nesting.done(k)
        coefficients = [torch.broadcast_to(d, value.shape) / math.factorial(k) for k, d in enumerate(derivatives)]
        return value, torch.stack(coefficients, dim=-1), aux

    return run


#: torch.func, per command: (f, inputs) -> the per-point function returning (value, quantity, aux).
FUNC = {"value": _func_value, "grad": _func_grad, "hessian": _func_hessian, "jvp": _func_jvp,
        "jacobian": _func_jacobian, "vjp": _func_vjp, "diff": _func_diff, "taylor": _func_taylor}  # fmt: skip


def transform(command: str, f, inputs: Inputs):
    """The per-point function returning (value, quantity, aux) for a command."""
    return FUNC[command](f, inputs)


def _with_func(command: str, f, columns: torch.Tensor, inputs: Inputs):
    from torch import func

    return func.vmap(transform(command, f, inputs))(columns.T)


# -- plain autograd on a batch -------------------------------------------------------


def _filled(t: torch.Tensor | None, size: int, like: torch.Tensor) -> torch.Tensor:
    """A (P,) result, also where the expression does not depend on the points."""
    if t is None:
        return like.new_zeros(size)
    return torch.broadcast_to(t.detach(), (size,))


def _outputs(out: torch.Tensor, size: int, m: int) -> torch.Tensor:
    """The expression's values as (P,) for a scalar EXPR, (m, P) for a vector one (also
    where a component does not depend on the points)."""
    return torch.broadcast_to(out, (size,)) if not m else torch.broadcast_to(out.reshape(m, -1), (m, size))


def _points_first(out: torch.Tensor, m: int) -> torch.Tensor:
    """(P,) stays; (m, P) becomes (P, m)."""
    return out.detach() if not m else out.detach().T


def _stacked(columns: list[torch.Tensor], size: int, like: torch.Tensor) -> torch.Tensor:
    """(P, n) from n columns, built as (n, P) so that each column stays contiguous
    (torch.compile then writes every output with vector stores)."""
    return torch.stack(columns).T if columns else like.new_zeros(size, 0)


def _autograd_value(f, columns: torch.Tensor, inputs: Inputs):
    size = columns.shape[1]
    with torch.no_grad():
        value, aux = f.of_columns(list(columns))
    value = _points_first(_outputs(value, size, inputs.outputs), inputs.outputs)
    return value, value, {k: _filled(a, size, columns) for k, a in aux.items()}


def _with_graph(f, columns: torch.Tensor, m: int = 0):
    """The value with its graph ((P,), or (m, P) for a vector EXPR), the leaves and the aux values."""
    size = columns.shape[1]
    xs = [c.detach().requires_grad_(True) for c in columns]
    value, aux = f.of_columns(xs)
    return _outputs(value, size, m), xs, {k: _filled(a, size, columns) for k, a in aux.items()}


def _autograd_grad(f, columns: torch.Tensor, inputs: Inputs):
    size = columns.shape[1]
    value, xs, aux = _with_graph(f, columns)
    grads = _derivatives(value, xs)
    return value.detach(), _stacked([_filled(g, size, columns) for g in grads], size, columns), aux


def _hessian_of(y: torch.Tensor, xs: list, columns: torch.Tensor) -> torch.Tensor:
    """(P, n, n): reverse over reverse, one more pass per variable."""
    size = columns.shape[1]
    grads = _derivatives(y, xs, create_graph=True)
    rows = [[_filled(h, size, columns) for h in _derivatives(g, xs, retain=True)] for g in grads]
    if not rows:
        return columns.new_zeros(size, 0, 0)
    return torch.stack([torch.stack(row) for row in rows]).permute(2, 0, 1)  # (n, n, P) -> (P, n, n)


def _autograd_hessian(f, columns: torch.Tensor, inputs: Inputs):
    m = inputs.outputs
    value, xs, aux = _with_graph(f, columns, m)
    if not m:
        return value.detach(), _hessian_of(value, xs, columns), aux
    hessians = [_hessian_of(value[i], xs, columns) for i in range(m)]  # each component's
    return _points_first(value, m), torch.stack(hessians, dim=1), aux


def _autograd_jvp(f, columns: torch.Tensor, inputs: Inputs):
    value, derivative, aux = _forward(f, columns, inputs.tangent, inputs.outputs)
    return _points_first(value, inputs.outputs), _points_first(derivative, inputs.outputs), aux


def _autograd_jacobian(f, columns: torch.Tensor, inputs: Inputs):
    size, n, m = columns.shape[1], columns.shape[0], inputs.outputs
    rows = max(m, 1)
    if inputs.mode == "forward":  # one forward pass per variable: the Jacobian's columns
        if not n:
            value, _, aux = _autograd_value(f, columns, inputs)
            return value, columns.new_zeros(size, rows, 0), aux
        eye = torch.eye(n, dtype=columns.dtype, device=columns.device)
        passes = [_forward(f, columns, eye[j], m) for j in range(n)]
        value, _, aux = passes[0]
        derivatives = torch.stack([d.reshape(rows, size) for _, d, _ in passes])  # (n, m, P)
        return _points_first(value, m), derivatives.permute(2, 1, 0), aux
    value, xs, aux = _with_graph(f, columns, m)  # one reverse pass per output: the Jacobian's rows
    outputs = value.reshape(rows, size)
    grads = [[_filled(g, size, columns) for g in _derivatives(outputs[i], xs, retain=True)] for i in range(rows)]
    jacobian = torch.stack([torch.stack(row) if row else columns.new_zeros(0, size) for row in grads])  # (m, n, P)
    return _points_first(value, m), jacobian.permute(2, 0, 1), aux


def _autograd_vjp(f, columns: torch.Tensor, inputs: Inputs):
    size, m = columns.shape[1], inputs.outputs
    value, xs, aux = _with_graph(f, columns, m)
    c = inputs.cotangent
    weighted = c.reshape(()) * value if not m else (c.reshape(m, 1) * value).sum(0)
    grads = _derivatives(weighted, xs)  # one reverse pass, seeded with the cotangent
    return _points_first(value, m), _stacked([_filled(g, size, columns) for g in grads], size, columns), aux


def _each_output(value: torch.Tensor, m: int) -> list[torch.Tensor]:
    """The (P,) values of each output: the scalar EXPR's, or each of the m components'."""
    return [value] if not m else list(value)


def _nested_reverse(y: torch.Tensor, leaves: list, command: str, columns: torch.Tensor) -> list[torch.Tensor]:
    """y and its derivatives by ``leaves`` in turn (each one reverse pass through the graph
    of the one before), as (P,) tensors."""
    size = columns.shape[1]
    nesting = Nesting(command, len(leaves))
    d, out = y, [_filled(y, size, columns)]
    for level, x in enumerate(leaves, start=1):
        (d,) = _derivatives(d, [x], create_graph=level < len(leaves), retain=True)
        nesting.done(level)
        out.append(_filled(d, size, columns))
    return out


def _autograd_diff(f, columns: torch.Tensor, inputs: Inputs):
    m = inputs.outputs
    value, xs, aux = _with_graph(f, columns, m)
    leaves = [xs[i] for i in inputs.wrt]
    parts = [_nested_reverse(y, leaves, "diff", columns)[-1] for y in _each_output(value, m)]
    return _points_first(value, m), parts[0] if not m else torch.stack(parts, dim=1), aux


def _autograd_taylor(f, columns: torch.Tensor, inputs: Inputs):
    """s -> f(x + s t) differentiated N times in s by nested reverse passes (s is one leaf
    per point; each point's f depends only on its own s)."""
    size, m = columns.shape[1], inputs.outputs
    s = columns.new_zeros(size).requires_grad_(True)
    out, aux = f.of_columns([c + s * t for c, t in zip(columns, inputs.tangent)])
    value = _outputs(out, size, m)
    aux = {k: _filled(a, size, columns) for k, a in aux.items()}
    factorials = torch.tensor([math.factorial(k) for k in range(inputs.order + 1)], dtype=columns.dtype,
                              device=columns.device)  # fmt: skip
    series = [torch.stack(_nested_reverse(y, [s] * inputs.order, "taylor", columns)).T / factorials
              for y in _each_output(value, m)]  # fmt: skip
    return _points_first(value, m), series[0] if not m else torch.stack(series, dim=1), aux


#: Batched torch.autograd, per command: (f, columns (n, P), inputs) -> (value, quantity, aux).
AUTOGRAD = {"value": _autograd_value, "grad": _autograd_grad, "hessian": _autograd_hessian, "jvp": _autograd_jvp,
            "jacobian": _autograd_jacobian, "vjp": _autograd_vjp, "diff": _autograd_diff,
            "taylor": _autograd_taylor}  # fmt: skip


def _with_autograd(command: str, f, columns: torch.Tensor, inputs: Inputs):
    return AUTOGRAD[command](f, columns, inputs)


def _derivatives(y: torch.Tensor | None, xs: list[torch.Tensor], create_graph=False, retain=False) -> list:
    """d(sum y)/dx for each column x (each point's y depends only on its own row), None
    where y does not depend on x."""
    if y is None or not y.requires_grad:  # a constant expression has no graph
        return [None] * len(xs)
    retain = create_graph or retain
    return list(torch.autograd.grad(y.sum(), xs, create_graph=create_graph, retain_graph=retain, allow_unused=True))


def _forward(f, columns: torch.Tensor, tangent: torch.Tensor, m: int = 0):
    """(value, derivative along the tangent, aux) by one forward pass with dual numbers:
    value and derivative (P,), or (m, P) for a vector EXPR."""
    from torch.autograd import forward_ad

    size = columns.shape[1]
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(c, tangent[i].expand_as(c).contiguous()) for i, c in enumerate(columns)]
        f = f.for_forward_mode(lambda c: forward_ad.make_dual(c, torch.zeros_like(c)))
        out, aux = f.of_columns(duals)
        value, derivative = forward_ad.unpack_dual(_outputs(out, size, m))
        aux = {k: _filled(forward_ad.unpack_dual(a).primal, size, columns) for k, a in aux.items()}
    if derivative is None:
        derivative = torch.zeros_like(value)
    return value.detach(), torch.broadcast_to(derivative.detach(), value.shape), aux


# -- torch.compile -------------------------------------------------------------------


#: One chunk's coordinates and outputs stay below this many bytes (a Hessian of
#: many variables is n*n numbers per point), whatever the engine.
CHUNK_BYTES = 1 << 26

#: One chunk's autograd tape stays about below this many bytes: a loop's steps are all
#: recorded (a Newton step of 7 nodes holds about 15 bytes per point for a gradient in
#: float64, about 100 for a Hessian), so loops take fewer points at a time.
TAPE_BYTES = 1 << 30


def points_per_chunk(request: Request, itemsize: int) -> int:
    """A power of two, at most :data:`CHUNK`, :data:`CHUNK_BYTES` of coordinates and outputs
    and :data:`TAPE_BYTES` of tape (estimated: a quarter of a number per node evaluated,
    a loop's body once per step, times the square of the derivatives' order: measured,
    10,000 Newton steps on 10^5 points take 4,096 points at a time for a gradient)."""
    n, m = len(request.variables), request.outputs
    # coordinates, value(s), quantity, aux
    per_point = n + max(m, 1) + math.prod(quantity_shape(request.command, n, m, request.extra)) + len(request.aux)
    most = min(CHUNK, max(CHUNK_BYTES // (per_point * itemsize), 1))
    order = COMMANDS[request.command].order(request.extra)
    if order and any(node.is_loop for node in request.tree.walk()):
        tape = work(request.tree) * order**2 * itemsize // 4
        most = min(most, max(TAPE_BYTES // max(tape, 1), 1))
    return 1 << (most.bit_length() - 1)


class _Inductor:
    """The autograd engine traced once into a flat graph of aten ops (``make_fx``
    records the backward passes too) and compiled by torch.compile's inductor into
    one fused, vectorised loop. Shapes are static: each call's points (at most
    ``limit``, the chunk of :func:`compute`) are padded to a power of two, and a
    kernel already compiled for as many points is reused (a summary grid's short
    last chunk), so a few compilations serve any number of points."""

    def __init__(self, command: str, f, inputs: Inputs, limit: int):
        self.command, self.f, self.inputs, self.limit = command, f, inputs, limit
        self.kernels: dict[int, Callable] = {}  # chunk size -> compiled function

    def _chunk_for(self, size: int) -> int:
        wanted = min(1 << (size - 1).bit_length(), self.limit)
        return min((c for c in self.kernels if c >= wanted), default=wanted)

    def __call__(self, columns: torch.Tensor):
        size = columns.shape[1]
        chunk = self._chunk_for(size)
        if size < chunk:  # pad with copies of the last point
            columns = torch.cat([columns, columns[:, -1:].expand(-1, chunk - size)], dim=1)
        if chunk not in self.kernels:
            self.kernels[chunk] = self._compile(columns)
        value, quantity, aux = self.kernels[chunk](columns)
        return value[:size], quantity[:size], {k: a[:size] for k, a in aux.items()}

    def _compile(self, example: torch.Tensor):
        import torch._inductor.config as inductor
        from torch.fx.experimental.proxy_tensor import make_fx

        # A loop is traced unrolled, and inductor inlines a value read a few times into each
        # reader: through Newton steps, which read the state twice, that is 2**steps copies
        # (10 steps took 100 s to compile, 20 did not finish). Storing every value read more
        # than once keeps it linear (50 steps: 8 s).
        unrolled = any(node.is_loop for node in self.f.node.walk())
        settings = {"realize_reads_threshold": 1, "realize_opcount_threshold": 1} if unrolled else {}
        try:
            graph = make_fx(lambda c: _with_autograd(self.command, self.f, c, self.inputs))(example)
            graph.graph.eliminate_dead_code()  # forward mode leaves shape checks that return bools
            graph.recompile()
            fn = torch.compile(graph, fullgraph=True, dynamic=False)
            with inductor.patch(settings):
                fn(example)  # compiles now, so failures surface here
        except Exception as error:  # inductor raises many kinds (no compiler, ...)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DiffcliError(f"--engine compiled: torch.compile failed ({reason}); use --engine autograd") from error
        return fn


@functools.lru_cache(maxsize=8)
def _compiled(command, tree, variables, dtype, device, aux, vectors, chunk) -> _Inductor:
    """One compiled engine per expression and command within a process (a summary
    grid calls :func:`compute` once per chunk)."""
    f = compile_torch(tree, variables, dtype, device, dict(aux))
    return _Inductor(command, f, _inputs(*vectors, dtype, device), chunk)


def _inputs(tangent, cotangent, outputs: int, mode: str, n: int, wrt, order, dtype, device) -> Inputs:
    def tensor(values):
        return None if values is None else torch.tensor(values, dtype=dtype, device=device)

    return Inputs(tensor(tangent), tensor(cotangent), outputs, jacobian_mode(mode, outputs, n), wrt, order or 0)


def _engine(request: Request, dtype: torch.dtype, device: torch.device, chunk: int = CHUNK):
    """A callable: (n, P) columns -> (values, quantity, aux) for the request's engine."""
    wrt = tuple(request.variables.index(v) for v in request.wrt)
    vectors = (request.tangent, request.cotangent, request.outputs, request.mode, len(request.variables), wrt,
               request.order)  # fmt: skip
    if request.engine == "compiled":
        key = (request.command, request.tree, tuple(request.variables), dtype, device, tuple(request.aux.items()))
        return _compiled(*key, vectors, chunk)
    f = compile_torch(request.tree, request.variables, dtype, device, request.aux)
    engine = _with_func if request.engine == "func" else _with_autograd
    return functools.partial(engine, request.command, f, inputs=_inputs(*vectors, dtype, device))


def compute(request: Request, progress=None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Values (P,) (or (P, m) for a vector EXPR), the command's quantity (P, *shape) and aux
    values, as float64 numpy.

    ``progress(done, total)``, if given, is called after each chunk of points.
    """
    device = resolve_device(request.device)
    dtype = getattr(torch, request.dtype)
    points = np.asarray(request.points, dtype=np.float64)
    step = points_per_chunk(request, dtype.itemsize)
    run = _engine(request, dtype, device, step)
    parts = []
    for start in range(0, points.shape[0], step):
        columns = np.ascontiguousarray(points[start : start + step].T)  # (n, P): numpy transposes fastest
        parts.append(run(torch.as_tensor(columns, dtype=dtype, device=device)))
        if progress is not None:
            progress(min(start + step, points.shape[0]), points.shape[0])
    values = _to_numpy([p[0] for p in parts])
    quantities = _to_numpy([p[1] for p in parts])
    aux = {name: _to_numpy([p[2][name] for p in parts]) for name in request.aux}
    return values, quantities, aux


def _to_numpy(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([t.detach() for t in tensors]).to("cpu", torch.float64).numpy()
