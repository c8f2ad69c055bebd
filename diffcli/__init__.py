"""diffcli: check torch autodiff against SymPy's symbolic derivatives.

The library's entry points load on first use (PEP 562), so ``import diffcli``,
``diffcli --help`` and argument parsing stay free of torch, SymPy, numpy and rich:

    >>> import diffcli
    >>> report = diffcli.check("grad", "x^2 sin(y)", "x=1,y=2")
    >>> report.ok, report.autodiff[0].tolist()
    (True, [1.8185948536513634, -0.4161468365471424])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: The public names and the modules that hold them.
_EXPORTS = {
    "check": "diffcli.pipeline",
    "prepare": "diffcli.pipeline",
    "run": "diffcli.pipeline",
    "run_summary": "diffcli.pipeline",
    "Request": "diffcli.pipeline",
    "Report": "diffcli.report",
    "Limits": "diffcli.limits",
    "DiffcliError": "diffcli.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads them
    from diffcli.errors import DiffcliError as DiffcliError
    from diffcli.limits import Limits as Limits
    from diffcli.pipeline import Request as Request
    from diffcli.pipeline import check as check
    from diffcli.pipeline import prepare as prepare
    from diffcli.pipeline import run as run
    from diffcli.pipeline import run_summary as run_summary
    from diffcli.report import Report as Report


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'diffcli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
