"""Comparing autodiff with the reference: tolerances, errors, statuses.

A result is ``ok`` when every element whose reference exists agrees within
``|autodiff - reference| <= atol + rtol * |reference|`` (numpy's ``isclose``
rule); ``mismatch`` when such an element disagrees (NaN and infinities
included); ``undefined`` when the reference does not exist (log(-1), 1/0, a
jump, a kink), whatever autodiff says; ``unknown`` when it exists but could not
be computed. An element-wise quantity takes its worst element: mismatch over
unknown over undefined over ok.

A reference that exists is a finite real number, but it may lie beyond
float64's range: it is then held as +-inf, and only autodiff's inf of the same
sign (float64's rounding of it) agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffcli.commands import TOLERANCES

OK, MISMATCH, UNDEFINED, UNKNOWN = "ok", "mismatch", "undefined", "unknown"
STATUSES = (OK, UNDEFINED, UNKNOWN, MISMATCH)  # worst last


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


#: Defaults per dtype (see :data:`diffcli.commands.TOLERANCES`).
DEFAULT_TOLERANCES = {dtype: Tolerance(*tolerances) for dtype, tolerances in TOLERANCES.items()}


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


def element_errors(a: np.ndarray, r: np.ndarray, tol: Tolerance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element by element: the absolute and relative error of autodiff ``a`` against the
    reference ``r``, and whether they agree within ``tol`` (the one home of that rule).
    Infinities: ``inf`` error unless equal (float64's rounding of a value beyond its range)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        same = a == r
        finite = np.isfinite(r)
        diff = np.where(same, 0.0, np.where(np.isfinite(a) & finite, np.abs(a - r), math.inf))
        rel = np.where(diff == 0, 0.0, np.where(finite, diff / np.abs(r), math.inf))
        close = same | (finite & (diff <= tolerance_of(r, tol)))
    return diff, rel, close


def tolerance_of(r: np.ndarray, tol: Tolerance) -> np.ndarray:
    """The largest error allowed at each reference value: ``atol + rtol * |r|``."""
    return tol.atol + tol.rtol * np.abs(r)


def judge_many(
    autodiff: np.ndarray,
    reference: np.ndarray,
    tol: Tolerance,
    defined: np.ndarray | None = None,
    unknown: np.ndarray | None = None,
) -> Verdicts:
    """Judge P results at once; axis 0 is the point, the rest is the quantity's shape.
    ``defined`` (default: where the reference is finite) and ``unknown`` (default: nowhere)
    are element masks of the reference's shape."""
    points = autodiff.shape[0]
    a = np.asarray(autodiff, dtype=np.float64).reshape(points, -1)
    r = np.asarray(reference, dtype=np.float64).reshape(points, -1)
    defined = np.isfinite(r) if defined is None else np.asarray(defined, dtype=bool).reshape(points, -1)
    unknown = np.zeros_like(defined) if unknown is None else np.asarray(unknown, dtype=bool).reshape(points, -1)
    diff, rel, close = element_errors(a, r, tol)
    mismatch = (defined & ~close).any(axis=1)
    status = np.where(
        mismatch,
        MISMATCH,
        np.where((unknown & ~defined).any(axis=1), UNKNOWN, np.where((~defined).any(axis=1), UNDEFINED, OK)),
    )
    any_defined = defined.any(axis=1)
    abs_err = np.where(any_defined, np.max(np.where(defined, diff, -math.inf), axis=1, initial=-math.inf), math.nan)
    rel_err = np.where(any_defined, np.max(np.where(defined, rel, -math.inf), axis=1, initial=-math.inf), math.nan)
    return Verdicts(status.astype(object), abs_err, rel_err)


def judge(autodiff: np.ndarray, reference: np.ndarray, tol: Tolerance, defined=None, unknown=None) -> Verdict:
    """Compare one result element-wise (by default NaN or infinite reference elements are undefined)."""

    def one(mask):
        return None if mask is None else np.asarray(mask)[None]

    return judge_many(np.asarray(autodiff)[None], np.asarray(reference)[None], tol, one(defined), one(unknown))[0]
