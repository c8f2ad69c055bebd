"""``diffcli batch``: many cases from files, each checked independently.

Every finished record is written (and flushed) as soon as it is done, the
JUnit file is rewritten atomically after each one, and a bad case only fails
itself. Ctrl-C or SIGTERM stop the run between records: what finished is kept,
and the run exits 130.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from diffcli import worker
from diffcli.commands import COMMANDS, DEFAULT_CHECKS, DEFAULT_VECTOR_CHECKS, Exit
from diffcli.errors import DiffcliError, plural
from diffcli.limits import DEFAULT
from diffcli.pipeline import finish, prepare, start, typeset
from diffcli.report import Report
from diffcli.suite import CASE_SAMPLES, Case, read_cases
from diffcli.verdict import MISMATCH, UNDEFINED, UNKNOWN


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __contains__(self, position: int) -> bool:
        return position % self.count == self.index - 1


def shard_spec(text: str | None) -> Shard | None:
    """``--shard K/N``: the K-th (1-based) of N slices; case i goes to slice i mod N."""
    if text is None:
        return None
    k, sep, n = text.partition("/")
    try:
        shard = Shard(int(k), int(n))
    except ValueError:
        raise DiffcliError(f"--shard {text}: expected K/N, e.g. 2/4") from None
    if not sep or shard.count < 1 or not 1 <= shard.index <= shard.count:
        raise DiffcliError(f"--shard {text}: need 1 <= K <= N")
    return shard


@dataclass
class Record:
    """One case x check: a report, or the error that stopped it."""

    case: Case
    check: str | None
    report: Report | None = None
    error: str | None = None
    seconds: float = 0.0
    expect_failures: list[dict[str, Any]] = field(default_factory=list)  # {index, point, expected, found}
    mathml: dict[str, Any] | None = None  # the expression and formulas typeset (only for an HTML report)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        from diffcli.render import overall_status

        return overall_status(self.report.counts())

    @property
    def ok(self) -> bool:
        return self.status not in (MISMATCH, "error")

    @property
    def message(self) -> str:
        """One line on what went wrong: the error, the first golden value torch missed, or
        why points have no reference (undefined) or none could be computed (unknown)."""
        if self.error is not None:
            return self.error.splitlines()[0]
        if not self.expect_failures:
            if self.status in (UNDEFINED, UNKNOWN):
                return self.report.top_reason() or ""
            return ""
        first = self.expect_failures[0]
        point = ",".join(f"{k}={v:g}" for k, v in first["point"].items())
        more = len(self.expect_failures) - 1
        tail = f" (and {plural(more, 'other point')})" if more else ""
        return f"expect.{self.check} at {point}: expected {first['expected']}, found {first['found']}{tail}"


def _sample_options(case: Case) -> dict[str, Any]:
    if case.sample is None:
        return {}
    return {
        "sample": [f"{name}={lo}:{hi}" for name, (lo, hi) in case.sample["box"].items()],
        "n": case.sample.get("n", CASE_SAMPLES),
        "seed": case.sample.get("seed", 0),
    }


def _check_expectations(record: Record, expected: list) -> None:
    """Golden values, one per `at` point, against torch's answer (same tolerance)."""
    report = record.report
    tol = report.tolerance
    for i, given in enumerate(expected):
        got = np.asarray(report.autodiff[i], dtype=np.float64)
        want = np.asarray(given, dtype=np.float64)
        if want.shape != got.shape or not np.allclose(got, want, rtol=tol.rtol, atol=tol.atol, equal_nan=True):
            point = dict(zip(report.variables, report.points[i].tolist()))
            record.expect_failures.append({"index": i, "point": point, "expected": given, "found": got.tolist()})
            report.verdicts.status[i] = MISMATCH


@dataclass
class _Job:
    """One check of a case: started (its symbolic side under way), or already failed."""

    record: Record
    started: Any = None
    clock: float = 0.0
    typeset: Any = None  # the MathML on its way (see check.typeset)


def _prepare(case: Case, check: str, options: dict[str, Any]):
    return prepare(
        check, case.expr, case.at, variables=case.variables, let=case.let,
        tangent=case.tangent if "tangent" in COMMANDS[check].inputs else None,
        cotangent=case.cotangent if "cotangent" in COMMANDS[check].inputs else None, mode=case.mode,
        wrt=case.wrt if "wrt" in COMMANDS[check].inputs else None,
        order=case.order if "order" in COMMANDS[check].inputs else None,
        rtol=case.rtol if case.rtol is not None else options.get("rtol"),
        atol=case.atol if case.atol is not None else options.get("atol"),
        dtype=options.get("dtype", "float64"), device=options.get("device", "cpu"),
        precise=options.get("precise") or None, union=True, limits=options.get("limits", DEFAULT),
        engine=options.get("engine", "autograd"), **_sample_options(case),
    )  # fmt: skip


def _failed(record: Record, exc: BaseException) -> Record:
    if isinstance(exc, DiffcliError):
        record.error = exc.render()
    else:  # a bug, but one case must not stop the others
        record.error = f"internal error: {type(exc).__name__}: {exc}"
    return record


def planned(case: Case, only: Sequence[str] | None) -> list[str]:
    """The checks a case runs: its own (or the defaults, with diff where it gives `wrt` and
    taylor where it gives `order`), less those ``only`` (--checks) leaves out."""
    default = DEFAULT_VECTOR_CHECKS if case.expr.strip().startswith("[") else DEFAULT_CHECKS
    default += ("diff",) * (case.wrt is not None) + ("taylor",) * (case.order is not None)
    return [c for c in case.checks or default if only is None or c in only]


def start_case(
    case: Case, only: Sequence[str] | None, options: dict[str, Any], backend=None, mathml: bool = False
) -> list[_Job]:
    """Validate every check of a case and send their symbolic work off (to ``backend``);
    with ``mathml``, the typesetting of its formulas too."""
    if case.error is not None:
        return [_Job(Record(case, None, error=case.error))]
    jobs = []
    for check in planned(case, only):
        job = _Job(Record(case, check), clock=time.perf_counter())
        try:
            job.started = start(_prepare(case, check, options), backend)
            if mathml:
                from diffcli.htmlreport import FORMULAS

                job.typeset = typeset(job.started, FORMULAS)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            _failed(job.record, exc)
        jobs.append(job)
    return jobs


def finish_case(jobs: list[_Job], since: float = 0.0) -> Iterator[Record]:
    """The autodiff side of each started check, judged against its reference.

    A record's ``seconds`` is the wall time from its check's start, or from ``since``
    (when the record before it was done) if that is later: checks overlap (their symbolic
    work is queued ahead), and timing each from its own start counted the queue's waits
    many times over (a 2 s batch had checks of 1.7 s each)."""
    for job in jobs:
        record = job.record
        if job.started is not None:
            try:
                record.report = finish(job.started)
                if record.check in record.case.expect:
                    _check_expectations(record, record.case.expect[record.check])
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                _failed(record, exc)
            if job.typeset is not None and record.report is not None:
                with suppress(Exception):  # the report shows the formulas as text instead
                    record.mathml = job.typeset.result()
        now = time.perf_counter()
        record.seconds = now - max(job.clock, since) if job.clock else 0.0
        since = now
        yield record


def run_case(case: Case, only: Sequence[str] | None, options: dict[str, Any]) -> Iterator[Record]:
    """One record per check; the case's symbolic work is shared between its checks."""
    yield from finish_case(start_case(case, only, options))


class _Interrupts:
    """Ctrl-C and SIGTERM stop the run at once, except while a finished record is being
    written everywhere: then they wait for it, so the JSON Lines, the table and the
    JUnit file always hold the same records."""

    def __init__(self) -> None:
        self.writing = False
        self.pending = False

    def handle(self, signum, frame) -> None:
        if self.writing:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        try:
            previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def writing_record(self) -> Iterator[None]:
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
            if self.pending:
                raise KeyboardInterrupt


def load(sources: Sequence[tuple[str, str]], shard: Shard | None) -> list[Case]:
    cases = [case for name, text in sources for case in read_cases(name, text)]
    return [case for i, case in enumerate(cases) if shard is None or i in shard]


#: The symbolic work queued ahead of the case being finished: at least the next
#: case, then more while the queued cases hold fewer than LOOKAHEAD_POINTS points
#: (their references wait in memory), up to LOOKAHEAD cases. Small cases queue
#: deep, so the workers keep busy while this process imports torch.
LOOKAHEAD = 64
LOOKAHEAD_POINTS = 50_000


def queued_points(jobs: list[_Job]) -> int:
    return sum(job.started.request.points.shape[0] for job in jobs if job.started is not None)


def _start_more(upcoming, started: deque, checks, options, backends, mathml: bool) -> None:
    queued = sum(queued_points(jobs) for jobs in started)
    while len(started) < 2 or (len(started) < LOOKAHEAD and queued < LOOKAHEAD_POINTS):
        following = next(upcoming, None)
        if following is None:
            return
        i, case = following
        started.append(start_case(case, checks, options, backends[i % len(backends)], mathml))
        queued += queued_points(started[-1])


def run_batch(
    sources: Sequence[tuple[str, str]],
    *,
    checks: Sequence[str] | None = None,
    fmt: str = "plain",
    junit: str | None = None,
    html: str | None = None,
    shard: Shard | None = None,
    out: IO[str] = sys.stdout,
    progress: bool = False,
    annotations: str = "none",
    workspace: str | None = None,
    **options: Any,
) -> int:
    """Run every case and write as we go; returns the exit status."""
    from diffcli.render import BatchWriter

    cases = load(sources, shard)
    if checks is not None and cases and not any(c.error or planned(c, checks) for c in cases):
        raise DiffcliError(f"--checks {','.join(checks)}: no case runs these checks (each names its own)")
    writer = BatchWriter(
        fmt, out, junit, html, progress=progress, total=len(cases), files=[name for name, _ in sources],
        annotations=annotations, workspace=workspace,
    )  # fmt: skip
    # (an unwritable --junit or --html is refused here, before any work)
    interrupted = False
    interrupts = _Interrupts()
    backends = worker.pool(2)
    with interrupts.installed():
        try:
            # The next cases' symbolic work is already queued on the workers (round-robin)
            # while this one finishes, so neither worker waits for this process.
            started: deque[list] = deque()
            upcoming = iter(enumerate(cases))
            _start_more(upcoming, started, checks, options, backends, html is not None)
            while started:
                for record in finish_case(started.popleft(), since=time.perf_counter()):
                    with interrupts.writing_record():
                        writer.add(record)
                writer.case_done()
                _start_more(upcoming, started, checks, options, backends, html is not None)
        except KeyboardInterrupt:
            interrupted = True
            for backend in backends:
                backend.close()  # it may be mid-request: never reuse its pipe
        finally:
            interrupts.writing = True  # a second Ctrl-C must not cut the closing output short
            writer.close(interrupted)
    if interrupted:
        return Exit.INTERRUPTED
    return Exit.OK if all(r.ok for r in writer.records) else Exit.MISMATCH
