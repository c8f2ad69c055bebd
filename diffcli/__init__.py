"""diffcli: check torch autodiff against SymPy's symbolic derivatives.

This module stays free of heavy imports (torch, SymPy, numpy, rich) so that
``diffcli --help`` and argument parsing start fast; the library's entry points
live in :mod:`diffcli.check`.
"""

__version__ = "0.1.0"
