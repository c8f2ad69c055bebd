"""Resource limits: what diffcli refuses before it starts, and what stops it while it works.

Expressions come from shells and from files anyone can put in a pull request,
so every dimension of the work is bounded. Size limits are checked by the
parser before anything recursive runs; symbolic work runs in a separate
worker process (:mod:`diffcli.worker`) that is killed when it exceeds the
time limit and cannot allocate past the memory limit. The defaults are in
SECURITY.md; the ones a user may need to raise have command-line flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import IO, Any

from diffcli.errors import DiffcliError


@dataclass(frozen=True)
class Limits:
    max_length: int = 10_000  # characters in one expression or point value (--max-length)
    max_nodes: int = 5_000  # syntax-tree nodes in one expression
    max_depth: int = 200  # nesting depth of the syntax tree (a sum of n terms nests n deep)
    max_literal_digits: int = 100  # digits in one number literal
    max_constant_digits: int = (
        4_000  # estimated digits of a constant's exact value (Python's int-to-str limit is 4,300)
    )
    max_terms: int = 100_000  # terms of one sum or prod (b - a + 1)
    max_steps: int = 10_000  # steps of one iterate
    max_work: int = 10_000_000  # nodes evaluated per point, a loop's body once per step (nested loops multiply)
    max_loop_depth: int = 8  # loops nested inside each other
    max_points: int = 50_000_000  # points in one check (--max-points)
    timeout: float = 5.0  # seconds of symbolic work per check (--timeout)
    max_memory_mb: int = 4_096  # address space of the symbolic worker, in MiB (--max-memory)
    max_file_mb: int = 16  # size of one batch file, in MiB
    # how messages name the options that raise the time and memory limits: the command line's
    # --timeout, the pytest plugin's --diffcli-timeout
    option_prefix: str = "--"

    def with_options(self, **options: Any) -> Limits:
        """These limits with the options that were given (None: keep the default)."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


DEFAULT = Limits()

#: Points given by hand (--at, a case's `at`) get the 30-digit reference when there
#: are at most this many; generated points (grids, samples, CSV) get float64.
PRECISE_POINTS = 16

#: Generated points per check whose reference is recomputed to 30 digits because float64
#: cannot be trusted there (an overflow, an indeterminate form, a boundary, a mismatch to
#: confirm); past this many (or half the time limit) the rest are "unknown".
EXACT_POINTS = 1_000


def read_limited(file: IO[str], max_mb: int) -> str:
    """A file's text, refused past ``max_mb`` MiB before it is all in memory."""
    limit = max_mb * 1024 * 1024
    try:
        text = file.read(limit + 1)
    except UnicodeDecodeError as exc:
        raise DiffcliError(f"{file.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if len(text) > limit:
        raise DiffcliError(f"{file.name}: larger than {max_mb} MiB")
    return text


def read_path(path: str | os.PathLike[str], max_mb: int) -> str:
    """The text of the file at ``path`` (UTF-8), as :func:`read_limited` reads it."""
    try:
        with open(path, encoding="utf-8") as file:
            return read_limited(file, max_mb)
    except OSError as exc:
        raise DiffcliError(f"{os.fspath(path)}: {exc.strerror or exc}") from None
