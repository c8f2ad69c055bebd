"""What a check produces: arrays over the points, and the report around them.

Quantities have a leading point axis and then the quantity's own shape (none
for value and jvp, (n,) for grad, (n, n) for hessian), so vector-valued
expressions (Jacobians, VJPs) can be added without changing the shape of a
report. Per-point objects are made only when a renderer asks for them, so a
million-point grid stays a handful of arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffcli.commands import COMMANDS, NONE, Exit, Extra
from diffcli.verdict import MISMATCH, STATUSES, UNDEFINED, UNKNOWN, Tolerance, Verdict, Verdicts, element_errors


def quantity_shape(command: str, n: int, m: int = 0, extra: Extra = NONE) -> tuple[int, ...]:
    """One point's answer, for n variables and m outputs (0: a scalar EXPR), spelled out by
    the command table (the shape of an empty list of formulas would lose an axis at n = 0)."""
    return COMMANDS[command].shape(n, m, extra)


@dataclass
class Reference:
    """The reference at every point (computed by :mod:`diffcli.reference`, in the worker: this light
    module is all the main process needs to unpickle it). ``values`` (P, *shape) hold it in float64 (+-inf where a
    value that exists is beyond float64's range); ``defined`` and ``unknown`` are element
    masks; ``reasons`` say why a point's reference does not exist or is unknown, or, where it
    was found at a boundary, how; ``exact`` marks the points whose reference is the 30-digit one."""

    formulas: Any  # strings, in the quantity's shape
    values: np.ndarray
    defined: np.ndarray
    unknown: np.ndarray
    reasons: np.ndarray
    exact: np.ndarray

    @classmethod
    def empty(cls, formulas, points: int, shape: tuple[int, ...]) -> Reference:
        return cls(
            formulas, np.full((points, *shape), math.nan), np.zeros((points, *shape), bool),
            np.zeros((points, *shape), bool), np.full(points, None, dtype=object), np.zeros(points, bool),
        )  # fmt: skip

    _ROWS = ("values", "defined", "unknown", "reasons", "exact")

    def take(self, rows: np.ndarray, other: Reference) -> None:
        """Rows ``rows`` of this reference become ``other``'s rows (in order)."""
        for name in self._ROWS:
            getattr(self, name)[rows] = getattr(other, name)

    def rows(self, mask: np.ndarray) -> Reference:
        return Reference(self.formulas, *(getattr(self, name)[mask] for name in self._ROWS))

    @classmethod
    def stack(cls, parts: list[Reference], labels: list[str]) -> Reference:
        """The components' references as one, the component axis first after the points';
        a point's reason is its first component's that has one, labelled with the component."""
        reasons = np.full(parts[0].reasons.shape, None, dtype=object)
        for part, label in zip(parts, labels):
            fill = np.array([r is not None for r in part.reasons], dtype=bool) & np.equal(reasons, None)
            reasons[fill] = [f"{label}: {r}" if label else r for r in part.reasons[fill]]
        return cls(
            [part.formulas for part in parts], np.stack([p.values for p in parts], axis=1),
            np.stack([p.defined for p in parts], axis=1), np.stack([p.unknown for p in parts], axis=1),
            reasons, np.logical_and.reduce([p.exact for p in parts]),
        )  # fmt: skip


@dataclass
class PointResult:
    point: dict[str, float]
    value: float | np.ndarray  # torch's value of the expression (m values for a vector EXPR; the primal, for jvp)
    autodiff: np.ndarray  # torch's answer
    reference: np.ndarray  # the true answer at the point (see diffcli.reference)
    verdict: Verdict
    aux: dict[str, float] = field(default_factory=dict)  # named sub-expressions (batch `let`)
    reason: str | None = None  # why the reference does not exist or is unknown; else a note, or None
    defined: np.ndarray | None = None  # which elements of the reference exist (default: the finite ones)
    unknown: np.ndarray | None = None  # which could not be computed

    @property
    def status(self) -> str:
        return self.verdict.status


def status_counts(status: np.ndarray) -> dict[str, int]:
    """How many results have each status, in STATUSES order, zeros left out."""
    return {s: n for s in STATUSES if (n := int((status == s).sum()))}


@dataclass
class Summary:
    """Counts per status and the largest errors with their points, accumulated chunk by
    chunk, so a summary of 10**7 points never holds 10**7 results."""

    variables: tuple[str, ...]
    points: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    largest: dict[str, tuple[float, tuple[float, ...]]] = field(default_factory=dict)  # key -> (error, point)
    reasons: dict[str, int] = field(default_factory=dict)  # why references do not exist or are unknown
    recomputed: int = 0  # generated points whose reference float64 could not give

    #: Distinct reasons kept (the rest are counted under the last).
    REASONS = 20

    def add(self, points: np.ndarray, verdicts: Verdicts, reasons=None, recomputed: int = 0) -> Summary:
        self.points += points.shape[0]
        self.recomputed += recomputed
        for s, found in status_counts(verdicts.status).items():
            self.counts[s] = self.counts.get(s, 0) + found
        if reasons is not None:
            for reason in reasons[(verdicts.status == UNDEFINED) | (verdicts.status == UNKNOWN)]:
                if reason is not None:
                    key = reason if reason in self.reasons or len(self.reasons) < self.REASONS else "other reasons"
                    self.reasons[key] = self.reasons.get(key, 0) + 1
        for key, errors in (("max_abs_err", verdicts.abs_err), ("max_rel_err", verdicts.rel_err)):
            if errors.size and not np.isnan(errors).all():
                i = int(np.nanargmax(errors))
                if key not in self.largest or errors[i] > self.largest[key][0]:
                    self.largest[key] = (float(errors[i]), tuple(map(float, points[i])))
        return self

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "points": self.points,
            "counts": {s: self.counts[s] for s in STATUSES if s in self.counts},
        }
        for key in ("max_abs_err", "max_rel_err"):
            entry = self.largest.get(key)
            out[key] = None if entry is None else {"value": entry[0], "point": dict(zip(self.variables, entry[1]))}
        out["reasons"] = dict(sorted(self.reasons.items(), key=lambda item: -item[1]))
        out["recomputed"] = self.recomputed
        return out


@dataclass(frozen=True)
class WorstPoint:
    """A point where autodiff and the reference part most, at its worst element."""

    index: int  # the point's row
    point: dict[str, float]
    entry: str  # the element's label (∂f/∂x, ...); "" for a value
    autodiff: float
    reference: float
    abs_err: float
    rel_err: float
    status: str


@dataclass
class Report:
    command: str
    expression: str  # as typed, in SymPy syntax
    variables: tuple[str, ...]
    symbolic: Any  # the reference formula(s) as strings, in the quantity's shape
    points: np.ndarray  # (P, n)
    values: np.ndarray  # (P,), or (P, m) for a vector EXPR
    autodiff: np.ndarray  # (P, *shape)
    reference: np.ndarray  # (P, *shape)
    verdicts: Verdicts
    tolerance: Tolerance
    dtype: str = "float64"
    device: str = "cpu"
    engine: str = "autograd"
    tangent: tuple[float, ...] | None = None
    exact_rows: int = 0  # the first rows' reference is from 30 digits, the rest float64 where it can be trusted
    by_hand: int = 0  # the first rows were given by hand, the rest generated
    outputs: int = 0  # components of a vector EXPR; 0 for a scalar one
    cotangent: tuple[float, ...] | None = None
    wrt: tuple[str, ...] = ()  # diff: the variables differentiated by, in order
    order: int | None = None  # taylor
    aux: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (P,)
    streamed: Summary | None = None  # set when only the summary was kept (the arrays are empty)
    defined: np.ndarray | None = None  # (P, *shape): which reference elements exist (default: the finite ones)
    unknown: np.ndarray | None = None  # (P, *shape): which could not be computed
    reasons: np.ndarray | None = None  # (P,): why a reference does not exist or is unknown; else a note
    exact: np.ndarray | None = None  # (P,): which points have the 30-digit reference

    @property
    def extra(self) -> Extra:
        return Extra(self.tangent, self.wrt, self.order or 0)

    @property
    def precise(self) -> bool:
        """Whether every point's reference is the 30-digit one."""
        return self.exact_rows >= len(self)

    @property
    def recomputed(self) -> int:
        """Generated points whose reference float64 could not give, recomputed to 30 digits."""
        if self.streamed is not None:
            return self.streamed.recomputed
        return 0 if self.exact is None else int(self.exact[self.exact_rows :].sum())

    def __len__(self) -> int:
        return self.streamed.points if self.streamed is not None else self.points.shape[0]

    def result(self, i: int) -> PointResult:
        return PointResult(
            point={v: float(c) for v, c in zip(self.variables, self.points[i])},
            value=self.values[i] if self.outputs else float(self.values[i]),
            autodiff=self.autodiff[i],
            reference=self.reference[i],
            verdict=self.verdicts[i],
            aux={name: float(values[i]) for name, values in self.aux.items()},
            reason=None if self.reasons is None else self.reasons[i],
            defined=None if self.defined is None else self.defined[i],
            unknown=None if self.unknown is None else self.unknown[i],
        )

    @property
    def results(self) -> list[PointResult]:
        return [self.result(i) for i in range(len(self))]

    @property
    def ok(self) -> bool:
        return not self.counts().get(MISMATCH)

    @property
    def exit_code(self) -> int:
        return Exit.OK if self.ok else Exit.MISMATCH

    def counts(self) -> dict[str, int]:
        # Counts only: the summary's search for the largest errors is not needed here.
        return dict(self.streamed.counts) if self.streamed is not None else status_counts(self.verdicts.status)

    def top_reason(self) -> str | None:
        """The most frequent reason a point is undefined or unknown, if any."""
        return next(iter(self.summary()["reasons"]), None)

    def summary(self) -> dict[str, Any]:
        """Counts per status and where the largest errors occur."""
        if self.streamed is not None:
            return self.streamed.as_dict()
        return Summary(self.variables).add(self.points, self.verdicts, self.reasons, self.recomputed).as_dict()

    def worst(self, limit: int = 5, status: str = MISMATCH) -> list[WorstPoint]:
        """The ``limit`` points of this status with the largest errors, worst first, each at
        its worst element whose reference exists (a streamed report has no points: [])."""
        points = len(self) if self.streamed is None else 0
        rows = np.flatnonzero(self.verdicts.status == status) if points else np.array([], dtype=int)
        if not len(rows):
            return []
        a = np.asarray(self.autodiff, dtype=np.float64).reshape(points, -1)
        r = np.asarray(self.reference, dtype=np.float64).reshape(points, -1)
        error, rel, _ = element_errors(a, r, self.tolerance)
        defined = np.isfinite(r) if self.defined is None else np.asarray(self.defined).reshape(points, -1)
        error = np.where(defined, error, -1.0)
        element = error.argmax(axis=1)
        rows = rows[np.argsort(-error[rows, element[rows]], kind="stable")][:limit]
        labels = [e.label for e in COMMANDS[self.command].entries(self.variables, self.outputs, self.extra)]
        worst = []
        for i in rows:
            k = element[i]
            point = {v: float(c) for v, c in zip(self.variables, self.points[i])}
            errors = float(max(error[i, k], 0.0)), float(rel[i, k])
            label = labels[k] if labels else ""
            worst.append(WorstPoint(int(i), point, label, float(a[i, k]), float(r[i, k]), *errors, status))
        return worst
