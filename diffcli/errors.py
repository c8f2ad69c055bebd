"""The one error type that diffcli raises for bad input.

Everything the user can get wrong (syntax, names, point values, options)
surfaces as a :class:`DiffcliError`, so the command line can turn it into a
one-line message and exit status 2 without ever showing a traceback.
"""

from __future__ import annotations


class DiffcliError(Exception):
    """Invalid input: the message is written for the person who typed it."""

    def render(self) -> str:
        return str(self)


class ParseError(DiffcliError):
    """A problem at a known place in a piece of text the user typed.

    ``start``/``end`` are character columns in ``source``; ``render`` shows
    the source with carets under the offending columns.
    """

    def __init__(self, message: str, source: str, start: int, end: int | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.start = max(0, min(start, len(source)))
        self.end = max(self.start + 1, min(end if end is not None else start + 1, len(source) + 1))

    #: Characters of the source shown around the problem; longer sources are cut to a window.
    WIDTH = 100

    def render(self) -> str:
        if not self.source.strip():
            return self.message
        first = 0 if len(self.source) <= self.WIDTH else max(0, min(self.start - 30, len(self.source) - self.WIDTH))
        last = first + self.WIDTH
        lead, tail = ("..." if first else ""), ("..." if last < len(self.source) else "")
        shown = lead + _visible(self.source[first:last]) + tail
        carets = " " * (len(lead) + self.start - first) + "^" * max(1, min(self.end, last) - self.start)
        return f"{self.message} (column {self.start + 1})\n  {shown}\n  {carets}"


def _visible(text: str) -> str:
    """Control and invisible characters as one visible column each, so the source stays on
    one line and the carets stay aligned: C0 controls as their pictures (␀, ␊), others as �."""
    return "".join(
        chr(0x2400 + ord(c)) if ord(c) < 0x20 else c if c.isprintable() or c == " " else "\ufffd" for c in text
    )


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 point``, ``2 points``, ``1,000 points`` (``many``: an irregular plural)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
