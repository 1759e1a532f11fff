"""The `seqbench` command: thin commands that call the core, render, and pick the exit code.

Exit codes: 0 success; 1 the run finished but some cells could not be measured (an error,
or a device that is not here); 2 bad input (flags, suite files, result files).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from seqbench import __version__, devices
from seqbench.config import check_setting, parse_list, plan, resolve_config
from seqbench.env import apply_process_settings, collect_env
from seqbench.errors import SeqbenchError
from seqbench.render import archs_table, make_progress, results_table
from seqbench.report import format_env_line
from seqbench.runner import CellFinished, CellStarted, iter_run
from seqbench.storage import create_run

app = typer.Typer(
    help="Benchmark sequence-model architectures: what each one costs and what it buys.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line to stderr; the caller raises the returned Exit."""
    stderr().print(f"[bold red]error:[/] {message}", markup=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn a SeqbenchError from the core into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SeqbenchError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        stdout().print(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """seqbench: a terminal benchmark for sequence-model architectures."""


_AXIS_FLAGS = {
    "arch": "--arch",
    "seq_len": "--seq-len",
    "batch_size": "--batch-size",
    "hidden": "--hidden",
    "layers": "--layers",
    "dropout": "--dropout",
    "recurrent_dropout": "--recurrent-dropout",
    "vocab": "--vocab",
    "embed": "--embed",
    "device": "--device",
    "dtype": "--dtype",
    "mode": "--mode",
}


@app.command()
@user_errors
def run(
    suite: str | None = typer.Option(
        None,
        "--suite",
        "-s",
        help="Suite file, or the name of one in benchmarks/ (quick, seed). Default: quick.",
    ),
    arch: str | None = typer.Option(
        None, help="Architectures, comma-separated (see `seqbench archs`)."
    ),
    seq_len: str | None = typer.Option(None, help="Sequence lengths, comma-separated."),
    batch_size: str | None = typer.Option(None, help="Batch sizes, comma-separated."),
    hidden: str | None = typer.Option(
        None, help="Hidden units (filters for conv1d), comma-separated."
    ),
    layers: str | None = typer.Option(None, help="Stacked recurrent layers, comma-separated."),
    bidirectional: bool | None = typer.Option(
        None, "--bidirectional/--no-bidirectional", help="Bidirectional recurrent layers."
    ),
    dropout: str | None = typer.Option(
        None, help="Input dropout rates in [0, 1), one mask per sequence."
    ),
    recurrent_dropout: str | None = typer.Option(
        None,
        help="Variational recurrent dropout rates in [0, 1) (training only; runs a per-step loop).",
    ),
    vocab: str | None = typer.Option(None, help="Vocabulary sizes of the token embedding."),
    embed: str | None = typer.Option(None, help="Embedding widths."),
    device: str | None = typer.Option(
        None, help="Devices: cpu, cuda, cuda:N, mps or auto, comma-separated."
    ),
    dtype: str | None = typer.Option(
        None, help="float32, bfloat16 or float16 (autocast), comma-separated."
    ),
    mode: str | None = typer.Option(None, help="infer, train or both, comma-separated."),
    min_time: float | None = typer.Option(
        None, help="Seconds of timed steps per cell, at least (default 0.5)."
    ),
    min_repeats: int | None = typer.Option(
        None, help="Timing samples per cell, at least (default 5)."
    ),
    max_repeats: int | None = typer.Option(
        None, help="Timing samples per cell, at most (default 1000)."
    ),
    precision: float | None = typer.Option(
        None,
        help="Stop a cell early once its median's 95% CI half-width is this fraction (0 = off).",
    ),
    warmup_time: float | None = typer.Option(
        None, help="Seconds of untimed warm-up steps per cell, at least (default 0.1)."
    ),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    seed: int | None = typer.Option(None, help="Seed for weights and inputs (default 0)."),
    flush_denormal: bool | None = typer.Option(
        None,
        "--flush-denormal/--no-flush-denormal",
        help="Flush subnormal floats to zero on the CPU (default on, as in Keras).",
    ),
    label: str | None = typer.Option(None, help="A short name for the run (default: the suite's)."),
    out: Path = typer.Option(
        Path("results"), help="Results root: each run is saved in a folder under it."
    ),
    csv: Path | None = typer.Option(
        None, help="Also write the rows to this CSV (with .samples.csv and .meta.json beside it)."
    ),
) -> None:
    """Measure a matrix of architectures x lengths x batch sizes x devices x dtypes x modes.

    With no options, runs the quick suite: every seed architecture at two lengths, inference
    and training, on the CPU, in well under a minute. Results are saved after every cell.
    """
    axes: dict[str, tuple[Any, ...]] = {}
    local = locals()
    for name, flag in _AXIS_FLAGS.items():
        if local[name] is not None:
            axes[name] = parse_list(local[name], name, flag)
    if bidirectional is not None:
        axes["bidirectional"] = (bidirectional,)
    settings: dict[str, Any] = {}
    for name in (
        "min_time",
        "min_repeats",
        "max_repeats",
        "precision",
        "warmup_time",
        "threads",
        "seed",
        "flush_denormal",
        "label",
    ):
        if local[name] is not None:
            settings[name] = check_setting(name, local[name], "--" + name.replace("_", "-"))
    config = resolve_config(suite, axes=axes, settings=settings)
    cells = plan(config)

    process = apply_process_settings(config.threads, config.flush_denormal)
    env = collect_env([c.device for c in cells], process)
    run_ = create_run(
        out,
        label=config.label,
        config=config.to_dict(),
        env=env,
        plan=[c.cell_id for c in cells],
        extra_csv=csv,
    )
    err = stderr()
    missing = sorted({c.device for c in cells if devices.unavailable_reason(c.device)})
    for name in missing:
        count = sum(c.device == name for c in cells)
        err.print(
            f"[yellow]warning:[/] {devices.unavailable_reason(name)}: skipping its {count} cells"
        )

    with make_progress(err) as progress:
        task = progress.add_task("starting", total=len(cells))
        for event in iter_run(config, cells, run_):
            if isinstance(event, CellStarted):
                progress.update(task, description=event.cell.cell_id)
            elif isinstance(event, CellFinished):
                progress.advance(task)
    run_.finish("complete")

    console = stdout()
    console.print(
        results_table(run_.rows, title=f"seqbench {config.label} ({run_.run_id})", console=console)
    )
    err.print(format_env_line(env))
    counts = {
        s: sum(r.status == s for r in run_.rows)
        for s in ("ok", "skipped", "oom", "timeout", "error")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    err.print(f"saved {len(run_.rows)} cells ({summary}) to {run_.path}")
    if csv is not None:
        err.print(f"rows also written to {csv}")
    failed = counts["error"] or any(r.message and r.device in missing for r in run_.rows)
    if failed:
        raise typer.Exit(1)


@app.command()
def archs(
    hidden: int = typer.Option(32, min=1, help="Hidden units for the example column."),
    embed: int = typer.Option(32, min=1, help="Input width for the example column."),
) -> None:
    """List the architectures, their parameter formulas and an example size."""
    stdout().print(archs_table(hidden=hidden, embed=embed))


def main() -> None:
    """Console-script entry point."""
    app()
