"""The command line: a thin click layer over :mod:`diffcli.check`.

Only click is imported at start-up; torch, SymPy, numpy and rich load when a
command starts working, so ``diffcli --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from diffcli import __version__
from diffcli.errors import DiffcliError

FORMATS = ("table", "plain", "json", "csv")
EXIT_INTERNAL = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports it

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class InputError(click.ClickException):
    """Bad input: 'Error: ...' on stderr and exit status 2."""

    exit_code = 2


def read_expression(expr: str) -> str:
    """``-`` reads the expression from standard input."""
    if expr != "-":
        return expr
    text = sys.stdin.read()
    if not text.strip():
        raise InputError("no expression on standard input")
    return text.strip()


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def default_format() -> str:
    return "table" if sys.stdout.isatty() else "plain"


def check_options(fn: Callable) -> Callable:
    """The options every checking command shares."""
    options = [
        click.argument("expr"),
        click.option(
            "--at",
            "-a",
            "at",
            multiple=True,
            metavar="POINT",
            help="Point: x=1,y=2.5 (values may be constant expressions such as pi/4), "
            "or positional 1,2.5 in --vars order. Repeat for several points.",
        ),
        click.option(
            "--vars",
            "variables",
            metavar="X,Y,...",
            help="Variables and their order. Default: the expression's names, sorted. "
            "A name listed here is a variable even if it is also a constant or "
            "function (E, pi, gamma).",
        ),
        click.option(
            "--format",
            "-f",
            "fmt",
            type=click.Choice(FORMATS),
            help="Output format. Default: table on a terminal, plain otherwise.",
        ),
        click.option(
            "--rtol", type=float, metavar="R", help="Relative tolerance. Default: 1e-9 for float64, 1e-4 for float32."
        ),
        click.option(
            "--atol", type=float, metavar="A", help="Absolute tolerance. Default: 1e-12 for float64, 1e-6 for float32."
        ),
        click.option(
            "--dtype",
            type=click.Choice(["float64", "float32"]),
            default="float64",
            show_default=True,
            help="Floating-point type of the autodiff side.",
        ),
        click.option(
            "--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]", help="Where torch computes."
        ),
        click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of internal errors."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def run_check(command: str, expr: str, fmt: str | None, debug: bool, **options) -> None:
    """Check, print, and exit 0 (no mismatch), 1 (a mismatch) or 2 (bad input)."""
    try:
        from diffcli.check import check
        from diffcli.render import write

        report = check(command, read_expression(expr), **options)
        write(report, fmt or default_format(), sys.stdout)
    except DiffcliError as exc:
        raise InputError(exc.render()) from None
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except (click.ClickException, click.exceptions.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug in diffcli, not bad input
        if debug:
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(report.exit_code)


EXIT_HELP = """\b
Exit status: 0 no mismatch, 1 at least one mismatch, 2 invalid input.
"""


@click.group(context_settings=CONTEXT, epilog=EXIT_HELP)
@click.version_option(__version__, "--version", "-V", prog_name="diffcli")
def cli() -> None:
    """Check torch autodiff against SymPy's symbolic derivatives.

    Each command evaluates EXPR with torch.func at every --at point and prints
    the result side by side with SymPy's answer (evaluated to 30 digits), the
    error, and a verdict: ok, mismatch, or undefined (no finite reference).
    """


def _command(name: str, summary: str, example: str) -> Callable:
    return cli.command(
        name,
        help=f"{summary}\n\n\b\nExample:\n  {example}",
        epilog=EXIT_HELP,
        context_settings=CONTEXT,
    )


@_command("value", "The value of EXPR at each point.", 'diffcli value "sqrt(x^2 + y^2)" --at x=3,y=4')
@check_options
def value_command(expr: str, fmt: str | None, debug: bool, **options) -> None:
    run_check("value", expr, fmt, debug, **options)


@_command("grad", "The gradient (and value) of EXPR at each point.", 'diffcli grad "x^2 sin(y)" --at x=1,y=2')
@check_options
def grad_command(expr: str, fmt: str | None, debug: bool, **options) -> None:
    run_check("grad", expr, fmt, debug, **options)


@_command("hessian", "The Hessian matrix of EXPR at each point.", 'diffcli hessian "x^3 y + exp(y)" --at x=1,y=0')
@check_options
def hessian_command(expr: str, fmt: str | None, debug: bool, **options) -> None:
    run_check("hessian", expr, fmt, debug, **options)


@_command(
    "jvp",
    "The value and directional derivative of EXPR along --tangent.",
    'diffcli jvp "x^2 sin(y)" --at x=1,y=2 --tangent x=1,y=0',
)
@check_options
@click.option(
    "--tangent", "-t", metavar="VEC", help="Direction: x=1,y=0, or positional 1,0 in --vars order. Default: all ones."
)
def jvp_command(expr: str, fmt: str | None, debug: bool, **options) -> None:
    run_check("jvp", expr, fmt, debug, **options)


def main() -> None:
    cli(prog_name="diffcli")
