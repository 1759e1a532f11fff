"""What the commands share: the consoles, one-line errors, and the options of the reading
commands. Light to import: every command module starts from here, and `seqbench --version`
imports them all."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer

from seqbench.core.errors import SeqbenchError
from seqbench.core.settings import RESULTS_ROOT

F = TypeVar("F", bound=Callable[..., Any])

RUN_ARGUMENT_HELP = (
    "A run id, a run folder, 'latest', or a rows file (csv, json, parquet) with its .meta.json."
)
ROOT_HELP = "Results root, for run ids and 'latest'."

# The most cells a terminal table draws by default (`show`, and `compare`'s table): a table of
# 1,000 rows takes about a second to draw, and of 200,000 three minutes that nobody reads.
TABLE_ROWS = 1000

# The columns `show`, `export` and `plot` filter on, each by a comma-separated flag.
FILTER_COLUMNS = ("arch", "mode", "device", "task")


def stdout():
    from rich.console import Console

    # No emoji codes: "model:factory: ..." is a user's architecture, not ":factory:".
    return Console(highlight=False, emoji=False)


def stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line to stderr; the caller raises the returned Exit."""
    from rich.markup import escape

    # Escaped: a message may hold brackets ("pip install 'seqbench[report]'") Rich would eat.
    stderr().print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn a SeqbenchError from the core into one line on stderr and exit code 2, and
    Ctrl-C into one word and exit code 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SeqbenchError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:  # before anything was measured (a measuring loop says more)
            stderr().print("interrupted", markup=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def filter_option(column: str) -> Any:
    return typer.Option(
        None, f"--{column}", help=f"Only cells with these {column} values, comma-separated."
    )


def root_option() -> Any:
    from seqbench.cli.options import path_value

    return typer.Option(Path(RESULTS_ROOT), "--root", help=ROOT_HELP, parser=path_value)


def load_selected(ref: str, root: Path, filters: dict[str, str | None], keep_text: bool = False):
    """A saved run and its rows that pass the filters (at least one, or an error)."""
    from seqbench.cli.select import select_rows
    from seqbench.storage import load_run

    loaded = load_run(ref, root, samples=False, keep_text=keep_text)  # samples: when needed
    if not loaded.rows:  # a run whose first cell has not finished (or never will)
        state = f" (it is {loaded.meta.state})" if loaded.meta.state else ""
        raise SeqbenchError(f"{loaded.run_id} has no measured cells yet{state}")
    rows = select_rows(loaded.rows, filters)
    if not rows:
        asked = " ".join(f"--{c} {v}" for c, v in filters.items() if v is not None)
        raise SeqbenchError(f"no cells of {loaded.run_id} match {asked}")
    return loaded, rows


def write_file(path: Path, write: Callable[[], None], flag: str = "--out") -> None:
    """Run a file write to the `flag` option's `path`: refused in one line when the file is a
    run's own (results.csv, samples.csv, meta.json: writing it would replace that run's
    results), and an OS error turned into one line naming the file."""
    from seqbench.storage import check_writable

    check_writable(path, flag, special_ok=True)
    try:
        write()
    except OSError as exc:
        raise SeqbenchError(f"{flag} {path}: cannot write it ({exc.strerror or exc})") from None


def print_rows(run: Any, rows: list, output_format: str, env: dict) -> None:
    """The rows on stdout: the results and scaling tables, or an exporter's text."""
    if output_format != "table":
        from seqbench.export import get_exporter

        sys.stdout.write(get_exporter(output_format).render(rows))
        return
    from seqbench.output.terminal import results_view

    console = stdout()
    title = f"seqbench {run.meta.label} ({run.run_id})"
    console.print(results_view(rows, title, console, env.get("flush_denormal")))


def plot_height(console: Any) -> int:
    """Rows for a terminal plot: most of the window, within reason."""
    return max(15, min(console.height - 6, 30))


def plot_format(out: Path | None, purpose: str = "plot") -> str | None:
    """Checked before any work: the image format --out's suffix names (png or svg) and
    matplotlib to draw it, or, with no --out (None returned), plotext for the terminal."""
    from seqbench.core.errors import require
    from seqbench.output.plots import image_format

    fmt = image_format(out) if out is not None else None
    require("matplotlib" if out is not None else "plotext", purpose)
    return fmt


def show_plot(text: Callable[[int, int], str]) -> None:
    """A plotext drawing, `text(width, height)`, sized to the terminal and printed."""
    from seqbench.output.terminal import terminal_plot

    console = stdout()
    console.print(terminal_plot(text(console.width, plot_height(console))))


def write_image(out: Path, image: bytes) -> None:
    """A drawn image written to --out (whole or not at all), and said on stderr."""
    from seqbench.storage import atomic_write

    write_file(out, lambda: atomic_write(out, image))
    stderr().print(f"wrote {out}", markup=False)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[Callable[[], None]]:
    """SIGTERM (a cancelled CI job, `kill`) and SIGHUP (a closed terminal or SSH session)
    stop a measuring command the way Ctrl-C does: what finished is saved, and the command
    exits 130 saying how to resume.

    Yields a check to call between cells: a KeyboardInterrupt raised while Python ran a
    finaliser (a tensor's or the profiler's, during garbage collection) is printed and
    swallowed by the interpreter, so the signal is also remembered, and the check raises
    it again at the next cell boundary."""
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    def check() -> None:
        if received:
            raise KeyboardInterrupt

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, stop) for s in stops}
    try:
        yield check
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
