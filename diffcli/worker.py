"""Where the symbolic work runs: in this process, or in a worker process with limits.

SymPy's exact arithmetic cannot be interrupted from inside the process that
runs it (a big-integer power is one C call), so the command line runs every
SymPy step (point constants, derivatives, the reference) in a separate worker
process: it is killed when one request takes longer than the time limit, and
its address space is capped so a runaway allocation fails there, not here.
Library users get the in-process backend unless they ask for isolation.

The worker is started once and reused (a batch sends it every case; the
per-expression formulas it derived are cached there), and restarted after it
is killed. It runs under the ``spawn`` start method: nothing of this process
(torch's threads included) is inherited. In a child of the warm server
(:data:`FORK` set), which has SymPy imported already, a worker is forked
instead while the process has a single thread (spawning costs about 0.5 s);
it closes every descriptor it inherited but its pipe and standard streams,
and its memory cap is counted above what it inherited, so that it means what
it means for a spawned worker. A restart in a process that has started
threads by then (a worker killed at its time limit) spawns.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import multiprocessing
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from diffcli.errors import DiffcliError
from diffcli.limits import DEFAULT, Limits

#: Set in a child of the warm server: fork workers while single-threaded (see above).
FORK = False

#: Address space a spawned worker needs to import SymPy, in MiB (measured here: it has 176
#: once started, and starts under --max-memory 180 but not 150): a forked worker's memory
#: cap is --max-memory less this, above what it inherited, and a cap below it fails as a
#: spawned worker fails to start.
STARTUP_MB = 160


def single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


class LimitError(DiffcliError):
    """A resource limit stopped the work; the message names the limit and its flag."""


class Deferred:
    """In-process work, done when its ``result()`` is asked for (as a Future's)."""

    def __init__(self, fn, *args):
        self._fn, self._args = fn, args

    def result(self):
        return self._fn(*self._args)


def _recursion_is_input_error(method):
    """SymPy recurses on the structure of expressions: running out of depth is a fact
    about the input (in a library caller's process as in the worker), not a crash."""

    @functools.wraps(method)
    def guarded(*args):
        try:
            return method(*args)
        except RecursionError:
            raise DiffcliError(
                "SymPy ran out of recursion depth on this expression (deeply nested, or a constant it cannot simplify)"
            ) from None

    return guarded


class InProcess:
    """SymPy work in this process, with the formulas of recent expressions cached."""

    def __init__(self, cache_size: int = 8):
        self._formulas: OrderedDict[Any, Any] = OrderedDict()
        self._cache_size = cache_size

    @_recursion_is_input_error
    def constant(self, node) -> float:
        from diffcli.exact import constant

        try:
            return constant(node)
        except ArithmeticError as exc:
            raise DiffcliError(f"cannot evaluate the constant '{node}': {exc}") from None

    @_recursion_is_input_error
    def formulas(self, tree, variables):
        from diffcli.reference import Formulas

        key = (tree, tuple(variables))
        if key in self._formulas:
            self._formulas.move_to_end(key)
        else:
            self._formulas[key] = Formulas(tree, tuple(variables))
            while len(self._formulas) > self._cache_size:
                self._formulas.popitem(last=False)
        return self._formulas[key]

    @_recursion_is_input_error
    def reference(self, tree, variables, command, points, extra, exact_rows, seconds=None):
        """The reference at every point (``seconds``: how long recomputing generated points
        exactly may take, where float64 cannot be trusted)."""
        from diffcli import reference

        budget = reference.Budget(seconds=seconds)
        return reference.compute(self.formulas(tree, variables), command, points, extra, exact_rows, budget)

    @_recursion_is_input_error
    def confirm(self, tree, variables, command, points, extra, seconds=None):
        """The exact reference at points whose float64 verdict is a mismatch (as many as the budget allows)."""
        from diffcli import reference

        budget = reference.Budget(seconds=seconds)
        return reference.exactly(self.formulas(tree, variables), command, points, extra, budget)

    @_recursion_is_input_error
    def typeset(self, tree, variables, command, extra, limit=None):
        """MathML of the expression and of the command's formulas (see :func:`diffcli.reference.typeset`)."""
        from diffcli import reference

        return reference.typeset(self.formulas(tree, variables), command, extra, limit)

    def submit_reference(self, *args) -> Deferred:
        return Deferred(self.reference, *args)  # SymPy here holds the GIL anyway

    def submit_typeset(self, *args) -> Deferred:
        return Deferred(self.typeset, *args)

    def close(self) -> None:
        self._formulas.clear()


def _cap_address_space(limit: int) -> None:
    """RLIMIT_AS at ``limit`` bytes, or at the hard limit the shell already set if that is
    lower (``ulimit -v`` on shared machines: asking for more is refused). Best effort where
    there is no such limit (Windows has no ``resource``; macOS may refuse RLIMIT_AS): the
    time limit still stops runaway work there."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, AttributeError, ValueError, OSError):
        pass


def _address_space() -> int | None:
    """This process's address space in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _serve_forked(conn, max_memory_mb: int) -> None:
    """A worker forked from a warm process: only its pipe and standard streams stay open,
    and its memory cap is counted above what it inherited (see the module's docstring)."""
    import signal

    keep = {0, 1, 2, conn.fileno()}
    try:
        inherited = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        inherited = list(range(3, 256))
    for fd in inherited:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inherited_bytes = _address_space()
    if max_memory_mb <= STARTUP_MB:
        with contextlib.suppress(OSError):
            conn.send(("startup", "MemoryError: out of memory while importing SymPy"))
        return
    if inherited_bytes is not None:
        _cap_address_space(inherited_bytes + (max_memory_mb - STARTUP_MB) * 1024 * 1024)
    sys.setrecursionlimit(5_000)
    sys.set_int_max_str_digits(0)
    backend = InProcess()
    try:
        conn.send(("ready", None))
        _answer_requests(conn, backend)
    except OSError:
        return


def _serve(conn, max_memory_mb: int) -> None:
    """The worker's loop: one request in, one answer out, until the pipe closes."""
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    _cap_address_space(max_memory_mb * 1024 * 1024)
    sys.setrecursionlimit(5_000)
    sys.set_int_max_str_digits(0)  # big integers are bounded here by time and memory instead
    try:
        import diffcli.reference  # noqa: F401 - SymPy loads now, before the first request's clock starts
    except (ImportError, MemoryError, OSError) as exc:
        with contextlib.suppress(OSError):
            conn.send(("startup", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"))
        return

    backend = InProcess()
    try:
        conn.send(("ready", None))
        _answer_requests(conn, backend)
    except OSError:  # the parent is gone
        return


def _answer_requests(conn, backend: InProcess) -> None:
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):  # the parent is gone (it exits without waiting for us)
            return
        try:
            conn.send(("ok", getattr(backend, name)(*args)))
        except DiffcliError as exc:
            conn.send(("error", exc.render()))
        except MemoryError:
            backend.close()
            conn.send(("memory", None))
        except Exception as exc:
            conn.send(("crash", f"{type(exc).__name__}: {exc}"))


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """``spawn`` re-imports the parent's main script in the child unless it cannot find
    it. The worker needs nothing from it (its code is in this module), and re-importing
    fails for scripts read from standard input and re-runs scripts without a
    ``__name__ == "__main__"`` guard, so the child is not told where it is."""
    main = sys.modules.get("__main__")
    saved: dict[str, Any] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__
    }
    if main is not None:
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class Isolated:
    """SymPy work in a worker process, killed past ``limits.timeout`` seconds."""

    #: Seconds a new worker may take to start and import SymPy.
    STARTUP = 60.0

    def __init__(self, limits: Limits = DEFAULT):
        self.limits = limits
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._lock = threading.RLock()  # one request at a time on the pipe, whichever thread asks
        self._queue: ThreadPoolExecutor | None = None  # submitted requests, sent in order
        self._generation = 0  # bumped by close(): requests queued before it are dropped
        self._state = threading.Lock()  # starting, killing and closing, never held during a request

    def start(self, generation: int | None = None) -> None:
        """Start the worker now (it imports SymPy while this process imports torch).
        ``generation``: the queue's, for a queued request (none starts after close())."""
        with self._state:
            if generation is not None and generation != self._generation:
                raise CancelledError
            if self._process is not None and self._process.is_alive():
                return
            forked = FORK and single_threaded()
            context = multiprocessing.get_context("fork") if forked else multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            target = _serve_forked if forked else _serve
            process = context.Process(target=target, args=(child, self.limits.max_memory_mb), daemon=True)
            with _main_module_hidden():
                process.start()
            child.close()
            self._process, self._conn, self._ready = process, parent, False

    def _wait_until_ready(self) -> None:
        if self._ready:
            return
        conn, process = self._handles()
        if not conn.poll(self.STARTUP):
            self.kill()
            raise LimitError(f"the symbolic worker did not start within {self.STARTUP:g} s")
        kind, _ = self._receive(conn, process)
        if kind != "ready":
            self.kill()
            raise LimitError(  # (the failing import varies from run to run: the limit is what matters)
                f"the symbolic worker could not start within {self.limits.max_memory_mb} MiB of memory; "
                f"it needs about {STARTUP_MB} MiB ({self.limits.option_prefix}max-memory)"
            )
        self._ready = True

    def _handles(self):
        """This request's own pipe and process: close() may kill the worker from another thread."""
        conn, process = self._conn, self._process
        if conn is None:
            raise LimitError("the symbolic worker was stopped")
        return conn, process

    def _receive(self, conn, process):
        try:
            return conn.recv()
        except EOFError:
            process.join(5)
            code = process.exitcode
            self.kill()
            raise LimitError(
                f"the symbolic worker stopped unexpectedly (exit code {code}); "
                f"if it ran out of memory, raise the limit with {self.limits.option_prefix}max-memory"
            ) from None

    def _call(self, name: str, *args, generation: int | None = None):
        with self._lock:
            return self._call_locked(name, *args, generation=generation)

    def _call_locked(self, name: str, *args, generation: int | None = None):
        self.start(generation)
        self._wait_until_ready()
        conn, process = self._handles()
        conn.send((name, args))
        if not conn.poll(self.limits.timeout):
            self.kill()
            raise LimitError(
                f"the symbolic work took longer than {self.limits.timeout:g} s and was stopped "
                f"(raise the limit with {self.limits.option_prefix}timeout)"
            )
        kind, payload = self._receive(conn, process)
        if kind == "ok":
            return payload
        if kind == "memory":
            raise LimitError(
                f"the symbolic work needed more than {self.limits.max_memory_mb} MiB of memory "
                f"(raise the limit with {self.limits.option_prefix}max-memory)"
            )
        if kind == "error":
            raise DiffcliError(payload)
        raise RuntimeError(f"symbolic worker: {payload}")

    def constant(self, node) -> float:
        return self._call("constant", node)

    @property
    def _exact_seconds(self) -> float:
        """Time for recomputing generated points exactly: half the time limit, so that a
        check with many such points reports them unknown rather than timing out."""
        return self.limits.timeout / 2

    def reference(self, tree, variables, command, points, extra, exact_rows):
        args = (tree, variables, command, points, extra, exact_rows, self._exact_seconds)
        return self._call("reference", *args)

    def confirm(self, tree, variables, command, points, extra):
        return self._call("confirm", tree, variables, command, points, extra, self._exact_seconds)

    def submit_reference(self, *args) -> Future:
        """Queue a reference request: one thread sends the queue's requests in order,
        waiting on the pipe, so this process goes on (importing torch, computing
        autodiff) while the worker does the SymPy work, and the checks of a case
        reach the worker together (its formulas cache serves them all)."""
        return self._submit("reference", *args, self._exact_seconds)

    def submit_typeset(self, *args) -> Future:
        """Queue a request for MathML (after the references queued before it, whose formulas it reuses)."""
        return self._submit("typeset", *args)

    def _submit(self, name: str, *args) -> Future:
        if self._queue is None:
            self._queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffcli-symbolic")
        return self._queue.submit(self._queued, self._generation, name, args)

    def _queued(self, generation: int, name: str, args):
        # refused if closed since
        return self._call(name, *args, generation=generation)

    def kill(self) -> None:
        """Stop the worker process; the next request starts a new one. Safe to call from
        two threads at once (close() while the queue's thread hits a time limit)."""
        with self._state:
            process, self._process, self._conn, self._ready = self._process, None, None, False
        if process is not None:
            process.kill()
            process.join()

    def close(self) -> None:
        """Drop the queued requests and stop the worker (it may be mid-request)."""
        with self._state:
            self._generation += 1
        if self._queue is not None:
            self._queue.shutdown(wait=False, cancel_futures=True)
            self._queue = None
        self.kill()


_backend: contextvars.ContextVar = contextvars.ContextVar("diffcli_symbolic_backend", default=None)
_in_process = InProcess()
_workers: dict[tuple[Limits, int], Isolated] = {}


def current():
    """The backend that symbolic work goes to now."""
    return _backend.get() or _in_process


def isolated(limits: Limits = DEFAULT, index: int = 0) -> Isolated:
    """Worker number ``index`` with these limits, shared by every use in this process."""
    key = (limits, index)
    if key not in _workers:
        _workers[key] = Isolated(limits)
    return _workers[key]


def restart_all() -> None:
    """Stop every worker started so far (the next request starts one under the limits in
    force now: the warm server's child, after it takes on its client's resource limits)."""
    for backend in _workers.values():
        backend.kill()


def pool(size: int) -> list:
    """Backends for independent work: ``size`` workers like the current one (a batch
    sends its cases round-robin, so the SymPy work of two cases runs on two cores),
    or the in-process backend alone."""
    backend = current()
    if not isinstance(backend, Isolated):
        return [backend]
    workers = [isolated(backend.limits, i) for i in range(max(size, 1))]
    for w in workers:
        w.start()
    return workers


@contextmanager
def using(backend) -> Iterator[Any]:
    """Send the symbolic work in this block to ``backend``."""
    token = _backend.set(backend)
    try:
        yield backend
    finally:
        _backend.reset(token)
