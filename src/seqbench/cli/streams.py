"""The terminal's streams as every command writes to them.

Two things a command cannot fix where it prints, so they are handled once, around the
whole CLI:

- A terminal that cannot encode what seqbench prints ("±", "µ", "×" under `LC_ALL=C` or
  `PYTHONIOENCODING=ascii`): such a stream writes those characters in ASCII ("+/-", "u",
  "x") and anything else it cannot encode as "?", rather than raise UnicodeEncodeError
  after the work is done. Rich draws its tables in ASCII on such a stream by itself.
- Standard output refusing a write (a full device, a closed pipe): exit 74 (EX_IOERR, as
  when results cannot be saved), never the exit code of a verdict (a comparison's 1 means
  "regression"), with one line on stderr, or none when the reader just stopped reading
  (`| head`). Whatever was measured was saved before anything was printed.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import sys
from typing import Any, NoReturn

EXIT_STDOUT_FAILED = 74

# What seqbench prints outside ASCII, written so that an ASCII terminal still reads it.
ASCII_FOR = {
    "±": "+/-",
    "µ": "u",
    "×": "x",
    "–": "-",
    "—": "-",
    "━": "-",
    "─": "-",
    "…": "...",
    "≤": "<=",
    "≥": ">=",
    "→": "->",
    "·": ".",
    "²": "^2",
    "τ": "tau",
    "σ": "sigma",
    "✓": "ok",
    "✗": "x",
}
ERRORS = "seqbench-ascii"


def _in_ascii(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start : exc.end]
    return "".join(ASCII_FOR.get(char, "?") for char in text), exc.end


codecs.register_error(ERRORS, _in_ascii)


class StdoutRefused(OSError):
    """Standard output refused a write (its errno and strerror are the write's)."""


class _Descriptor(io.RawIOBase):
    """Writes to a file descriptor, and says that it was stdout's when one fails."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        try:
            return os.write(self._fd, data)
        except OSError as exc:
            raise StdoutRefused(exc.errno, exc.strerror) from None


def guard() -> None:
    """Set up stdout and stderr for a command (see the module notes)."""
    for stream in (sys.stdout, sys.stderr):
        if not isinstance(stream, io.TextIOWrapper):
            continue
        try:
            "±µ×".encode(stream.encoding)
        except (UnicodeEncodeError, LookupError):
            stream.reconfigure(errors=ERRORS)
    old = sys.stdout
    if not isinstance(old, io.TextIOWrapper):
        return  # captured (a test, an embedding program): its owner handles its errors
    try:
        fd = old.fileno()
        old.flush()
    except (OSError, ValueError):
        return
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_Descriptor(fd)),
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=old.line_buffering,
    )


def give_up(exc: OSError) -> NoReturn:
    """Stop on a stdout that refused a write: one line (none for a closed pipe), exit 74."""
    # What is still buffered goes nowhere, so that the interpreter's last flush at exit
    # cannot fail again with a traceback of its own.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    if exc.errno != errno.EPIPE:
        print(f"error: could not write to standard output: {exc.strerror or exc}", file=sys.stderr)
    sys.exit(EXIT_STDOUT_FAILED)


def flush_or_give_up() -> None:
    """Flush stdout now, while a failure can still be said in one line and exit 74."""
    try:
        sys.stdout.flush()
    except StdoutRefused as exc:
        give_up(exc)
