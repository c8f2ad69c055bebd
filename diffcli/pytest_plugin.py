"""diffcli's pytest plugin: suite files collected as tests, one per case x check.

Installed with diffcli and registered through the ``pytest11`` entry point
``diffcli``, so ``pytest`` collects ``*.diffcli.toml`` suites and
``*.diffcli.txt`` text lists (more globs with the ini option
``diffcli_suites``); ``pytest -p no:diffcli`` turns it off. Node ids are
``path::case::check``: ``-k``, ``--lf``, ``-x``, ``-n`` (pytest-xdist) and
``--junitxml`` work as for any test. A mismatch or an input error fails its
item with the text ``diffcli batch`` annotates with; a check whose reference
could not be computed (unknown) is skipped, with why; an undefined reference
passes.

This module imports only pytest and diffcli's light modules: torch and SymPy load
when the first suite item runs, so a test run without suites pays nothing. The
symbolic work runs in one worker process per pytest process, under the limits of
``--diffcli-timeout`` and ``--diffcli-max-memory`` (or the ini keys
``diffcli_timeout`` and ``diffcli_max_memory``), as on the command line.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from diffcli.errors import DiffcliError
from diffcli.limits import DEFAULT, Limits, read_path

#: Suite files collected with no configuration; ``diffcli_suites`` adds globs to these.
SUITES = ("*.diffcli.toml", "*.diffcli.txt")

#: The limit options: (option, ini key, Limits field, type, help).
_LIMITS = (
    ("--diffcli-timeout", "diffcli_timeout", "timeout", float,
     f"Seconds of symbolic work per check (default {DEFAULT.timeout:g}), as diffcli --timeout."),
    ("--diffcli-max-memory", "diffcli_max_memory", "max_memory_mb", int,
     f"Memory cap of the symbolic worker in MiB (default {DEFAULT.max_memory_mb}), as diffcli --max-memory."),
)  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("diffcli", f"diffcli suites ({', '.join(SUITES)})")
    for option, ini, _, kind, text in _LIMITS:
        group.addoption(option, type=kind, default=None, metavar="N", help=text)
        parser.addini(ini, text, default=None)
    parser.addini(
        "diffcli_suites", f"More globs of diffcli suite files to collect, besides {', '.join(SUITES)}.", type="args"
    )


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    patterns = (*SUITES, *parent.config.getini("diffcli_suites"))
    relative = _relative(file_path, parent.config)
    if any(fnmatch.fnmatch(file_path.name, p) or (relative and fnmatch.fnmatch(relative, p)) for p in patterns):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def _relative(path: Any, config: pytest.Config) -> str | None:
    """The path from the root directory (as node ids spell it), or None outside it."""
    return path.relative_to(config.rootpath).as_posix() if path.is_relative_to(config.rootpath) else None


_LIMITS_KEY = pytest.StashKey[Limits]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LIMITS_KEY] = _read_limits(config)  # a bad value stops the run before any test


def limits(config: pytest.Config) -> Limits:
    """The limits this run's checks get (see :func:`_read_limits`)."""
    return config.stash[_LIMITS_KEY]


def _read_limits(config: pytest.Config) -> Limits:
    """The limits from the command line, else the ini file, else diffcli's defaults."""
    given = {}
    for option, ini, field, kind, _ in _LIMITS:
        value = config.getoption(option.lstrip("-").replace("-", "_"))
        if value is None and config.getini(ini) is not None:
            try:
                value = kind(config.getini(ini))
            except ValueError:
                raise pytest.UsageError(f"{ini} = {config.getini(ini)!r}: not a number") from None
        if value is not None and not 0 < value < float("inf"):
            raise pytest.UsageError(f"{option} must be a positive number")
        given[field] = value
    return DEFAULT.with_options(**given, option_prefix="--diffcli-")


class SuiteFile(pytest.File):
    """A suite: a collector per case."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        from diffcli.suite import read_cases

        name = _relative(self.path, self.config) or str(self.path)
        try:
            cases = read_cases(name, read_path(self.path, limits(self.config).max_file_mb))
        except DiffcliError as exc:
            raise self.CollectError(exc.render()) from None
        seen = Counter(_node_name(case.name) for case in cases)
        for case in cases:
            label = _node_name(case.name)
            if seen[label] > 1:  # node ids must be unique: tell repeated names apart by line
                label = f"{label} (line {case.line})" if case.line else label
            yield SuiteCase.from_parent(self, name=label, case=case)


def _node_name(name: str) -> str:
    """A case's name as one part of a node id ("::" separates the parts)."""
    return " ".join(name.split()).replace("::", ":") or "(unnamed)"


class SuiteCase(pytest.Collector):
    """A case of a suite: an item per check it runs."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def collect(self) -> Iterator[pytest.Item]:
        from diffcli.batch import planned

        for check in dict.fromkeys(planned(self.case, None)):  # (`checks = []`: none, as in batch)
            yield CheckItem.from_parent(self, name=check, check=check, case=self.case)


class FailedCheckError(Exception):
    """A check that mismatched, or an input error in its case: its record."""

    def __init__(self, record: Any) -> None:
        super().__init__(record.status)
        self.record = record


class CheckItem(pytest.Item):
    """One check of one case, run as ``diffcli batch`` runs it."""

    def __init__(self, *, check: str, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.case = check, case

    def runtest(self) -> None:
        from diffcli.verdict import UNKNOWN

        with warnings.catch_warnings():
            # torch's own deprecations (torch.func calls torch.jit.script) are not the user's to fix
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            record = _runner(self.config).run(self)
        if not record.ok:
            raise FailedCheckError(record)
        if record.status == UNKNOWN:
            pytest.skip(f"{self.check}: not checked: {record.message}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, FailedCheckError):
            from diffcli.render import failure_text

            return failure_text(excinfo.value.record)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        line = self.case.line - 1 if self.case.line else None  # pytest counts lines from 0
        return self.path, line, f"{self.case.name} [{self.check}]"


class _Runner:
    """Runs the checks in pytest's order as ``batch`` runs cases: the symbolic work of the
    next items is queued ahead on two workers (case by case, round-robin) while this
    process does an item's autodiff. Under pytest-xdist each process runs only the items it is sent, so
    there it starts each item's work when the item runs."""

    def __init__(self, config: pytest.Config) -> None:
        self.options = {"limits": limits(config)}
        self.ahead = not hasattr(config, "workerinput")  # (set in an xdist worker)
        self.order: list[CheckItem] = []
        self.position: dict[str, int] = {}
        self.started: dict[str, tuple[Any, list]] = {}  # nodeid -> (backend, jobs)
        self.backends: list | None = None
        self.cases: dict[int, int] = {}  # id(case) -> its number, in the order they start

    def plan(self, items: list[pytest.Item]) -> None:
        self.order = [item for item in items if isinstance(item, CheckItem)]
        self.position = {item.nodeid: k for k, item in enumerate(self.order)}

    def _start(self, item: CheckItem) -> tuple[Any, list]:
        from diffcli import worker
        from diffcli.batch import start_case

        if self.backends is None:
            with worker.using(worker.isolated(self.options["limits"])):
                self.backends = worker.pool(2 if self.ahead else 1)  # (xdist runs a process per core)
        # a case's checks share a worker: it keeps the case's formulas for the next check
        backend = self.backends[self.cases.setdefault(id(item.case), len(self.cases)) % len(self.backends)]
        with worker.using(backend):
            return backend, start_case(item.case, [item.check], self.options, backend)

    def run(self, item: CheckItem) -> Any:
        from diffcli import worker
        from diffcli.batch import LOOKAHEAD, LOOKAHEAD_POINTS, Record, finish_case, queued_points

        if item.case.error is not None:  # the suite's own error for this case: nothing to start
            return Record(item.case, item.check, error=item.case.error)
        k = self.position.get(item.nodeid)
        upcoming = self.order[k : k + LOOKAHEAD] if self.ahead and k is not None else [item]
        queued = 0
        for i, later in enumerate(upcoming):
            if later.case.error is None and later.nodeid not in self.started:
                self.started[later.nodeid] = self._start(later)
            queued += queued_points(self.started.get(later.nodeid, (None, []))[1])
            if i >= 1 and queued >= LOOKAHEAD_POINTS:
                break
        backend, jobs = self.started.pop(item.nodeid) if item.nodeid in self.started else self._start(item)
        with worker.using(backend):
            (record,) = finish_case(jobs)
        return record

    def close(self) -> None:
        for backend in self.backends or ():
            backend.close()


_RUNNER = pytest.StashKey[_Runner]()


def _runner(config: pytest.Config) -> _Runner:
    if _RUNNER not in config.stash:
        config.stash[_RUNNER] = _Runner(config)
    return config.stash[_RUNNER]


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(isinstance(item, CheckItem) for item in session.items):
        _runner(session.config).plan(session.items)


def pytest_unconfigure(config: pytest.Config) -> None:
    runner = config.stash.get(_RUNNER, None)
    if runner is not None:
        runner.close()
