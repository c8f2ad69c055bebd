"""The torch side: value, gradient, Hessian and JVP with torch.func.

All points of a request are evaluated in one batched call: ``vmap`` over the
point axis of the transform (``grad_and_value``, ``hessian``, ``jvp``) of the
compiled function.
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
    """The per-point function returning (value, quantity) for a command."""
    if command == "value":
        return lambda x: (f(x), f(x))
    if command == "grad":
        return lambda x: tuple(reversed(func.grad_and_value(f)(x)))
    if command == "hessian":
        return lambda x: (f(x), func.hessian(f)(x))
    if command == "jvp":
        return lambda x: func.jvp(f, (x,), (tangent,))
    raise ValueError(command)


def compute(request: Request) -> tuple[np.ndarray, list[np.ndarray]]:
    """Values (one per point) and the command's quantity at each point, as float64 numpy."""
    device = resolve_device(request.device)
    dtype = getattr(torch, request.dtype)
    f = compile_torch(request.tree, request.variables, dtype, device)
    points = torch.tensor(request.points, dtype=dtype, device=device).reshape(
        len(request.points), len(request.variables)
    )
    tangent = None
    if request.tangent is not None:
        tangent = torch.tensor(request.tangent, dtype=dtype, device=device).reshape(len(request.variables))
    values, quantities = func.vmap(transform(request.command, f, tangent))(points)
    values = values.detach().to("cpu", torch.float64).numpy()
    quantities = quantities.detach().to("cpu", torch.float64).numpy()
    return values, list(quantities)
