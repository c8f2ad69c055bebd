"""The expression language: the functions, operators and constants it knows.

This table is the single list of what a user may call. The parser checks
names and arities against it; the SymPy and torch backends each hold their
own implementation table keyed by the canonical names below, and a test
checks that both cover every entry. Kept free of heavy imports so that error
messages and ``--help`` never load torch or SymPy.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Arity:
    least: int
    most: int | None  # None: any number of arguments

    def accepts(self, n: int) -> bool:
        return n >= self.least and (self.most is None or n <= self.most)

    def describe(self) -> str:
        if self.most is None:
            return f"at least {self.least} arguments"
        if self.least == self.most:
            return f"{self.least} argument{'s' if self.least != 1 else ''}"
        return f"{self.least} to {self.most} arguments"


_ONE, _TWO = Arity(1, 1), Arity(2, 2)

#: Canonical function names (SymPy's spelling) and how many arguments each takes.
FUNCTIONS: dict[str, Arity] = {
    **{name: _ONE for name in ("sin", "cos", "tan", "sec", "csc", "cot")},
    **{name: _ONE for name in ("asin", "acos", "atan")},
    "atan2": _TWO,  # atan2(y, x), as in SymPy and C
    **{name: _ONE for name in ("sinh", "cosh", "tanh", "asinh", "acosh", "atanh")},
    "exp": _ONE,
    "log": Arity(1, 2),  # log(x) natural; log(x, b) base b
    "sqrt": _ONE,
    "cbrt": _ONE,  # the real cube root: cbrt(-8) == -2
    "root": _TWO,  # root(x, n) == x**(1/n), principal root (undefined for x < 0)
    **{name: _ONE for name in ("Abs", "sign", "floor", "ceiling")},
    "Min": Arity(2, None),
    "Max": Arity(2, None),
    **{name: _ONE for name in ("erf", "erfc", "gamma", "loggamma")},
    "sinc": _ONE,  # sin(x)/x, unnormalised as in SymPy
    "Heaviside": Arity(1, 2),  # Heaviside(x, h0): h0 is the value at 0 (default 1/2)
    "Mod": _TWO,  # Mod(a, m) has the sign of m, as Python's %
    "Piecewise": Arity(1, None),  # Piecewise((expr, cond), ...)
    **{name: _ONE for name in ("log10", "log2", "log1p", "expm1", "exp2", "factorial")},
    "hypot": _TWO,
}

#: Functions the reference knows by their definition (parameters a, b), which SymPy and
#: the exact reference expand; torch computes each with its own kernel. log1p and expm1
#: exist for accuracy near 0: the exact reference of their definition is exact there.
DEFINITIONS: dict[str, str] = {
    "log10": "log(a)/log(10)",
    "log2": "log(a)/log(2)",
    "log1p": "log(1 + a)",
    "expm1": "exp(a) - 1",
    "exp2": "2**a",
    "factorial": "gamma(a + 1)",  # Γ(a + 1) for real a
    "hypot": "sqrt(a**2 + b**2)",
}


@dataclass(frozen=True)
class Loop:
    """A loop of the language: how it is called, and what its arguments are."""

    usage: str  # how it is called, for messages and --help
    bounds: tuple[str, ...]  # what its integer constant arguments after the bound name are
    empty: str  # the value of a sum (product) of no terms, of 0 steps


#: Loops: a body run for each value of a bound name (an index, or the state of an
#: iteration), the bounds integer constants. See README "Loops".
LOOPS: dict[str, Loop] = {
    "sum": Loop("sum(f, k, a, b)", ("first index", "last index"), "0"),
    "prod": Loop("prod(f, k, a, b)", ("first index", "last index"), "1"),
    "iterate": Loop("iterate(step, s, init, n)", ("number of steps",), "init"),
}

#: Other spellings people type, mapped to the canonical name.
ALIASES: dict[str, str] = {
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "arctan2": "atan2",
    "arcsinh": "asinh",
    "arccosh": "acosh",
    "arctanh": "atanh",
    "ln": "log",
    "abs": "Abs",
    "min": "Min",
    "max": "Max",
    "ceil": "ceiling",
    "product": "prod",
}

#: Named constants; ``e`` is an alias of ``E``, ``π`` of ``pi``. A name listed
#: in ``--vars`` is a variable instead.
CONSTANTS: dict[str, str] = {"pi": "pi", "π": "pi", "E": "E", "e": "E"}


def canonical_function(name: str) -> str | None:
    """The canonical name for a function (or loop) spelling, or None if unknown."""
    if name in FUNCTIONS or name in LOOPS:
        return name
    return ALIASES.get(name)


def suggest(name: str, candidates: list[str] | None = None) -> str | None:
    """The closest known spelling, for 'did you mean' hints."""
    pool = candidates if candidates is not None else [*FUNCTIONS, *LOOPS, *ALIASES]
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not found:
        lowered = {c.lower(): c for c in pool}
        found = [lowered[name.lower()]] if name.lower() in lowered else []
    return found[0] if found else None
