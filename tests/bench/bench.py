"""diffcli's performance targets, measured on this machine.

    python tests/bench/bench.py            # everything (a few minutes)
    python tests/bench/bench.py --quick    # fewer repeats, no 10**7-point runs

Prints a markdown table: target, measured ratio or figure, bound, pass/fail.
Every time target is a ratio against a floor measured in the same run,
interleaved, median of the repeats, because shared machines are noisy. Not
collected by pytest (timing assertions flake); see the README's Performance
section for the latest table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
EXPR = "x**2*sin(y) + exp(x*y)/(1+y**2)"
VECTOR = "[x**2*sin(y), exp(x*y)/(1+y**2), x - y]"  # 3 outputs, 2 variables
GRID = ["--grid", "x=-2:2:1000", "--grid", "y=-2:2:1000"]
rows: list[tuple[str, str, str, str]] = []


def diffcli(*args: str) -> list[str]:
    return [PY, "-m", "diffcli", *args]


def wall(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, check=False, env=env)
    return time.perf_counter() - start


def interleaved(commands: dict[str, list[str]], repeats: int, env: dict | None = None, stat=statistics.median):
    """Median (or ``stat``) wall time of each command, the commands run in turn, ``repeats`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the file cache once
        wall(cmd, env)
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(wall(cmd, env))
    return {name: stat(t) for name, t in times.items()}


def record(target: str, measured: float, bound: float, unit: str = "x") -> None:
    if unit == "x":
        fmt, limit = f"{measured:.2f}x", f"<= {bound:g}x"
    elif unit == "s":
        fmt, limit = f"{measured:.3f} s", f"<= {bound:g} s"
    else:
        fmt, limit = f"{measured:,.0f} {unit}", f"< {bound:,.0f} {unit}"
    rows.append((target, fmt, limit, "pass" if measured <= bound else "FAIL"))


def help_start_up(repeats: int) -> None:
    commands = {"floor": [PY, "-c", "import click, rich"]}
    from diffcli.commands import COMMANDS

    for args in (["--help"], ["--version"], *[[c, "--help"] for c in (*COMMANDS, "batch")]):
        commands[" ".join(args)] = diffcli(*args)
    times = interleaved(commands, repeats)
    worst = max(v for k, v in times.items() if k != "floor")
    record("1. --help, --version, subcommand --help vs `import click, rich` (worst)", worst / times["floor"], 1.5)
    out = subprocess.run([PY, "-X", "importtime", "-m", "diffcli", "--help"], capture_output=True, text=True, cwd=ROOT)
    heavy = [m for m in ("torch", "sympy") if f"| {m}\n" in out.stderr or f"|   {m}\n" in out.stderr]
    rows.append(("1. --help imports torch or SymPy (python -X importtime)", ", ".join(heavy) or "neither", "neither",
                 "pass" if not heavy else "FAIL"))  # fmt: skip


def one_liners(repeats: int) -> None:
    commands = {"floor": [PY, "-c", "import torch, sympy"]}
    for command in ("value", "grad", "hessian", "jvp"):
        commands[command] = diffcli(command, EXPR, "--at", "x=1,y=2", "--format", "json")
    for command in ("jacobian", "vjp"):
        commands[command] = diffcli(command, VECTOR, "--at", "x=1,y=2", "--format", "json")
    commands["diff"] = diffcli("diff", EXPR, "--at", "x=1,y=2", "--wrt", "x:2,y", "--format", "json")
    commands["taylor"] = diffcli("taylor", EXPR, "--at", "x=1,y=2", "--order", "5", "--format", "json")
    times = interleaved(commands, repeats)
    shown = {"jacobian": " of a 3-vector", "vjp": " of a 3-vector", "diff": " --wrt x:2,y", "taylor": " --order 5"}
    for command in [c for c in commands if c != "floor"]:
        record(f"2. one-liner `{command}`{shown.get(command, '')} vs `import torch, sympy`",
               times[command] / times["floor"], 1.15)  # fmt: skip


FLOOR_GRID = """
import sympy, torch
x, y = sympy.symbols("x y", real=True)
f = x**2*sympy.sin(y) + sympy.exp(x*y)/(1 + y**2)
{what} = {formula}
fn = sympy.lambdify([x, y], {what}, modules="torch", cse=True)
g = torch.linspace(-2, 2, 1000, dtype=torch.float64)
X, Y = torch.meshgrid(g, g, indexing="ij")
out = fn(X.reshape(-1), Y.reshape(-1))
"""


def grids(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        grad_floor = Path(tmp, "grad.py")
        grad_floor.write_text(FLOOR_GRID.format(what="grad", formula="[f.diff(v) for v in (x, y)]"))
        hess_floor = Path(tmp, "hess.py")
        hess_floor.write_text(FLOOR_GRID.format(what="hess", formula="[f.diff(a, b) for a in (x, y) for b in (x, y)]"))
        jacobian_floor = Path(tmp, "jacobian.py")
        jacobian_floor.write_text(
            FLOOR_GRID.replace("f = x**2*sympy.sin(y) + sympy.exp(x*y)/(1 + y**2)",
                               "f = [x**2*sympy.sin(y), sympy.exp(x*y)/(1 + y**2), x - y]")
            .format(what="jacobian", formula="[[c.diff(v) for v in (x, y)] for c in f]")
        )  # fmt: skip
        commands = {
            "grad floor": [PY, str(grad_floor)],
            "hessian floor": [PY, str(hess_floor)],
            "jacobian floor": [PY, str(jacobian_floor)],
            "grad": diffcli("grad", EXPR, *GRID, "--summary", "--format", "json"),
            "hessian": diffcli("hessian", EXPR, *GRID, "--summary", "--format", "json"),
            "jacobian": diffcli("jacobian", VECTOR, *GRID, "--summary", "--format", "json"),
        }
        times = interleaved(commands, repeats)
    record("3. 10^6-point grad grid vs lambdified-gradient floor", times["grad"] / times["grad floor"], 1.5)
    record("3. 10^6-point hessian grid vs the same kind of floor", times["hessian"] / times["hessian floor"], 2.0)
    record("3. 10^6-point jacobian grid (3 outputs, 2 variables) vs the same kind of floor",
           times["jacobian"] / times["jacobian floor"], 2.0)  # fmt: skip


#: The floor of the loop grid: SymPy's sum of the 100 terms, differentiated and lambdified
#: to torch, on the same 10^5 points (the reference alone, no autodiff, no checking).
FLOOR_SUM = """
import sympy, torch
x = sympy.Symbol("x", real=True)
f = sympy.Add(*[x**k / sympy.factorial(k) for k in range(100)])
fn = sympy.lambdify([x], [f.diff(x)], modules="torch", cse=True)
out = fn(torch.linspace(-2, 2, 100000, dtype=torch.float64))
"""


def loops(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp, "sum.py")
        floor.write_text(FLOOR_SUM)
        commands = {
            "floor": [PY, "-c", "import torch, sympy"],
            "iterate": diffcli("grad", "iterate((s + x/s)/2, s, 1, 1000)", "--at", "x=2", "--format", "json"),
            "sum floor": [PY, str(floor)],
            "sum": diffcli("grad", "sum(x^k/factorial(k), k, 0, 99)", "--grid", "x=-2:2:100000", "--summary",
                           "--format", "json"),
        }  # fmt: skip
        times = interleaved(commands, repeats)
    record("9. one-liner `grad` of 1,000 Newton steps (iterate) vs `import torch, sympy`",
           times["iterate"] / times["floor"], 1.15)  # fmt: skip
    record("9. 10^5-point grad grid of a 100-term sum vs lambdified-sum floor", times["sum"] / times["sum floor"], 1.5)
    start = time.perf_counter()
    peak = peak_rss_mib([PY, "-c", TAPE])
    rows.append(("9. torch's gradient through 10,000 Newton steps on 10^5 points (autograd; time, peak RSS)",
                 f"{time.perf_counter() - start:.1f} s, {peak:,.0f} MiB", "bounded", "-"))  # fmt: skip


#: autodiff alone (the reference of 10,000 steps on 10^5 points is another matter): how the
#: chunking bounds the tape that autograd records through every step.
TAPE = """
from diffcli import autodiff
from diffcli.pipeline import prepare
autodiff.compute(prepare("grad", "iterate((s + x/s)/2, s, 1, 10000)", grid=["x=1:2:100000"]))
"""


def batch(repeats: int) -> None:
    commands = {
        "floor": [PY, "-c", "import torch, sympy"],
        "batch": diffcli("batch", "samples/feynman.toml", "--format", "json"),
    }
    times = interleaved(commands, repeats)
    record("4. feynman.toml batch (100 x 4 x 10) vs `import torch, sympy`", times["batch"] / times["floor"], 3.0)


def pictures(repeats: int) -> None:
    """Target 10: a plot costs its checks plus matplotlib; an HTML report costs little beside its batch."""
    with tempfile.TemporaryDirectory() as tmp:
        out, page = str(Path(tmp, "p.png")), str(Path(tmp, "r.html"))
        grid = ["--grid", "x=-3:3:401", "--format", "json"]
        commands = {
            "floor": [PY, "-c", "import torch, sympy, matplotlib.figure, matplotlib.backends.backend_agg"],
            "plot": diffcli("plot", "x^2 sin(3 x)", *grid, "--checks", "value,grad,hessian", "--out", out),
            "batch": diffcli("batch", "samples/feynman.toml", "--format", "json"),
            "batch html": diffcli("batch", "samples/feynman.toml", "--format", "json", "--html", page),
        }
        times = interleaved(commands, repeats)
    record("10. `plot` of value, grad and Hessian on 401 points vs importing torch, SymPy and matplotlib",
           times["plot"] / times["floor"], 1.3)  # fmt: skip
    record("10. feynman.toml batch with `--html` vs without", times["batch html"] / times["batch"], 1.5)


def pytest_plugin(repeats: int) -> None:
    """Target 11: the plugin costs a pytest run without suites nothing; a suite under pytest
    costs about what `diffcli batch` does, beside pytest's own start (its plugins, their
    summaries). Bytecode is cached here as in a user's environment: pytest rewrites the
    asserts of its plugins' modules, diffcli's included, and caches the result."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        plain, suites = Path(tmp, "plain"), Path(tmp, "suites")
        plain.mkdir()
        suites.mkdir()
        (plain / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
        shutil.copy(ROOT / "samples" / "feynman.toml", suites / "feynman.diffcli.toml")
        pytest = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir"]
        empty = {
            "pytest": [*pytest, str(plain), str(plain)],
            "pytest without the plugin": [*pytest, str(plain), "-p", "no:diffcli", str(plain)],
        }
        suite = {
            "suite under pytest": [*pytest, str(suites), str(suites)],
            "batch": diffcli("batch", str(suites / "feynman.diffcli.toml"), "--format", "json"),
        }
        # a half-second run's median moves by tens of per cent on a shared machine: the best of 15
        times = interleaved(empty, 15, env, stat=min) | interleaved(suite, repeats, env)
    record("11. pytest on a project without suites (best of 15), the plugin installed vs `-p no:diffcli`",
           times["pytest"] / times["pytest without the plugin"], 1.1)  # fmt: skip
    ratio = (times["suite under pytest"] - times["pytest"]) / times["batch"]
    record("11. feynman.toml (400 checks) under pytest, less pytest's own start, vs `diffcli batch`", ratio, 1.3)
    info("11. feynman.toml under pytest and `diffcli batch`; pytest's own start (one empty test)",
         f"{times['suite under pytest']:.2f} s, {times['batch']:.2f} s; {times['pytest']:.2f} s")  # fmt: skip


def warm_server(repeats: int) -> None:
    """Target 8: one-liners and a small batch through the warm server (the console script,
    DIFFCLI_SERVER=only so that a fallback cannot pass for a warm answer), cold beside them."""
    script = str(Path(PY).parent / "diffcli")
    with tempfile.TemporaryDirectory(prefix="dcb") as directory:
        os.chmod(directory, 0o700)
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env |= {"DIFFCLI_SERVER_DIR": directory, "DIFFCLI_SERVER": "only"}
        subprocess.run([script, "server", "start"], env=env, check=True, capture_output=True)
        commands = {"floor": [PY, "-c", "import torch, sympy"]}
        for command in ("value", "grad", "hessian", "jvp"):
            commands[command] = [script, command, EXPR, "--at", "x=1,y=2", "--format", "json"]
        commands["batch"] = [script, "batch", "samples/seed.toml"]
        cold = {"DIFFCLI_SERVER": "0"}
        commands["cold grad"] = ["env", *(f"{k}={v}" for k, v in cold.items()), script, "grad", EXPR, "--at",
                                 "x=1,y=2", "--format", "json"]  # fmt: skip
        commands["cold batch"] = ["env", *(f"{k}={v}" for k, v in cold.items()), script, "batch", "samples/seed.toml"]
        times = interleaved(commands, repeats, env)
        status = subprocess.run([script, "server", "status"], env=env, capture_output=True, text=True).stdout
        pid = int(status.split("pid ")[1].split(",")[0]) if "pid " in status else None
        resident = _tree_rss(pid) / 1024 if pid else float("nan")
        subprocess.run([script, "server", "stop"], env=env, capture_output=True)
    for command in ("value", "grad", "hessian", "jvp"):
        record(f"8. warm one-liner `{command}` (median wall time)", times[command], 0.15, "s")
        record(f"8. warm one-liner `{command}` vs `import torch, sympy`", times[command] / times["floor"], 0.1)
    record("8. warm `batch samples/seed.toml`", times["batch"], 0.4, "s")
    rows.append(("8. cold (in-process) `grad` one-liner and seed.toml batch, for comparison",
                 f"{times['cold grad']:.2f} s and {times['cold batch']:.2f} s", "-", "-"))  # fmt: skip
    rows.append(("8. the warm server's processes' resident memory while idle (server, spare child, its worker)",
                 f"{resident:,.0f} MiB", "-", "-"))  # fmt: skip


def peak_rss_mib(cmd: list[str]) -> float:
    """Peak resident memory of a command and its child processes, sampled every 20 ms."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.02)
    return peak / 1024


def _tree_rss(pid: int) -> int:
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def memory(quick: bool) -> None:
    def grid(n: int) -> list[str]:
        side = round(n**0.5)
        return diffcli(
            "grad", EXPR, "--grid", f"x=-2:2:{side}", "--grid", f"y=-2:2:{side}", "--summary", "--format", "json"
        )

    small = peak_rss_mib(grid(10**5))
    rows.append(("5. peak RSS, 10^5-point summary grid (all processes)", f"{small:,.0f} MiB", "-", "-"))
    if quick:
        return
    large = peak_rss_mib(grid(10**7))
    record("5. peak RSS, 10^7-point summary grid (all processes)", large, 1024, "MiB")
    rows.append(("5. RSS growth 10^5 -> 10^7 points (100x the points)", f"{large / small:.1f}x", "far below 100x",
                 "pass" if large / small < 10 else "FAIL"))  # fmt: skip


def peers(points: int, repeats: int) -> None:
    """Throughput, imports and compilation excluded, two ways: numpy points in and
    float64 numpy results out (what ``autodiff.compute`` promises, and what a tool
    built on JAX would have to do too), and on data already in the library's own
    arrays (JAX: device arrays; diffcli: its (n, P) torch columns). The contenders'
    calls are interleaved, round by round, and each rate is a median: the machine's
    load moves between runs, and timing one library after the other let it favour
    either (JAX's Hessian rate once came out 2.5x its usual)."""
    sys.path.insert(0, str(ROOT))
    from diffcli.pipeline import prepare

    side = int(points**0.5)
    for command in ("grad", "hessian"):
        requests = {e: prepare(command, EXPR, grid=[f"x=-2:2:{side}", f"y=-2:2:{side}"], engine=e)
                    for e in ("autograd", "compiled")}  # fmt: skip
        pts = requests["autograd"].points
        calls, first = {}, {}
        for engine, request in requests.items():
            first[engine], calls[f"{engine} numpy"], calls[f"{engine} resident"] = _diffcli_calls(request)
        jax = _jax_calls(command, pts)
        if jax is not None:
            first["jax"], calls["jax numpy"], calls["jax resident"] = jax
        rate = _interleaved_rates(calls, pts.shape[0], repeats)
        for engine in requests:
            rates = (rate[f"{engine} numpy"], rate[f"{engine} resident"], first[engine])
            info(f"6. diffcli --engine {engine} {command}", _rates(*rates, compiles=engine == "compiled"))
        if jax is None:
            info(f"6. JAX jit(vmap({command})) float64 CPU", "skipped: jax not installed")
        else:
            info(f"6. JAX jit(vmap({command})) float64 CPU",
                 _rates(rate["jax numpy"], rate["jax resident"], first["jax"], compiles=True))  # fmt: skip
            target = f"6. JAX's {command} throughput / diffcli --engine compiled's"
            record(f"{target}, numpy in/out", rate["jax numpy"] / rate["compiled numpy"], 1.0)
            record(f"{target}, resident", rate["jax resident"] / rate["compiled resident"], 1.0)
            ratio = f"{rate['jax numpy'] / rate['autograd numpy']:.2f}x"
            info(f"6. JAX's {command} throughput / diffcli's default engine's, numpy in/out", ratio)
        loop = _loop_rate(command, pts[:1000])
        info(f"6. per-point torch.autograd loop {command} (10^3 points, scaled)", f"{loop:,.0f} pts/s")


def info(target: str, measured: str) -> None:
    rows.append((target, measured, "-", "-"))


def _rates(numpy_rate: float, resident_rate: float, first: float, compiles: bool) -> str:
    text = f"{numpy_rate:,.0f} pts/s numpy in/out; {resident_rate:,.0f} resident"
    return text + (f"; first call {first:.1f} s (compiles)" if compiles else "")


def _interleaved_rates(calls: dict, count: int, repeats: int) -> dict[str, float]:
    """Median points/s of each call, the calls made in turn, ``repeats`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: count / statistics.median(t) for name, t in times.items()}


def _diffcli_calls(request):
    """(first call's seconds, numpy in/out call, resident call)."""
    import numpy as np
    import torch

    from diffcli import autodiff

    start = time.perf_counter()
    autodiff.compute(request)
    first = time.perf_counter() - start
    device = torch.device(request.device)
    run = autodiff._engine(request, torch.float64, device)
    count = request.points.shape[0]
    columns = [torch.as_tensor(np.ascontiguousarray(request.points[i : i + autodiff.CHUNK].T), device=device)
               for i in range(0, count, autodiff.CHUNK)]  # fmt: skip

    def resident():
        [run(c) for c in columns]
        if device.type == "cuda":
            torch.cuda.synchronize()

    return first, lambda: autodiff.compute(request), resident


def _diffcli_rates(request, repeats: int) -> tuple[float, float, float]:
    first, numpy_call, resident_call = _diffcli_calls(request)
    rate = _interleaved_rates({"numpy": numpy_call, "resident": resident_call}, request.points.shape[0], repeats)
    return rate["numpy"], rate["resident"], first


def _jax_calls(command: str, points):
    """(first call's seconds, numpy in/out call, resident call), or None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    def f(p):
        x, y = p[0], p[1]
        return x**2 * jnp.sin(y) + jnp.exp(x * y) / (1 + y**2)

    transform = jax.grad(f) if command == "grad" else jax.hessian(f)
    fn = jax.jit(jax.vmap(transform))
    data = jnp.asarray(points)
    start = time.perf_counter()
    fn(data).block_until_ready()
    first = time.perf_counter() - start
    return first, lambda: np.asarray(fn(jnp.asarray(points))), lambda: fn(data).block_until_ready()


def _loop_rate(command: str, points) -> float:
    import torch

    start = time.perf_counter()
    for p in points:
        v = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        out = v[0] ** 2 * torch.sin(v[1]) + torch.exp(v[0] * v[1]) / (1 + v[1] ** 2)
        (g,) = torch.autograd.grad(out, v, create_graph=command == "hessian")
        if command == "hessian":
            [torch.autograd.grad(g[i], v, retain_graph=True) for i in range(2)]
    return points.shape[0] / (time.perf_counter() - start)


def gpu(device: str = "cuda") -> None:
    """Target 7. ``device`` is a parameter so that the rows' code can be run on the CPU
    (``python -c "import bench; bench.gpu('cpu')"``) on a machine without a GPU."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        rows.append(("7. --device cuda, 10^7-point grid", "skipped: no CUDA device", "-", "-"))
        return
    sys.path.insert(0, str(ROOT))
    from diffcli.errors import DiffcliError
    from diffcli.pipeline import prepare

    for engine in ("autograd", "compiled"):
        cmd = diffcli("grad", EXPR, "--grid", "x=-2:2:3163", "--grid", "y=-2:2:3163", "--summary", "--format", "json",
                      "--device", device, "--engine", engine)  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        seconds = time.perf_counter() - start
        if done.returncode == 0:
            whole = f"{10**7 / seconds:,.0f} pts/s (whole command)"
        else:  # a failed run is no throughput (no Triton for compiled, a CUDA error, ...)
            whole = f"failed: exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]}"
        info(f"7. --device {device} --engine {engine}, 10^7-point grid", whole)
        request = prepare("grad", EXPR, grid=["x=-2:2:3163", "y=-2:2:3163"], device=device, engine=engine)
        try:
            measured = _rates(*_diffcli_rates(request, 3), compiles=engine == "compiled")
        except DiffcliError as error:  # e.g. no Triton for torch.compile
            measured = f"failed: {error}"
        info(f"7. --device {device} --engine {engine} grad, library", measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, no 10**7-point runs")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    help_start_up(repeats)
    one_liners(repeats)
    warm_server(repeats)
    grids(repeats)
    batch(repeats)
    loops(repeats)
    pictures(repeats)
    pytest_plugin(repeats)
    memory(args.quick)
    peers(10**6, repeats)
    gpu()
    print(f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"median of {repeats} interleaved runs per ratio.\n")  # fmt: skip
    print("| target | measured | bound | result |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
