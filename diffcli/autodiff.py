"""The torch side: value, gradient, Hessian and JVP with torch.func.

Points are evaluated in batches: ``vmap`` over the point axis of the
transform (``grad_and_value``, ``hessian``, ``jvp``) of the compiled function,
:data:`CHUNK` points at a time so that memory stays bounded however many
points are asked for. Named sub-expressions (a batch case's ``let``) ride along
as auxiliary outputs (``has_aux``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import func

from diffcli.errors import DiffcliError
from diffcli.torch_compile import compile_torch

if TYPE_CHECKING:
    from diffcli.check import Request

#: Points per vmap call.
CHUNK = 1 << 16


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


def transform(command: str, f, tangent: torch.Tensor | None):
    """The per-point function returning (value, quantity, aux) for a command."""

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
    batched = func.vmap(transform(request.command, f, tangent))
    points = np.asarray(request.points, dtype=np.float64)
    parts = []
    for start in range(0, points.shape[0], CHUNK):
        chunk = torch.as_tensor(points[start : start + CHUNK], dtype=dtype, device=device)
        parts.append(batched(chunk))
        if progress is not None:
            progress(min(start + CHUNK, points.shape[0]), points.shape[0])
    values = _to_numpy([p[0] for p in parts])
    quantities = _to_numpy([p[1] for p in parts])
    aux = {name: _to_numpy([p[2][name] for p in parts]) for name in request.aux}
    return values, quantities, aux


def _to_numpy(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([t.detach() for t in tensors]).to("cpu", torch.float64).numpy()
