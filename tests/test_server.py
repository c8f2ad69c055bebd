"""The warm server (diffcli.server) and its client (the console script, diffcli.client):
the same bytes and exit statuses as in-process, and a socket only its user can use."""

import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from diffcli import client

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm server is Linux's")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SCRIPT = Path(sys.executable).parent / "diffcli"
EXPR = "x**2*sin(y) + exp(x*y)/(1+y**2)"


def command(*args):
    """The console script (or the same entry point where it is not installed next to Python)."""
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [sys.executable, "-c", "from diffcli.client import main; main()", *args]


def environment(directory, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    return {**env, "DIFFCLI_SERVER_DIR": str(directory), "DIFFCLI_SERVER": "1", "COLUMNS": "100", **extra}


def start(directory, env, idle=600):
    done = subprocess.run(command("server", "start", "--idle", str(idle)), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


def server_pid(env):
    out = subprocess.run(command("server", "status"), env=env, capture_output=True, text=True).stderr
    out = out or subprocess.run(command("server", "status"), env=env, capture_output=True, text=True).stdout
    return int(out.split("pid ")[1].split(",")[0])


@pytest.fixture(scope="module")
def warm():
    directory = Path(tempfile.mkdtemp(prefix="dcs"))  # short: a socket path has at most 107 bytes
    directory.chmod(0o700)
    env = environment(directory)
    start(directory, env)
    yield directory, env
    subprocess.run(command("server", "stop"), env=env, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def both(env, argv, stdin=None, cwd=SAMPLES):
    """(warm, in-process) runs of the console script: the warm one must be served."""
    warm = subprocess.run(command(*argv), input=stdin, capture_output=True, cwd=cwd,
                          env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
    cold = subprocess.run(command(*argv), input=stdin, capture_output=True, cwd=cwd, env={**env, "DIFFCLI_SERVER": "0"})
    return warm, cold


CASES = [
    (["jacobian", "[x y, sqrt(x)]", "--at", "x=0,y=1", "--mode", "reverse", "-f", "table"], None),
    (["grad", "log(x)", "--grid", "x=-1:1:101", "--summary", "-f", "table"], None),
    (["grad", "-", "--at", "x=1"], b"x^3\n"),
    (["grad", "x y", "--points", "-"], b"x,y\n1,2\n3,4\n"),
    (["grad", "x y +", "--at", "x=1"], None),  # an input error
    (["value", "x", "--at", "x=1", "--max-memory", "64"], None),  # the worker's memory cap, warm as cold
    (["grad", "2^2^2^2^2^2^2^2", "--at", "x=1"], None),  # a hostile constant
    (["batch", "seed.toml"], None),
    (["batch", "orders.toml", "-f", "csv"], None),
    (["batch", "vectors.toml", "-f", "plain"], None),
]


@pytest.mark.parametrize(("argv", "stdin"), CASES, ids=[" ".join(a)[:40] for a, _ in CASES])
def test_the_same_bytes_and_exit_status_warm_and_in_process(warm, argv, stdin):
    _, env = warm
    served, here = both(env, argv, stdin)
    assert served.returncode == here.returncode, served.stderr
    assert served.stdout == here.stdout
    assert served.stderr == here.stderr


def _seed_lines():
    for line in (SAMPLES / "seed.sh").read_text().splitlines():
        if line.startswith("diffcli "):
            yield line.partition("# exit ")[0].strip()


def test_the_seed_sample_warm_is_what_it_is_in_process(warm):
    """Every line of samples/seed.sh through the server, against the same line in-process."""
    import shlex

    from click.testing import CliRunner

    from diffcli.cli import cli

    _, env = warm
    for line in _seed_lines():
        argv = shlex.split(line)[1:]
        served = subprocess.run(command(*argv), capture_output=True, text=True, cwd=SAMPLES,
                                env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
        here = CliRunner().invoke(cli, argv)
        assert (served.returncode, served.stdout, served.stderr) == (here.exit_code, here.stdout, here.stderr), line


def _every_command_in_every_format():
    from diffcli.commands import COMMANDS, FORMATS

    for name, row in COMMANDS.items():
        expr = "[x y, sqrt(x)]" if row.vector else EXPR
        extra = ["--wrt", "x,y"] if "wrt" in row.inputs else []
        for fmt in FORMATS:
            yield [name, expr, "--at", "x=0.5,y=2", "--at", "x=0,y=1", "-f", fmt, *extra]


def test_every_command_in_every_format_warm_is_what_it_is_in_process(warm, monkeypatch):
    """Through the server (a subprocess) against click's runner in this process: the same
    stdout, stderr and exit status."""
    from click.testing import CliRunner

    from diffcli.cli import cli

    _, env = warm
    monkeypatch.setenv("COLUMNS", env["COLUMNS"])
    for argv in _every_command_in_every_format():
        served = subprocess.run(command(*argv), capture_output=True, text=True, cwd=SAMPLES,
                                env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
        here = CliRunner().invoke(cli, argv)
        assert (served.returncode, served.stdout, served.stderr) == (here.exit_code, here.stdout, here.stderr), argv


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not list(Path("/proc/self/task").glob("*/children")), reason="needs /proc/PID/task/*/children")
def test_a_killed_client_has_its_command_killed(warm):
    """The call goes to the child the server forked ahead; killing the client kills that
    child and its symbolic worker, and the server reaps both."""
    _, env = warm
    server = server_pid(env)  # (a call too: the child that answered it exits)
    seen = []
    for _ in range(200):  # the child forked ahead: the server's only child, with its worker, twice in a row
        now = _children(server)
        seen.append(now[0] if len(now) == 1 and _children(now[0]) else None)
        if len(seen) >= 2 and seen[-1] is not None and seen[-1] == seen[-2]:
            break
        time.sleep(0.1)
    spare = seen[-1]
    command_processes = [spare, *_children(spare)]
    p = subprocess.Popen(command("hessian", EXPR, "--grid", "x=-1:1:2000", "--grid", "y=-1:1:2000", "--summary"),
                         stdout=subprocess.DEVNULL, env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
    for _ in range(200):  # until a new spare stands in for the one that took the call
        if set(_children(server)) - {spare}:
            break
        time.sleep(0.05)
    assert Path(f"/proc/{spare}").exists()  # still at work on the call
    p.kill()
    p.wait()
    for _ in range(200):
        if not any(Path(f"/proc/{q}").exists() for q in command_processes):
            break
        time.sleep(0.05)
    assert not any(Path(f"/proc/{q}").exists() for q in command_processes)


def test_a_client_that_ignores_ctrl_c_runs_to_the_end(warm):
    _, env = warm
    p = subprocess.Popen(command("grad", "x y", "--grid", "x=0:1:300", "--grid", "y=0:1:300", "--summary", "-f",
                                 "json"), stdout=subprocess.PIPE, env={**env, "DIFFCLI_SERVER": "only"},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and json.loads(out)["summary"]["points"] == 90_000


def test_a_pipe_closed_early_is_141_both_ways(warm):
    _, env = warm
    for setting in ("only", "0"):
        p = subprocess.Popen(command("grad", "x y", "--grid", "x=0:1:300", "--grid", "y=0:1:300", "-f", "csv"),
                             stdout=subprocess.PIPE, env={**env, "DIFFCLI_SERVER": setting})  # fmt: skip
        p.stdout.readline()
        p.stdout.close()
        assert p.wait() == 141, setting


def test_ctrl_c_in_a_batch_keeps_the_finished_records(warm, tmp_path):
    _, env = warm
    suite = tmp_path / "slow.txt"
    suite.write_text("".join(f"x^{k} + sin(x y); x=1,y=2\n" for k in range(1, 400)))
    p = subprocess.Popen(command("batch", str(suite), "-f", "json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
    first = p.stdout.readline()
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    records = [json.loads(line) for line in (first + rest).splitlines()]
    assert records[0]["case"] == "x^1 + sin(x y)" and records[-1]["summary"]["interrupted"] is True


def test_eight_clients_at_once(warm):
    _, env = warm
    procs = [subprocess.Popen(command("grad", f"x^{k}", "--at", "x=2"), stdout=subprocess.PIPE, text=True,
                              env={**env, "DIFFCLI_SERVER": "only"}) for k in range(2, 10)]  # fmt: skip
    for k, p in zip(range(2, 10), procs):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        assert float(out.split("\t")[2]) == k * 2 ** (k - 1)


def _raw(directory, payload: bytes, fds=()):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(client.socket_path(str(directory), client.identity()))
    if fds:
        socket.send_fds(sock, [payload], list(fds))
    elif payload:
        sock.sendall(payload)
    return sock


def test_a_client_that_sends_nothing_delays_no_one(warm):
    directory, env = warm
    silent = _raw(directory, b"")
    try:
        out = subprocess.run(command("value", "x", "--at", "x=1"), capture_output=True, text=True,
                             env={**env, "DIFFCLI_SERVER": "only"}, timeout=60)  # fmt: skip
        assert out.returncode == 0
    finally:
        silent.close()


def _framed(doc) -> bytes:
    body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage that is not a length",
        struct.pack(">I", 1 << 30) + b"{}",  # a length past the cap
        _framed(b"not json"),
        _framed([1, 2, 3]),  # not an object
        _framed({"identity": "?", "argv": ["value", "x"]}),  # another identity: stale
        _framed({"identity": None, "argv": "value x", "cwd": 3}),
    ],
)
def test_malformed_messages_get_no_service_and_the_server_survives(warm, payload):
    directory, env = warm
    pid = server_pid(env)
    assert b'"pid"' not in _answer(directory, payload)
    # a request with the right identity but a field it may not set is refused too
    request = client._request(["value", "x", "--at", "x=1"], client.identity())
    assert b'"pid"' not in _answer(directory, _framed({**request, "env": {"PATH": "/evil"}}), fds=[0, 1, 2])
    assert server_pid(env) == pid


def _answer(directory, payload, fds=()) -> bytes:
    with _raw(directory, payload, fds) as sock:
        sock.settimeout(30)
        try:
            return sock.recv(4096)
        except ConnectionResetError:  # closed with the garbage unread
            return b""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_is_refused(warm):
    """A process of another uid (nobody): the directory is not its own, so its client does
    not use it; and a raw connection to the socket (opened up for the test) gets nothing."""
    import pwd

    directory, _ = warm
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")
    path = client.socket_path(str(directory), client.identity())
    directory.chmod(0o711)
    os.chmod(path, 0o777)
    read, write = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # as nobody: only socket calls, then out
            try:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                try:
                    client.check_directory(str(directory))
                    report = b"directory accepted;"
                except client.UnsafeDirectoryError:
                    report = b"directory refused;"
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(30)
                sock.connect(path)
                try:
                    report += b"answer " + repr(sock.recv(4096)).encode()
                except ConnectionResetError:
                    report += b"answer b''"
                os.write(write, report)
            except BaseException as exc:
                os.write(write, repr(exc).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        report = os.read(read, 4096).decode()
    finally:
        os.close(read), os.close(write)
        directory.chmod(0o700)
        os.chmod(path, 0o600)
    assert report == "directory refused;answer b''"
    assert f"refused a connection from uid {nobody.pw_uid}" in (directory / "server.log").read_text()


def test_a_directory_with_the_wrong_mode_is_not_used(warm, monkeypatch):
    directory, env = warm
    monkeypatch.setenv("DIFFCLI_SERVER_DIR", str(directory))
    directory.chmod(0o755)
    try:
        with pytest.raises(client.UnsafeDirectoryError, match="mode 755"):
            client.socket_directory()
        out = subprocess.run(command("value", "2+3"), capture_output=True, text=True,
                             env={**env, "DIFFCLI_SERVER": "1"})  # fmt: skip
        assert out.returncode == 0 and "5.0" in out.stdout  # in-process
        refused = subprocess.run(command("value", "2+3"), capture_output=True, text=True,
                                 env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
        assert refused.returncode == 3
    finally:
        directory.chmod(0o700)


def test_a_symlink_is_not_a_directory(tmp_path):
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(client.UnsafeDirectoryError, match="symlink"):
        client.check_directory(str(link))


def _status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_many_requests_leave_the_server_with_one_thread_and_flat_memory(warm):
    directory, env = warm
    pid = server_pid(env)
    for _ in range(20):  # settle
        with _raw(directory, _framed({"op": "status"})) as sock:
            sock.recv(4096)
    before = _status(pid)
    for _ in range(500):
        with _raw(directory, _framed({"op": "status"})) as sock:
            assert b"status" in sock.recv(4096)
    after = _status(pid)
    assert before["Threads"] == after["Threads"] == 1
    assert after["VmRSS"] < before["VmRSS"] * 1.05 + 2048  # (KiB)
    for _ in range(10):  # and through real commands
        out = subprocess.run(command("grad", "x^2", "--at", "x=1"), capture_output=True,
                             env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
        assert out.returncode == 0
    assert _status(pid)["Threads"] == 1


def test_compiled_and_cuda_help_and_version_run_in_process():
    env = {"DIFFCLI_SERVER": "1"}
    assert client.eligible(["grad", "x", "--at", "x=1"], env)
    here = (["grad", "x", "--engine", "compiled"], ["grad", "x", "--engine=compiled"],
            ["grad", "x", "--device", "cuda"], ["grad", "--help"], ["--version"], ["--no-server", "grad", "x"],
            ["server", "stop"], [])  # fmt: skip
    for argv in here:
        assert not client.eligible(argv, env), argv
    assert not client.eligible(["grad", "x"], {"CI": "true"})
    assert client.eligible(["grad", "x"], {"CI": "true", "DIFFCLI_SERVER": "1"})
    assert not client.eligible(["grad", "x"], {"DIFFCLI_SERVER": "0"})


def test_the_client_imports_only_the_standard_library():
    code = (
        "import sys\nimport diffcli.client\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('click', 'torch', 'sympy', 'numpy', 'rich', 'json')"
        " or (m.startswith('diffcli.') and m != 'diffcli.client')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_start_status_stop_and_idle_exit():
    directory = Path(tempfile.mkdtemp(prefix="dci"))
    directory.chmod(0o700)
    env = environment(directory)
    try:
        start(directory, env, idle=1)
        pid = server_pid(env)
        assert subprocess.run(command("value", "1", "-f", "plain"), env={**env, "DIFFCLI_SERVER": "only"},
                              capture_output=True).returncode == 0  # fmt: skip
        for _ in range(200):  # it exits by itself once idle for a second
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the idle server did not exit")
        assert not list(directory.glob("*.sock"))
        start(directory, env)
        stopped = subprocess.run(command("server", "stop"), env=env, capture_output=True, text=True)
        assert "stopped 1 server" in stopped.stderr
        status = subprocess.run(command("server", "status"), env=env, capture_output=True, text=True)
        assert status.returncode == 1
    finally:
        subprocess.run(command("server", "stop"), env=env, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_killed_server_mid_request_still_answers(warm):
    directory, env = warm
    env = {**env, "DIFFCLI_SERVER": "only"}
    p = subprocess.Popen(command("hessian", EXPR, "--grid", "x=-1:1:600", "--grid", "y=-1:1:600", "--summary",
                                 "-f", "json"), stdout=subprocess.PIPE, env=env)  # fmt: skip
    time.sleep(0.5)
    os.kill(server_pid(env), signal.SIGKILL)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0
    assert json.loads(out)["summary"]["points"] == 360_000
    start(directory, environment(directory))  # (for the tests after this one)


def test_an_upgrade_in_place_is_never_answered_by_the_old_code(tmp_path):
    """A copy of the package, served warm; then its defaults change on disk (as an upgrade
    would change them): the next call runs the new code (and a new server replaces the old)."""
    copy = tmp_path / "site"
    shutil.copytree(ROOT / "diffcli", copy / "diffcli", ignore=shutil.ignore_patterns("__pycache__"))
    directory = Path(tempfile.mkdtemp(prefix="dcu"))
    directory.chmod(0o700)
    env = {**environment(directory), "PYTHONPATH": str(copy)}
    run = [sys.executable, "-c", "from diffcli.client import main; main()"]
    try:
        subprocess.run([*run, "server", "start"], env=env, capture_output=True, check=True, cwd=tmp_path)
        old = subprocess.run([*run, "grad", "x^2", "--at", "x=1", "-f", "json"], env={**env, "DIFFCLI_SERVER": "only"},
                             capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert json.loads(old.stdout)["rtol"] == 1e-9
        commands = copy / "diffcli" / "commands.py"
        commands.write_text(commands.read_text().replace('"float64": (1e-9, 1e-12)', '"float64": (2.5e-9, 1e-12)'))
        new = subprocess.run([*run, "grad", "x^2", "--at", "x=1", "-f", "json"], env=env, capture_output=True,
                             text=True, cwd=tmp_path)  # fmt: skip
        assert json.loads(new.stdout)["rtol"] == 2.5e-9
    finally:
        subprocess.run([*run, "server", "stop"], env=env, capture_output=True, cwd=tmp_path)
        shutil.rmtree(directory, ignore_errors=True)


def test_the_socket_is_private():
    directory = Path(tempfile.mkdtemp(prefix="dcp"))
    directory.chmod(0o700)
    env = environment(directory)
    try:
        start(directory, env)
        (sock,) = directory.glob("*.sock")
        mode = stat.S_IMODE(sock.stat().st_mode)
        assert mode & 0o077 == 0 and stat.S_IMODE(directory.stat().st_mode) == 0o700
    finally:
        subprocess.run(command("server", "stop"), env=env, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def test_hostile_input_is_refused_cleanly_through_the_server(warm, tmp_path):
    """tests/test_hostile.py's cases, warm: exit 2, one clean error, nothing run, the server fine."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_hostile

    _, env = warm
    pid = server_pid(env)
    sentinel = tmp_path / "pwned"
    for param in test_hostile.cases():
        args, stdin = param.values
        args = [a.format(sentinel=sentinel) if "{sentinel}" in a else a for a in args]
        argv = [args[0], *test_hostile.LIMITS, *args[1:]]
        if any("\0" in a for a in argv):
            continue  # (no process can be given a NUL in its arguments; the in-process test has these)
        served = subprocess.run(command(*argv), input=stdin, capture_output=True, text=True,
                                env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
        assert served.returncode == 2, (param.id, served.stderr)
        assert served.stdout == "" and served.stderr.startswith("Error: "), param.id
        assert "Traceback" not in served.stderr and not sentinel.exists(), param.id
    assert server_pid(env) == pid


def _on_a_terminal(argv, env):
    """(output, exit status) of the console script on a pseudo-terminal, as a person sees it."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not SCRIPT.exists(), reason="needs the installed console script")
def test_on_a_terminal_the_table_and_its_colours_are_the_same(warm):
    _, env = warm
    env = {**env, "TERM": "xterm-256color", "COLUMNS": "90", "LINES": "40"}
    for argv in (["hessian", "x^2 sin(y)", "--at", "x=1,y=2"], ["grad", "x^2 abs(y)", "--at", "x=1,y=0"]):
        served = _on_a_terminal(command(*argv), {**env, "DIFFCLI_SERVER": "only"})
        here = _on_a_terminal(command(*argv), {**env, "DIFFCLI_SERVER": "0"})
        assert served == here and b"\x1b[" in served[0], argv  # (colour codes: it knew it was a terminal)


def test_the_callers_resource_limits_apply_warm(warm):
    """A caller under `ulimit -v` (tighter than the server's): the command, and a worker
    forked anew under that limit, answer as they do in-process."""
    import resource

    _, env = warm

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    argv = ["hessian", EXPR, "--at", "x=1,y=2", "-f", "json"]
    served = subprocess.run(command(*argv), capture_output=True, preexec_fn=limited,
                            env={**env, "DIFFCLI_SERVER": "only"})  # fmt: skip
    here = subprocess.run(command(*argv), capture_output=True, preexec_fn=limited, env={**env, "DIFFCLI_SERVER": "0"})
    assert (served.returncode, served.stdout, served.stderr) == (here.returncode, here.stdout, here.stderr)
    assert served.returncode == 0
