"""The ``diffcli`` console script: a thin client of the warm server, else the command line here.

A cold ``diffcli`` spends about 1.5 s importing torch and SymPy before it does
a millisecond of work. The warm server (:mod:`diffcli.server`) has imported
them once; for each call it forks a child that runs the same command line
with this process's arguments, working directory, an allowlist of environment
variables, and this process's own standard input, output and error (passed as
file descriptors), so terminals, colours, pipes and ``-`` behave as they do
here. The child's exit status becomes this process's.

This module imports the standard library only (no click, no diffcli module
but this one and the package's light ``__init__``): it decides in a few
milliseconds whether the server can take the call, and otherwise hands it to
:func:`diffcli.cli.main` in this process. The first call that finds no server
starts one in the background. Off with ``DIFFCLI_SERVER=0`` or ``diffcli
--no-server``, and where ``CI`` is set unless ``DIFFCLI_SERVER=1``.

Wire format (an AF_UNIX stream socket in a directory only this user can
enter): the client sends one request, a 4-byte big-endian length and that
many bytes of JSON, with its three standard descriptors attached to the first
bytes (SCM_RIGHTS); the server side answers with lines of JSON: ``{"pid": N}``
when the command is ready to start, which the client confirms with one byte
``g`` (a client that gave up waiting sends none, so a command never runs
twice), and ``{"exit": N}`` when it ends (``{"stale": true}`` or nothing at
all: run it here instead).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import stat
import struct
import sys

from diffcli import __version__

#: Environment variables a request carries: what changes how a command reads its input or
#: writes its output. Everything else comes from the server's own environment.
ENVIRONMENT = (
    "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "COLORTERM", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
    "COLUMNS", "LINES", "TERM", "LANG", "LANGUAGE", "CI", "GITHUB_ACTIONS", "GITHUB_WORKSPACE", "TZ",
)  # fmt: skip
ENVIRONMENT_PREFIXES = ("LC_", "DIFFCLI_")

#: Resource limits a request carries, so the command runs under the caller's (``ulimit``).
RESOURCES = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_STACK")

#: The largest request (argv, environment) accepted, in bytes.
MAX_REQUEST = 1 << 20

#: Seconds to wait for the server to start a command before running it here.
START_SECONDS = 5.0

#: Seconds of idleness after which a server exits (``DIFFCLI_SERVER_IDLE`` overrides).
IDLE_SECONDS = 900.0


class UnsafeDirectoryError(Exception):
    """The socket directory is not this user's alone."""


def enabled(environ: os._Environ | dict) -> bool:
    """Whether calls may go through the server: ``DIFFCLI_SERVER`` 0/1, else off under CI."""
    setting = environ.get("DIFFCLI_SERVER", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on", "only"):
        return True
    return not environ.get("CI")


def _option_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def eligible(argv: list[str], environ: os._Environ | dict) -> bool:
    """Whether the server can take this call. Help, version and completion stay here (they
    are as fast here); `server` manages it; a compiled engine (threads) and CUDA (which
    cannot be initialised before a fork) run here."""
    if not argv or not enabled(environ) or "_DIFFCLI_COMPLETE" in environ:
        return False
    if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds"):  # (SO_PEERCRED, /proc)
        return False
    if argv[0] in ("--no-server", "server", "--version", "-V") or any(a in ("--help", "-h") for a in argv):
        return False
    if _option_value(argv, "--engine") == "compiled":
        return False
    device = _option_value(argv, "--device")
    return device is None or device.strip().lower() == "cpu"


# -- where the server listens ----------------------------------------------------------


def socket_directory(create: bool = False) -> str:
    """``$DIFFCLI_SERVER_DIR``, else ``$XDG_RUNTIME_DIR/diffcli``, else ``diffcli-UID`` in
    the temporary directory: mode 0700, owned by this user, not a symlink (else
    UnsafeDirectoryError, and nobody uses it). ``create``: make it if it is missing."""
    path = os.environ.get("DIFFCLI_SERVER_DIR")
    if not path:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and os.path.isdir(runtime):
            path = os.path.join(runtime, "diffcli")
        else:
            base = os.environ.get("TMPDIR") or "/tmp"
            path = os.path.join(base, f"diffcli-{os.getuid()}")
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    check_directory(path)
    return path


def check_directory(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeDirectoryError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectoryError(f"{path}: not a directory (a symlink?)")
    if info.st_uid != os.getuid():
        raise UnsafeDirectoryError(f"{path}: owned by uid {info.st_uid}, not {os.getuid()}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        raise UnsafeDirectoryError(f"{path}: mode {stat.S_IMODE(info.st_mode):o}, not 700")


def _package_files() -> list[tuple[str, int, int]]:
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    for entry in os.scandir(here):
        if entry.name.endswith(".py"):
            info = entry.stat()
            found.append((entry.name, info.st_size, info.st_mtime_ns))
    return sorted(found)


def _module_file(name: str) -> tuple[str, int, int]:
    """Where a dependency's package is, and when its ``__init__`` changed (an upgrade
    rewrites it), found without importing it."""
    for entry in sys.path:
        init = os.path.join(entry or ".", name, "__init__.py")
        try:
            info = os.stat(init)
        except OSError:
            continue
        return init, info.st_size, info.st_mtime_ns
    return name, 0, 0


def installation() -> str:
    """Which installation this is: the package's directory and the interpreter."""
    text = f"{os.path.dirname(os.path.abspath(__file__))}\0{os.path.realpath(sys.executable)}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def identity() -> str:
    """What a server must match to serve this client: the installation, diffcli's version
    and files (their sizes and modification times), Python's version, torch's and SymPy's
    files. Upgrading any of them changes it, so no answer ever comes from the old code."""
    parts = [__version__, sys.version, repr(_package_files()), repr(_module_file("torch")), repr(_module_file("sympy"))]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return f"{installation()}-{digest}"


def socket_path(directory: str, ident: str) -> str:
    return os.path.join(directory, f"{ident}.sock")


# -- the request ----------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ENVIRONMENT or k.startswith(ENVIRONMENT_PREFIXES)}


def _resources() -> dict[str, list[int]]:
    try:
        import resource
    except ImportError:
        return {}
    return {name: list(resource.getrlimit(getattr(resource, name))) for name in RESOURCES if hasattr(resource, name)}


def _request(argv: list[str], ident: str) -> dict:
    umask = os.umask(0)
    os.umask(umask)
    return {
        "identity": ident, "argv": argv, "cwd": os.getcwd(), "env": _environment(), "umask": umask,
        "resources": _resources(), "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
    }  # fmt: skip


def send_request(sock: socket.socket, request: dict, fds: list[int] = ()) -> None:
    import json

    body = json.dumps(request).encode()
    message = struct.pack(">I", len(body)) + body
    sent = socket.send_fds(sock, [message], list(fds)) if fds else sock.send(message)
    if sent < len(message):
        sock.sendall(message[sent:])


class _Lines:
    """Lines of JSON from the server side, one at a time."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, b""

    def next(self) -> dict | None:
        import json

        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except InterruptedError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None


def _forward_signals(pid: int) -> None:
    """Ctrl-C (and a TERM or HUP sent to this process) reaches the command's process;
    a signal this process ignores (SIGINT in a background job) stays ignored there."""

    def forward(signum, frame):
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, forward)


def connect(directory: str, ident: str, timeout: float | None = START_SECONDS) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path(directory, ident))
    except BaseException:
        sock.close()
        raise
    return sock


def through_server(argv: list[str]) -> int | None:
    """The exit status of the command run by the warm server, or None where it cannot
    be (no server: one is started for next time; another version; a refusal)."""
    try:
        directory = socket_directory()
    except FileNotFoundError:
        start_server()
        return None
    except UnsafeDirectoryError:
        return None
    ident = identity()
    try:
        sock = connect(directory, ident)
    except (FileNotFoundError, ConnectionRefusedError):
        start_server()
        return None
    except OSError:
        return None
    with sock:
        try:
            send_request(sock, _request(argv, ident), [0, 1, 2])
        except (OSError, ValueError):
            return None
        lines = _Lines(sock)
        first = lines.next()
        if not first or "pid" not in first or not isinstance(first["pid"], int):
            return None  # refused (busy, stale, another version), or too slow: run it here
        try:
            sock.sendall(b"g")  # go ahead (without it the child does not run the command)
        except OSError:
            return None
        sock.settimeout(None)
        _forward_signals(first["pid"])
        last = lines.next()
        if last is None or not isinstance(last.get("exit"), int):
            os.write(2, b"diffcli: the warm server's process for this command ended without a status\n")
            return 3
        return last["exit"]


def main() -> None:
    """The console script. ``DIFFCLI_SERVER=only`` never runs a command here: where the
    server cannot take it, that is an error (exit 3) instead (for tests and doubters)."""
    argv = sys.argv[1:]
    try:
        code = through_server(argv) if eligible(argv, os.environ) else None
    except KeyboardInterrupt:  # before the command started (after, Ctrl-C is forwarded to it)
        os.write(2, b"Interrupted.\n")
        os._exit(130)
    if code is None and os.environ.get("DIFFCLI_SERVER") == "only" and argv and argv[0] != "server":
        os.write(2, b"diffcli: DIFFCLI_SERVER=only, and the warm server did not take this command\n")
        os._exit(3)
    if code is not None:
        os._exit(code)
    from diffcli.cli import main as in_process

    in_process()


# -- starting and stopping ------------------------------------------------------------------


def idle_seconds() -> float:
    try:
        return float(os.environ.get("DIFFCLI_SERVER_IDLE", IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS


def start_server(idle: float | None = None, wait: bool = False, say=None) -> int:
    """Start a server for this installation in the background (detached, its output to
    ``server.log`` in the socket directory). ``wait``: until it answers (0), or not (1)."""
    import subprocess
    import time

    try:
        directory = socket_directory(create=True)
    except (OSError, UnsafeDirectoryError) as exc:
        if say:
            say(f"diffcli: cannot start the server: {exc}")
        return 1
    running = server_status() if wait else None
    if running is not None:
        if say:
            say(f"already running: {running}")
        return 0
    log = os.open(os.path.join(directory, "server.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "diffcli.server", "--idle", str(idle if idle is not None else idle_seconds())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )  # fmt: skip
    except OSError as exc:
        if say:
            say(f"diffcli: cannot start the server: {exc}")
        return 1
    finally:
        os.close(log)
    if not wait:
        return 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = server_status()
        if found is not None:
            if say:
                say(f"started: {found}")
            return 0
        time.sleep(0.1)
    if say:
        say(f"diffcli: the server did not start; see {os.path.join(directory, 'server.log')}")
    return 1


def _ask(directory: str, ident: str, op: str) -> dict | None:
    try:
        with connect(directory, ident, timeout=START_SECONDS) as sock:
            send_request(sock, {"op": op})
            return _Lines(sock).next()
    except OSError:
        return None


def server_status() -> str | None:
    """A line about this installation's server, or None where none answers."""
    try:
        directory = socket_directory()
    except (FileNotFoundError, UnsafeDirectoryError):
        return None
    answer = _ask(directory, identity(), "status")
    return answer.get("status") if answer and isinstance(answer.get("status"), str) else None


def stop_servers(keep: str | None = None, installation_only: str | None = None) -> int:
    """Ask every server in the socket directory to stop (but ``keep``; only those of one
    installation where given): how many agreed."""
    try:
        directory = socket_directory()
    except (FileNotFoundError, UnsafeDirectoryError):
        return 0
    stopped = 0
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".sock"):
            continue
        ident = name[: -len(".sock")]
        if ident == keep or (installation_only and not ident.startswith(installation_only + "-")):
            continue
        answer = _ask(directory, ident, "stop")
        if answer and answer.get("stopped"):
            stopped += 1
    return stopped
