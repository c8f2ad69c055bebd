"""Comparing autodiff with the reference: tolerances, errors, statuses.

A result is ``ok`` when every element whose reference is a finite real
number agrees within ``|autodiff - reference| <= atol + rtol * |reference|``
(numpy's ``isclose`` rule); ``mismatch`` when such an element disagrees
(NaN and infinities included); ``undefined`` when the reference itself is not
a finite real number (log(-1), 1/0, a jump), whatever autodiff says. An
element-wise quantity takes its worst element: mismatch over undefined over ok.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OK, MISMATCH, UNDEFINED = "ok", "mismatch", "undefined"
STATUSES = (OK, UNDEFINED, MISMATCH)  # worst last


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


#: Defaults per dtype: a few thousand ulps of relative error, and an absolute
#: floor for results whose true value is 0 but that autodiff reaches through
#: cancellation (sin(pi) is 1.2e-16, not 0).
DEFAULT_TOLERANCES = {
    "float64": Tolerance(rtol=1e-9, atol=1e-12),
    "float32": Tolerance(rtol=1e-4, atol=1e-6),
}


def tolerance_for(dtype: str, rtol: float | None = None, atol: float | None = None) -> Tolerance:
    default = DEFAULT_TOLERANCES[dtype]
    return Tolerance(default.rtol if rtol is None else rtol, default.atol if atol is None else atol)


@dataclass(frozen=True)
class Verdict:
    status: str
    abs_err: float | None  # over the defined elements; None when none is defined
    rel_err: float | None


@dataclass(frozen=True)
class Verdicts:
    """Verdicts for many points at once: arrays of shape (P,); NaN errors where none is defined."""

    status: np.ndarray
    abs_err: np.ndarray
    rel_err: np.ndarray

    def __getitem__(self, i: int) -> Verdict:
        def optional(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return Verdict(str(self.status[i]), optional(self.abs_err[i]), optional(self.rel_err[i]))


def worst(statuses) -> str:
    return max(statuses, key=STATUSES.index, default=OK)


def judge_many(autodiff: np.ndarray, reference: np.ndarray, tol: Tolerance) -> Verdicts:
    """Judge P results at once; axis 0 is the point, the rest is the quantity's shape."""
    points = autodiff.shape[0]
    a = np.asarray(autodiff, dtype=np.float64).reshape(points, -1)
    r = np.asarray(reference, dtype=np.float64).reshape(points, -1)
    defined = np.isfinite(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(np.isfinite(a), np.abs(a - r), math.inf)
        rel = np.where(diff == 0, 0.0, diff / np.abs(r))
        close = diff <= tol.atol + tol.rtol * np.abs(r)
    mismatch = (defined & ~close).any(axis=1)
    undefined = (~defined).any(axis=1)
    status = np.where(mismatch, MISMATCH, np.where(undefined, UNDEFINED, OK))
    any_defined = defined.any(axis=1)
    abs_err = np.where(any_defined, np.max(np.where(defined, diff, -math.inf), axis=1, initial=-math.inf), math.nan)
    rel_err = np.where(any_defined, np.max(np.where(defined, rel, -math.inf), axis=1, initial=-math.inf), math.nan)
    return Verdicts(status.astype(object), abs_err, rel_err)


def judge(autodiff: np.ndarray, reference: np.ndarray, tol: Tolerance) -> Verdict:
    """Compare one result element-wise; NaN or infinite reference elements are undefined."""
    return judge_many(np.asarray(autodiff)[None], np.asarray(reference)[None], tol)[0]
