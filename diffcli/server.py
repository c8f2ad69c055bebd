"""The warm server: torch, SymPy and diffcli imported and warmed once, a child forked per call.

Started by :mod:`diffcli.client` (``python -m diffcli.server``) or ``diffcli server
start``. It listens on an AF_UNIX socket named after the client identity it
serves (:func:`diffcli.client.identity`), in a directory only its user can
enter, and checks the peer's uid on every connection (``SO_PEERCRED``).

Each connection is handed to a child forked ahead of it (the "spare", which
has already forked its symbolic worker, so both forks are off the call's
path), or to a newly forked child, which reads the request (with a time
limit, so a client that sends nothing delays no one), takes the client's
standard streams, working directory, allowed environment variables, umask and
resource limits, and runs the command line exactly as :func:`diffcli.cli.main`
would; its symbolic worker is forked from it too (see :mod:`diffcli.worker`).

Fork safety: torch's thread pools do not survive a fork, so the server runs
torch with one thread and checks that it has one thread before every fork; a
child raises torch's thread count to what a cold run would have. The server
is the subreaper of its children's workers, reaps every process that ends,
kills a child whose client has gone, and exits after an idle time.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: Before torch is imported: no thread pools in the server (see the module's docstring).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Seconds a child waits for its request before giving up on the connection.
REQUEST_SECONDS = 5.0

#: Commands at once (``DIFFCLI_SERVER_JOBS``); past it a request waits for a slot, and a
#: client kept waiting past client.START_SECONDS runs its command itself.
MAX_CHILDREN = max(4, 2 * (os.cpu_count() or 1))


def threads() -> int:
    """This process's threads (Linux's /proc; elsewhere Python's own count)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _log(text: str) -> None:
    import time

    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {text}\n")
    sys.stderr.flush()


def _subreaper() -> None:
    """Orphaned workers of a killed child become ours to reap (Linux; best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def peer_uid(conn) -> int | None:
    """The connecting process's uid (SO_PEERCRED), or None where it cannot be told."""
    import socket
    import struct

    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _, uid, _ = struct.unpack("3i", creds)
    return uid


def _warm() -> None:
    """Run every command once (both engines, every format), so a child starts with
    nothing left to load or set up: imports leave 0.1-0.7 s of first-call costs."""
    import io

    from diffcli.commands import COMMANDS, FORMATS
    from diffcli.pipeline import check
    from diffcli.render import Layout, write

    for name, command in COMMANDS.items():
        expr = "[x^2 sin(y), x y]" if command.vector else "x^2 sin(y) + abs(x - y)"
        options = {"wrt": "x,y"} if "wrt" in command.inputs else {}
        for engine in ("autograd", "func"):
            report = check(name, expr, ["x=1,y=2", "x=2,y=2"], engine=engine, **options)
        for fmt in FORMATS:
            write(report, fmt, io.StringIO(), Layout())
    import diffcli.batch
    import diffcli.suite  # noqa: F401 - and what a batch needs


class Server:
    def __init__(self, directory: str, ident: str, idle: float):
        import socket

        self.directory, self.ident, self.idle = directory, ident, idle
        self.path = os.path.join(directory, f"{ident}.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.children: dict[int, object] = {}  # pid -> the connection of its client
        self.pending: list = []  # connections waiting for a slot
        self.spare: tuple[int, object] | None = None  # (pid, control socket) of the child forked ahead
        try:
            self.slots = max(int(os.environ.get("DIFFCLI_SERVER_JOBS", MAX_CHILDREN)), 1)
        except ValueError:
            self.slots = MAX_CHILDREN
        self.stopping = False
        self.cold_threads = 1

    def bind(self) -> bool:
        """Listen on the socket; False where a live server already does."""
        import socket

        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
            return False  # somebody answers
        except OSError:
            pass
        finally:
            probe.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self.listener.bind(self.path)
        finally:
            os.umask(old)
        self.listener.listen(64)
        self.inode = os.stat(self.path).st_ino
        return True

    def serve(self) -> None:
        import select
        import signal
        import time

        signal.signal(signal.SIGTERM, lambda *a: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._make_spare()
        last = time.monotonic()
        while not self.stopping:
            timeout = 0.05 if self.children else max(min(self.idle - (time.monotonic() - last), 1.0), 0.0)
            try:
                ready, _, _ = select.select([self.listener], [], [], timeout)
            except InterruptedError:
                ready = []
            self._reap()
            self._watch_clients()
            if ready:
                self._accept()
                last = time.monotonic()
            self._dispatch()
            if self.children:
                last = time.monotonic()
            elif time.monotonic() - last >= self.idle:
                _log(f"idle for {self.idle:g} s: exiting")
                break
        self.close()

    def close(self) -> None:
        if self.spare is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.spare[0], 9)
            self.spare[1].close()
        try:
            if os.stat(self.path).st_ino == self.inode:  # still ours (not a successor's)
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        uid = peer_uid(conn)
        if uid != os.getuid():
            _log(f"refused a connection from uid {uid}")
            conn.close()
            return
        self.pending.append(conn)

    def _fork(self):
        """fork(), where it is safe: None (and the server on its way out) where it is not."""
        count = threads()
        if count != 1:  # torch (or anything) started a thread: forking now is not safe
            _log(f"{count} threads: not forking; exiting so that the next call starts a fresh server")
            self.stopping = True
            return None
        return os.fork()

    def _in_child(self, keep) -> None:
        """In a newly forked child: close what is the server's."""
        self.listener.close()
        for conn in [*self.pending, *self.children.values()]:
            if conn is not keep:
                conn.close()
        if self.spare is not None and self.spare[1] is not keep:
            self.spare[1].close()

    def _make_spare(self) -> None:
        """A child forked ahead of the next call, its symbolic worker already forked: the
        call is handed to it, and its two forks are off the call's path."""
        import socket

        if self.spare is not None or self.stopping:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = self._fork()
        if pid is None:
            ours.close(), theirs.close()
            return
        if pid == 0:
            try:
                ours.close()
                self._in_child(theirs)
                _spare(theirs, self.ident, self.cold_threads)
            finally:
                os._exit(70)
        theirs.close()
        self.spare = (pid, ours)

    def _dispatch(self) -> None:
        """Each waiting connection to the spare child (else to a new child), while there are slots."""
        import socket

        while self.pending and len(self.children) < self.slots and not self.stopping:
            conn = self.pending.pop(0)
            if self.spare is not None:
                pid, control = self.spare
                self.spare = None
                try:
                    socket.send_fds(control, [b"c"], [conn.fileno()])
                    self.children[pid] = conn
                    control.close()
                    continue
                except OSError:  # it died: kill it, and fork one for this call
                    control.close()
                    with contextlib.suppress(OSError):
                        os.killpg(pid, 9)
            pid = self._fork()
            if pid is None:
                conn.close()
                return
            if pid == 0:
                try:
                    self._in_child(conn)
                    _child(conn, self.ident, self.cold_threads)
                finally:
                    os._exit(70)
            self.children[pid] = conn
        self._make_spare()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare[0]:  # (it should not die unused)
                self.spare[1].close()
                self.spare = None
                continue
            conn = self.children.pop(pid, None)
            if conn is None:
                continue  # an orphaned worker (we are the subreaper)
            if os.WIFSIGNALED(status):  # it could not say: we do (a normal end said it itself)
                _reply(conn, {"exit": 128 + os.WTERMSIG(status)})
            conn.close()

    def _watch_clients(self) -> None:
        """A client that went away (killed, Ctrl-\\): its command is stopped, workers and all."""
        import signal
        import socket

        for pid, conn in list(self.children.items()):
            try:
                data = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data == b"":
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)


def _reply(conn, message: dict) -> None:
    import json

    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _read_request(conn) -> tuple[dict, list[int]] | None:
    """The request and the descriptors sent with it; None if it is malformed or late."""
    import json
    import socket
    import struct

    from diffcli.client import MAX_REQUEST

    conn.settimeout(REQUEST_SECONDS)
    try:
        head, fds, _, _ = socket.recv_fds(conn, 4, 8)
        while len(head) < 4:
            more = conn.recv(4 - len(head))
            if not more:
                return None
            head += more
        (size,) = struct.unpack(">I", head)
        if size > MAX_REQUEST:
            return None
        body = b""
        while len(body) < size:
            more = conn.recv(min(size - len(body), 65536))
            if not more:
                return None
            body += more
        request = json.loads(body)
    except (OSError, ValueError, struct.error):
        return None
    return (request, fds) if isinstance(request, dict) else None


def _valid(request: dict, fds: list[int]) -> bool:
    from diffcli.client import ENVIRONMENT, ENVIRONMENT_PREFIXES, RESOURCES

    env, resources = request.get("env"), request.get("resources")
    return (
        len(fds) == 3
        and isinstance(request.get("argv"), list) and all(isinstance(a, str) for a in request["argv"])
        and isinstance(request.get("cwd"), str)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) and (k in ENVIRONMENT or k.startswith(ENVIRONMENT_PREFIXES))
                for k, v in env.items())
        and isinstance(request.get("umask"), int) and 0 <= request["umask"] <= 0o777
        and isinstance(resources, dict)
        and all(k in RESOURCES and isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v)
                for k, v in resources.items())
        and isinstance(request.get("sigint_ignored"), bool)
    )  # fmt: skip


def _standard_streams() -> None:
    """New sys.stdin/stdout/stderr on descriptors 0-2, set up as Python sets them at start-up
    for what they now are (a terminal is line-buffered) and for the client's locale."""
    import io
    import locale

    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    encoding = locale.getpreferredencoding(False)
    streams = []
    for fd, mode, errors in ((0, "rb", "strict"), (1, "wb", "strict"), (2, "wb", "backslashreplace")):
        raw = io.FileIO(fd, mode, closefd=False)
        tty = raw.isatty()
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        streams.append(io.TextIOWrapper(buffered, encoding=encoding, errors=errors, line_buffering=tty or fd == 2))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams


def _spare(control, ident: str, cold_threads: int) -> None:
    """A child forked ahead: it forks its symbolic worker (for the default limits, those of
    nearly every call) and waits for the server to hand it a call's connection."""
    import signal
    import socket

    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from diffcli import worker
    from diffcli.limits import DEFAULT

    worker.FORK = True
    with contextlib.suppress(Exception):  # (a call starts its own where this one failed)
        worker.isolated(DEFAULT).start()
    try:
        _, fds, _, _ = socket.recv_fds(control, 1, 1)
    except OSError:
        return
    control.close()
    if len(fds) != 1:
        return  # the server went away
    _child(socket.socket(fileno=fds[0]), ident, cold_threads)


def _child(conn, ident: str, cold_threads: int) -> None:
    """One call, in a forked child: read it, take on the client's context, run it."""
    import signal

    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # its own group: killed with its workers if the client goes
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    found = _read_request(conn)
    if found is None:
        return
    request, fds = found
    op = request.get("op")
    if op == "status":
        _reply(conn, {"status": f"pid {os.getppid()}, socket {conn.getsockname()}"})
        return
    if op == "stop":
        os.kill(os.getppid(), signal.SIGTERM)
        _reply(conn, {"stopped": os.getppid()})
        return
    if request.get("identity") != ident:
        _reply(conn, {"stale": True})
        return
    if not _valid(request, fds):
        return
    try:
        os.chdir(request["cwd"])
    except OSError:
        return  # (the client runs it itself, and says what is wrong with its directory)
    _reply(conn, {"pid": os.getpid()})
    try:  # the client's go-ahead: one that gave up waiting (and runs the command itself) sends none
        if conn.recv(1) != b"g":
            return
    except OSError:
        return
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    _environment(request["env"])
    os.umask(request["umask"])
    if _resources(request["resources"]):  # tighter than the server's: the worker forked ahead is not under them
        from diffcli import worker

        worker.restart_all()
    if request["sigint_ignored"]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _standard_streams()
    import torch

    from diffcli import cli, worker

    torch.set_num_threads(cold_threads)
    worker.FORK = True
    code = cli.run(request["argv"])
    _reply(conn, {"exit": code})
    os._exit(code)


_SERVER_ENVIRONMENT: dict[str, str | None] = {}  # the thread variables as they were before the server set them


def _environment(env: dict[str, str]) -> None:
    from diffcli.client import ENVIRONMENT, ENVIRONMENT_PREFIXES

    for key in [k for k in os.environ if k in ENVIRONMENT or k.startswith(ENVIRONMENT_PREFIXES)]:
        del os.environ[key]
    os.environ.update(env)
    for key, value in _SERVER_ENVIRONMENT.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _resources(limits: dict[str, list[int]]) -> bool:
    """The client's limits, where they are tighter than ours (a limit cannot be raised):
    whether any changed."""
    import resource

    changed = False
    for name, (soft, hard) in limits.items():
        which = getattr(resource, name)
        before = resource.getrlimit(which)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(which, (min(soft, before[1]) if soft != -1 else before[1], before[1]))
        changed = changed or resource.getrlimit(which) != before
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m diffcli.server", description="The diffcli warm server.")
    parser.add_argument("--idle", type=float, default=None, help="exit after this many idle seconds")
    args = parser.parse_args(argv)
    for key in _THREAD_VARIABLES:
        _SERVER_ENVIRONMENT[key] = os.environ.get(key)
        os.environ[key] = "1"

    from diffcli import client

    directory = client.socket_directory(create=True)
    ident = client.identity()
    import fcntl

    lock = os.open(os.path.join(directory, f"{ident}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server for this identity is starting or running
    _log(f"starting (diffcli {client.__version__}, identity {ident})")
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    _warm()
    server = Server(directory, ident, client.idle_seconds() if args.idle is None else args.idle)
    given = _SERVER_ENVIRONMENT["OMP_NUM_THREADS"]
    server.cold_threads = int(given) if given and given.isdigit() else len(os.sched_getaffinity(0))
    if not server.bind():
        _log("another server answers on this socket: exiting")
        return 0
    _subreaper()
    replaced = client.stop_servers(keep=ident, installation_only=client.installation())
    if replaced:
        _log(f"stopped {replaced} server(s) of other versions of this installation")
    _log(f"ready on {server.path} ({threads()} thread)")
    server.serve()
    _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
