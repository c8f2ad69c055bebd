"""What a check produces: per-point results and the report around them.

Quantities are numpy arrays of any shape (a number for value and jvp, a
vector for grad, a matrix for hessian), so vector-valued expressions
(Jacobians, VJPs) can be added without changing the shape of a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffcli.verdict import MISMATCH, Tolerance, Verdict

COMMANDS = ("value", "grad", "hessian", "jvp")

#: Exit statuses of the command line.
EXIT_OK, EXIT_MISMATCH, EXIT_INVALID = 0, 1, 2


@dataclass
class PointResult:
    point: dict[str, float]
    value: float  # torch's value of the expression (the primal, for jvp)
    autodiff: np.ndarray  # torch's answer
    reference: np.ndarray  # the symbolic answer at the point, rounded from 30 digits
    verdict: Verdict

    @property
    def status(self) -> str:
        return self.verdict.status


@dataclass
class Report:
    command: str
    expression: str  # as typed, in SymPy syntax
    variables: tuple[str, ...]
    symbolic: Any  # the reference formula(s) as strings, in the quantity's shape
    results: list[PointResult]
    tolerance: Tolerance
    dtype: str = "float64"
    device: str = "cpu"
    tangent: tuple[float, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(r.status == MISMATCH for r in self.results)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_MISMATCH

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts
