"""The torch side: value, gradient, Hessian and JVP, for many points at once.

Two engines compute the same answers:

- ``autograd`` (the default): the compiled function evaluated on a (P, n)
  batch; the gradient is one reverse pass of ``torch.autograd.grad`` on the
  sum of the values (each point's value depends only on its own row), the
  Hessian one more reverse pass per variable (reverse-over-reverse), the JVP a
  forward pass with dual numbers (``torch.autograd.forward_ad``).
- ``func``: ``torch.func.vmap`` over the point axis of ``grad_and_value``
  (with ``has_aux`` for named sub-expressions), ``hessian``
  (forward-over-reverse) and ``jvp``.

Why two: the first reverse-mode call through torch.func imports
``torch._dynamo`` (about 0.7 s here) and the first forward-mode one
``torch._decomp`` (about 0.15 s), which is most of a one-liner's own time;
plain autograd imports neither and is as fast on big batches. The answers
agree to within a few ulps (tests compare both engines on every function),
so the default is ``autograd`` and ``--engine func`` selects torch.func.

Points go :data:`CHUNK` at a time, so memory stays bounded however many
points are asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from diffcli.errors import DiffcliError
from diffcli.torch_compile import compile_torch

if TYPE_CHECKING:
    from diffcli.check import Request

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


# -- torch.func -------------------------------------------------------------------


def transform(command: str, f, tangent: torch.Tensor | None):
    """The per-point function returning (value, quantity, aux) for a command."""
    from torch import func

    def value_only(x):
        return f(x)[0]

    if command == "value":

        def run(x):
            value, aux = f(x)
            return value, value, aux
    elif command == "grad":

        def run(x):
            grad, (value, aux) = func.grad_and_value(f, has_aux=True)(x)
            return value, grad, aux
    elif command == "hessian":

        def run(x):
            value, aux = f(x)
            return value, func.hessian(value_only)(x), aux
    elif command == "jvp":

        def run(x):
            return func.jvp(f, (x,), (tangent,), has_aux=True)
    else:
        raise ValueError(command)
    return run


def _with_func(command: str, f, points: torch.Tensor, tangent):
    from torch import func

    return func.vmap(transform(command, f, tangent))(points)


# -- plain autograd on a batch -------------------------------------------------------


def _batched(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """A (P, ...) result, also where the expression does not depend on the points."""
    if t is None:
        return torch.zeros_like(like)
    return t.detach().expand_as(like) if t.dim() < like.dim() else t.detach()


def _with_autograd(command: str, f, points: torch.Tensor, tangent):
    rows = points[:, 0] if points.shape[1] else points.new_zeros(points.shape[0])
    if command == "value":
        with torch.no_grad():
            value, aux = f(points)
        value = _batched(value, rows)
        return value, value, {k: _batched(a, rows) for k, a in aux.items()}
    if command == "jvp":
        return _forward(f, points, tangent, rows)
    x = points.detach().requires_grad_(True)
    value, aux = f(x)
    value = torch.broadcast_to(value, rows.shape)
    aux = {k: _batched(a, rows) for k, a in aux.items()}
    grad = None
    if value.requires_grad:  # a constant expression has no graph
        (grad,) = torch.autograd.grad(value.sum(), x, create_graph=command == "hessian", allow_unused=True)
    grad = torch.zeros_like(x) if grad is None else grad
    if command == "grad":
        return value.detach(), grad.detach(), aux
    columns = []
    for j in range(x.shape[1]):
        second = None
        if grad.requires_grad:
            (second,) = torch.autograd.grad(grad[:, j].sum(), x, retain_graph=True, allow_unused=True)
        columns.append(_batched(second, x))
    hessian = torch.stack(columns, dim=-1) if columns else x.new_zeros(x.shape[0], 0, 0)
    return value.detach(), hessian, aux


def _forward(f, points: torch.Tensor, tangent: torch.Tensor, rows: torch.Tensor):
    from torch.autograd import forward_ad

    with forward_ad.dual_level():
        dual = forward_ad.make_dual(points, tangent.expand_as(points).contiguous())
        f = f.for_forward_mode(lambda c: forward_ad.make_dual(c, torch.zeros_like(c)))
        out, aux = f(dual)
        value, derivative = forward_ad.unpack_dual(torch.broadcast_to(out, rows.shape))
        aux = {k: _batched(forward_ad.unpack_dual(a).primal, rows) for k, a in aux.items()}
    return value.detach(), _batched(derivative, rows), aux


def compute(request: Request, progress=None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Values (P,), the command's quantity (P, *shape) and aux values, as float64 numpy.

    ``progress(done, total)``, if given, is called after each chunk of points.
    """
    device = resolve_device(request.device)
    dtype = getattr(torch, request.dtype)
    f = compile_torch(request.tree, request.variables, dtype, device, request.aux)
    tangent = None
    if request.tangent is not None:
        tangent = torch.tensor(request.tangent, dtype=dtype, device=device).reshape(len(request.variables))
    engine = _with_func if request.engine == "func" else _with_autograd
    points = np.asarray(request.points, dtype=np.float64)
    parts = []
    for start in range(0, points.shape[0], CHUNK):
        chunk = torch.as_tensor(points[start : start + CHUNK], dtype=dtype, device=device)
        parts.append(engine(request.command, f, chunk, tangent))
        if progress is not None:
            progress(min(start + CHUNK, points.shape[0]), points.shape[0])
    values = _to_numpy([p[0] for p in parts])
    quantities = _to_numpy([p[1] for p in parts])
    aux = {name: _to_numpy([p[2][name] for p in parts]) for name in request.aux}
    return values, quantities, aux


def _to_numpy(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([t.detach() for t in tensors]).to("cpu", torch.float64).numpy()
