"""The command line: a thin click layer over :mod:`diffcli.pipeline` and :mod:`diffcli.batch`.

Only click is imported at start-up; torch, SymPy, numpy and rich load when a
command starts working, so ``diffcli --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator

import click

from diffcli import __version__
from diffcli.commands import (
    ANNOTATIONS,
    COMMANDS,
    DEFAULT_CHECKS,
    DEFAULT_VECTOR_CHECKS,
    DIFF_ORDERS,
    DTYPES,
    ENGINES,
    FORMATS,
    MODES,
    SAMPLES,
    TABLE_POINTS,
    TAYLOR_ORDER,
    TAYLOR_ORDERS,
    TOLERANCES,
    Command,
    Exit,
)  # fmt: skip
from diffcli.errors import DiffcliError
from diffcli.limits import DEFAULT, PRECISE_POINTS, read_limited

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_HELP = f"""\b
Exit status: {Exit.OK} no mismatch (undefined and unknown allowed), {Exit.MISMATCH} a mismatch,
{Exit.INPUT} invalid input, {Exit.INTERNAL} internal error (a bug: rerun with --debug), {Exit.INTERRUPTED} interrupted.
"""


class InputError(click.ClickException):
    """Bad input: 'Error: ...' on stderr and exit status 2."""

    exit_code = Exit.INPUT


def read_expression(expr: str) -> str:
    """``-`` reads the expression from standard input."""
    if expr != "-":
        return expr
    text = sys.stdin.read()
    if not text.strip():
        raise InputError("no expression on standard input")
    return text.strip()


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def default_format() -> str:
    return "table" if sys.stdout.isatty() else "plain"


@contextlib.contextmanager
def cli_errors(debug: bool) -> Iterator[None]:
    """Library errors become one-line messages with meaningful exit statuses."""
    try:
        yield
    except DiffcliError as exc:
        raise InputError(exc.render()) from None
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        _silence_stdout()
        sys.exit(Exit.BROKEN_PIPE)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(Exit.INTERRUPTED)
    except (click.ClickException, click.exceptions.Exit, SystemExit):
        raise
    except Exception as exc:  # a bug in diffcli, not bad input
        if debug:
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)", err=True)
        sys.exit(Exit.INTERNAL)


@contextlib.contextmanager
def symbolic_worker(limits) -> Iterator[None]:
    """All SymPy work in this block runs in a worker process under ``limits``; started
    now, so that it imports SymPy while this process imports torch."""
    from diffcli import worker

    backend = worker.isolated(limits)
    backend.start()
    with worker.using(backend):
        yield


def _apply(fn: Callable, options: list) -> Callable:
    for option in reversed(options):
        fn = option(fn)
    return fn


def _defaults(which: int) -> str:
    return ", ".join(f"{tolerances[which]:g} for {dtype}" for dtype, tolerances in TOLERANCES.items())


def common_options(fn: Callable) -> Callable:
    """Output, precision and device: shared by every command."""
    return _apply(fn, [
        click.option("--format", "-f", "fmt", type=click.Choice(FORMATS),
                     help="Output format. Default: table on a terminal, plain otherwise."),
        click.option("--rtol", type=float, metavar="R",
                     help=f"Relative tolerance. Default: {_defaults(0)}."),
        click.option("--atol", type=float, metavar="A",
                     help=f"Absolute tolerance. Default: {_defaults(1)}."),
        click.option("--dtype", type=click.Choice(DTYPES), default=DTYPES[0], show_default=True,
                     help="Floating-point type of the autodiff side."),
        click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]",
                     help="Where torch computes."),
        click.option("--engine", type=click.Choice(ENGINES), default=ENGINES[0],
                     show_default=True,
                     help="Autodiff mechanism: batched torch.autograd; torch.func transforms under vmap "
                          "(its first call costs about 0.7 s of imports); or autograd fused by torch.compile "
                          "(same answers, several times the throughput, seconds to compile: for huge grids)."),
        click.option("--precise", is_flag=True,
                     help="Evaluate the reference to 30 digits at every point (default: at points given by hand, "
                          f"up to {PRECISE_POINTS}; generated points get SymPy's formulas in float64 where float64 "
                          "can be trusted, and 30 digits where it cannot)."),
        click.option("--timeout", type=float, metavar="SECONDS",
                     help=f"Stop symbolic work that takes longer than this per check (default {DEFAULT.timeout:g})."),
        click.option("--max-memory", type=int, metavar="MIB",
                     help=f"Memory cap of the symbolic worker (default {DEFAULT.max_memory_mb})."),
        click.option("--max-points", type=int, metavar="N",
                     help=f"Refuse checks with more points (default {DEFAULT.max_points:,})."),
        click.option("--max-length", type=int, metavar="CHARS",
                     help=f"Refuse longer expressions (default {DEFAULT.max_length:,})."),
        click.option("--debug", is_flag=True, help="Show the traceback of an internal error (for bug reports)."),
    ])  # fmt: skip


def limits_from(options: dict):
    """Pop the limit options and build the limits (None: the default)."""
    for name in ("timeout", "max_memory", "max_points", "max_length"):
        value = options.get(name)
        if value is not None and not (0 < value < math.inf):
            raise InputError(f"--{name.replace('_', '-')} must be a positive number")
    return DEFAULT.with_options(
        timeout=options.pop("timeout"), max_memory_mb=options.pop("max_memory"),
        max_points=options.pop("max_points"), max_length=options.pop("max_length"),
    )  # fmt: skip


def point_options(fn: Callable) -> Callable:
    """The expression and where to evaluate it."""
    return _apply(fn, [
        click.argument("expr"),
        click.option("--at", "-a", "at", multiple=True, metavar="POINT",
                     help="Point: x=1,y=2.5 (values may be constant expressions such as pi/4), or positional "
                          "1,2.5 in --vars order. Repeat for several points. With --grid, --sample or --points: "
                          "fixed values for the other variables."),
        click.option("--grid", multiple=True, metavar="X=LOW:HIGH:N",
                     help="N evenly spaced values from LOW to HIGH, both included. Several make a mesh."),
        click.option("--sample", multiple=True, metavar="X=LOW:HIGH",
                     help="Sample this variable uniformly in [LOW, HIGH]; several make a box."),
        click.option("--n", "n", type=int, metavar="N", help=f"Number of --sample points (default {SAMPLES})."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed for --sample."),
        click.option("--points", "points_file", type=click.File("r"), metavar="FILE.csv",
                     help="Points from a CSV file whose header names the variables; - reads standard input."),
        click.option("--vars", "variables", metavar="X,Y,...",
                     help="Variables and their order. Default: the expression's names, sorted. A name listed "
                          "here is a variable even if it is also a constant or function (E, pi, gamma)."),
        click.option("--summary", is_flag=True,
                     help="Per-status counts and the largest errors and where they occur, instead of a result per "
                          f"point (automatic in tables above {TABLE_POINTS} points)."),
        click.option("--results", "with_results", is_flag=True,
                     help="With --summary and --format json: keep the per-point results too."),
    ])  # fmt: skip


def run_check(command: str, expr: str, fmt, debug, summary, with_results, points_file, precise, **options) -> None:
    """Check, print, and exit 0 (no mismatch), 1 (a mismatch) or 2 (bad input)."""
    limits = limits_from(options)
    with cli_errors(debug), symbolic_worker(limits):
        from diffcli.pipeline import prepare, run, run_summary
        from diffcli.render import Layout, progress_bar, write

        if expr == "-" and points_file is not None and points_file.name == "<stdin>":
            raise DiffcliError("EXPR and --points cannot both read standard input")
        points_text = read_limited(points_file, limits.max_file_mb) if points_file is not None else None
        text = read_expression(expr)
        request = prepare(command, text, points_text=points_text, precise=precise or None, limits=limits, **options)
        fmt = fmt or default_format()
        if request.engine == "compiled" and sys.stderr.isatty():
            click.echo("diffcli: compiling with torch.compile (seconds; kernels are cached for next time)", err=True)
        # Only a summary wanted: stream it, so memory does not grow with the points.
        only_summary = (summary or (fmt == "table" and len(request.points) > TABLE_POINTS)) and not with_results
        with progress_bar(sys.stdout, enabled=fmt == "table" and sys.stdout.isatty(), total=len(request.points)) as bar:
            report = (run_summary if only_summary else run)(request, progress=bar)
        write(report, fmt, sys.stdout, Layout(summary=summary, results=with_results))
    sys.exit(report.exit_code)


@click.group(context_settings=CONTEXT, epilog=EXIT_HELP)
@click.version_option(__version__, "--version", "-V", prog_name="diffcli")
@click.option("--no-server", is_flag=True, help="Run in this process, not through the warm server (see `server`).")
def cli(no_server: bool) -> None:
    """Check torch autodiff against the true derivatives, with SymPy's formulas.

    Each command computes EXPR or its derivatives with torch autodiff at every
    point and prints the result beside SymPy's formula and the reference: the
    derivative of the function in real analysis, to 30 digits at points given by
    hand (at generated points in float64 where float64 can be trusted, else to 30
    digits too). Then the error, and a verdict: ok, mismatch, undefined (there is
    no derivative here: outside the domain, a jump, a kink, an infinite slope) or
    unknown (it could not be computed); the last two say why. At a boundary of a
    conditional, a kink of Abs, a jump of floor or a tie of Max, the reference is
    the derivative of the function, not of the piece taken.
    """


def expression_first(args: list[str], params: list[click.Parameter]) -> list[str]:
    """The arguments with an EXPR that starts with a minus sign (``-x^2``) moved behind ``--``,
    so that click does not take it for an option. Where EXPR is expected (before it is
    seen), a token that is exactly an option name (``-a``, ``--at``), or ``--name=value``,
    is an option (with its value, if it takes one); any other token starting with ``-`` is
    EXPR. Glued short options (``-ax=1``) are read as options after EXPR only."""
    options = [p for p in params if isinstance(p, click.Option)]
    names = {name for p in options for name in (*p.opts, *p.secondary_opts)}
    takes_value = {name for p in options if not p.is_flag and not p.count for name in p.opts}
    out: list[str] = []
    expression = None
    seen = False
    positional: list[str] = []  # besides a moved EXPR
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":  # the user's own: leave the rest alone
            out += args[i:]
            break
        if token in names:
            out.append(token)
            if token in takes_value and i + 1 < len(args):
                out.append(args[i + 1])
                i += 1
        elif token.startswith("--") and token.partition("=")[0] in names:
            out.append(token)
        elif not seen and token.startswith("-") and token != "-":
            expression, seen = token, True
        else:
            if not token.startswith("-") or token == "-":
                seen = True
                positional.append(token)
            out.append(token)
        i += 1
    if expression is None or "--" in out:
        return out
    if positional:  # -ax=1 "x": a glued option before EXPR was read as EXPR
        short = expression[:2]
        hint = f" (for the option {short}, write {short} {expression[2:]})" if short in names else ""
        raise click.UsageError(f"'{expression}' is read as EXPR here, and so is '{positional[0]}'{hint}")
    return [*out, "--", expression]


class ExpressionCommand(click.Command):
    """A command whose EXPR may start with a minus sign: see :func:`expression_first`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expression_first(args, self.get_params(ctx)))


EXPR_HELP = (
    "EXPR may start with a minus sign (-x^2), before or after the options. Before EXPR, an "
    "option's value is a separate word (-a x=1); glued short options (-ax=1) are read as options "
    "only after EXPR. '-' reads EXPR from standard input."
)

#: Options that only some commands take, by the name of the input in the command table.
INPUT_OPTIONS = {
    "tangent": click.option("--tangent", "-t", metavar="VEC",
                            help="Direction: x=1,y=0, or positional 1,0 in --vars order. Default: all ones."),
    "cotangent": click.option("--cotangent", "-c", metavar="VEC",
                              help="Weights of EXPR's components: positional 1,0,2 (or f1=1,f2=0,...; one value for "
                                   "a scalar EXPR). Default: all ones."),
    "mode": click.option("--mode", type=click.Choice(MODES), default=MODES[0], show_default=True,
                         help="reverse: one backward pass per output; forward: one forward pass per variable; "
                              "auto: whichever is fewer."),
    "wrt": click.option("--wrt", "-w", metavar="VARS",
                        help="The variables to differentiate by, in order: x,x,y or x:2,y is d³f/dx²dy "
                             f"(order {DIFF_ORDERS[0]} to {DIFF_ORDERS[1]}). Default: the only variable."),
    "order": click.option("--order", type=int, metavar="N",
                          help=f"The highest coefficient, {TAYLOR_ORDERS[0]} to {TAYLOR_ORDERS[1]}. "
                               f"Default: {TAYLOR_ORDER}."),
}  # fmt: skip


def _add_command(command: Command) -> None:
    """A subcommand from a row of the command table."""

    def run(expr: str, **options) -> None:
        run_check(command.name, expr, **options)

    run.__name__ = f"{command.name}_command"
    run = _apply(run, [point_options, common_options, *(INPUT_OPTIONS[i] for i in command.inputs)])
    help_text = f"{command.summary}\n\n{EXPR_HELP}\n\n\b\nExample:\n  {command.example}"
    cli.command(command.name, cls=ExpressionCommand, help=help_text, epilog=EXIT_HELP, context_settings=CONTEXT)(run)


for _row in COMMANDS.values():
    _add_command(_row)


def parse_checks(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    checks = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in checks if c not in COMMANDS]
    if unknown or not checks:
        raise InputError(f"--checks: choose from {', '.join(COMMANDS)} (got {text!r})")
    return checks


@cli.command(
    "batch",
    context_settings=CONTEXT,
    epilog="\b\nExit status: 0 no mismatch and no case error, 1 a mismatch or a case error,\n"
    "2 the command line or a whole file is unusable, 3 internal error, 130 interrupted.",
    help="Check every case in expression files (TOML suites, or text lists: one case per line).\n\n"
    "\b\nExample:\n  diffcli batch samples/seed.toml --junit report.xml",
)
@click.argument("files", nargs=-1, required=True, type=click.File("r"))
@click.option(
    "--checks",
    metavar="LIST",
    help=f"Run only these of each case's checks ({','.join(COMMANDS)}): of those a TOML case names, or of the "
    f"defaults for cases that name none ({','.join(DEFAULT_CHECKS)}; for a vector EXPR "
    f"{','.join(DEFAULT_VECTOR_CHECKS)}). Default: what each case names, else the defaults.",
)
@click.option(
    "--junit",
    "junit",
    type=click.Path(dir_okay=False, writable=True),
    metavar="PATH",
    help="Also write a JUnit XML report (one testcase per case and check).",
)
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, writable=True),
    metavar="PATH",
    help="Also write a self-contained HTML report: a row per case and check, formulas typeset, worst points "
    "and curves, filters by status (opens offline; rewritten as checks finish).",
)
@click.option("--shard", metavar="K/N", help="Run only the K-th of N deterministic slices of the cases.")
@click.option(
    "--annotations",
    type=click.Choice(ANNOTATIONS),
    help="Also report each mismatching or failing check on standard error in this CI's own form, with its "
    "case's file and line: github (workflow commands that mark the line in a pull request's diff). "
    "Default: github when GITHUB_ACTIONS=true, else none.",
)
@common_options
def batch_command(files, checks, junit, html, shard, annotations, fmt, debug, **options) -> None:
    limits = limits_from(options)
    with cli_errors(debug), symbolic_worker(limits):
        from diffcli.batch import run_batch, shard_spec

        sources = [(f.name, read_limited(f, limits.max_file_mb)) for f in files]
        outcome = run_batch(
            sources, checks=parse_checks(checks), fmt=fmt or default_format(), junit=junit, html=html,
            shard=shard_spec(shard), out=sys.stdout, progress=sys.stdout.isatty() and fmt in (None, "table"),
            annotations=annotations or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "none"),
            workspace=os.environ.get("GITHUB_WORKSPACE"), limits=limits, **options,
        )  # fmt: skip
    sys.exit(outcome)


@cli.command(
    "plot",
    cls=ExpressionCommand,
    context_settings=CONTEXT,
    epilog=EXIT_HELP,
    help="Draw EXPR and its checked derivatives along one --grid (curves) or over two (heatmaps), or "
    "EXPR's Taylor polynomials (--taylor), marking where autodiff parts from the reference.\n\n"
    'Needs matplotlib: pip install "diffcli[plot]".\n\n'
    "\b\nExamples:\n"
    '  diffcli plot "x^2 sin(3 x)" --grid x=-3:3:401 --checks value,grad,hessian\n'
    '  diffcli plot "exp(-x^2 - y^2)" --grid x=-2:2:81 --grid y=-2:2:81 --out map.svg\n'
    '  diffcli plot "sin(x)" --taylor --at x=0 --order 7 --grid x=-6:6:301',
)
@click.argument("expr")
@click.option(
    "--grid",
    multiple=True,
    required=True,
    metavar="X=LOW:HIGH:N",
    help="The horizontal variable; a second --grid makes heatmaps over two variables.",
)
@click.option(
    "--at",
    "-a",
    "at",
    metavar="POINT",
    help="Fixed values of the other variables (y=1). With --taylor: the point to expand around, "
    "the grid's variable included (x=0,y=1).",
)
@click.option(
    "--checks",
    metavar="LIST",
    help=f"The checks drawn, a panel each ({','.join(COMMANDS)}). Default: value,grad "
    "(value,jacobian for a vector EXPR).",
)
@click.option("--taylor", is_flag=True, help="Draw f and its Taylor polynomials of orders 1..--order around --at.")
@click.option(
    "--out", "-o", metavar="FILE", help="Where to write: a .png, .svg or .pdf file (default diffcli-plot.png)."
)
@click.option("--size", metavar="WxH", help="Width and height in pixels (default 1000 wide, height by the panels).")
@click.option("--dpi", type=int, metavar="N", help="Pixels per inch (default 100): text and lines scale with it.")
@click.option("--vars", "variables", metavar="X,Y,...", help="Variables and their order (as for the other commands).")
@INPUT_OPTIONS["tangent"]
@INPUT_OPTIONS["cotangent"]
@INPUT_OPTIONS["mode"]
@INPUT_OPTIONS["wrt"]
@INPUT_OPTIONS["order"]
@common_options
def plot_command(expr, grid, at, checks, taylor, out, size, dpi, fmt, debug, precise, **options) -> None:
    limits = limits_from(options)
    with cli_errors(debug):
        from diffcli.plot import picture, require_matplotlib

        require_matplotlib()
        where = picture(out, size, dpi)
        with symbolic_worker(limits):
            from diffcli.plot import compute, draw
            from diffcli.render import write_plot

            plot = compute(read_expression(expr), grid, at, checks=parse_checks(checks), taylor=taylor,
                           precise=precise or None, limits=limits, **options)  # fmt: skip
            path = draw(plot, where)
            write_plot(plot.reports, path, fmt or default_format(), sys.stdout)
        click.echo(f"wrote {path}", err=True)
    sys.exit(plot.exit_code)


@cli.group("server", context_settings=CONTEXT)
def server_group() -> None:
    """The warm server: answers one-liners in a tenth of a second.

    \b
    The first call that finds none runs as usual and starts one in the
    background; it exits after 15 idle minutes (DIFFCLI_SERVER_IDLE seconds).
    Off with DIFFCLI_SERVER=0 or `diffcli --no-server ...`, and where CI is set
    (unless DIFFCLI_SERVER=1).
    """


@server_group.command("start")
@click.option("--idle", type=float, metavar="SECONDS", help="Exit after this long without a request (default 900).")
def server_start(idle: float | None) -> None:
    """Start the server for this installation (if none is running)."""
    from diffcli import client

    sys.exit(client.start_server(idle=idle, wait=True, say=lambda text: click.echo(text, err=True)))


@server_group.command("stop")
def server_stop() -> None:
    """Stop every diffcli server of this user (any installation or version)."""
    from diffcli import client

    stopped = client.stop_servers()
    click.echo(f"stopped {stopped} server{'s' if stopped != 1 else ''}", err=True)


@server_group.command("status")
def server_status() -> None:
    """Say whether a server runs for this installation, and where."""
    from diffcli import client

    found = client.server_status()
    click.echo(found or "no server for this installation", err=found is None)
    sys.exit(0 if found else 1)


def run(argv: list[str] | None = None) -> int:
    """The command line on ``argv`` (default: sys.argv), its output flushed: the exit status."""
    try:
        cli(args=argv, prog_name="diffcli")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            click.echo(exc.code, err=True)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = Exit.BROKEN_PIPE
    return code


def main() -> None:
    """The command line in this process. Exits with ``os._exit`` once the output is
    flushed: a normal interpreter shutdown with torch loaded takes about 0.3 s, a fifth of
    a one-liner. (Files are complete by then; the worker sees its pipe close and exits.)
    The console script is :func:`diffcli.client.main`, which tries the warm server first."""
    os._exit(run())
