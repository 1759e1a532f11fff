"""The options of `seqbench run`. The axes and settings are not written here: each comes from
its one declaration (`plan.config.Axes` and `SuiteConfig`, `core.settings`), with its help,
default and panel. Only the command's own options are written out. `ab` takes most of them
too."""

from __future__ import annotations

from pathlib import Path

from seqbench.cli.options import (
    AXIS,
    COMMAND,
    RESULTS_ROOT,
    Option,
    declared_options,
)
from seqbench.core.settings import (
    ACCURACY,
    MATRIX,
    OUTPUT,
    PANELS,
    MeasureSettings,
    TrainSettings,
)
from seqbench.plan.config import Axes, SuiteConfig
from seqbench.plan.suites import suite_names

# What `run --format` prints on stdout: the Rich table, or an exporter's text.
RUN_FORMATS = ("table", "csv", "json", "markdown")

_COMMAND_OPTIONS: tuple[Option, ...] = (
    Option(
        "suite",
        f"Suite file, or the name of one: {', '.join(suite_names())} (from ./benchmarks and "
        "seqbench's own). Default: quick.",
        kind=COMMAND,
        flags=("--suite", "-s"),
        panel=MATRIX,
    ),
    Option(
        "seeds",
        "Run task cells with seeds 0..N-1 (instead of --seed).",
        kind=COMMAND,
        type=int,
        panel=ACCURACY,
    ),
    Option(
        "resume",
        "Finish an interrupted run: its id, its folder, or 'latest'. Uses the run's saved "
        "configuration.",
        kind=COMMAND,
        panel=OUTPUT,
    ),
    Option(
        "retry_errors",
        "With --resume: measure the cells that ended in an error or a timeout again.",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--retry-errors",),
        panel=OUTPUT,
    ),
    RESULTS_ROOT,
    Option(
        "csv",
        "Also write the rows to this CSV (with .samples.csv and .meta.json beside it).",
        kind=COMMAND,
        type=Path,
        panel=OUTPUT,
    ),
    Option(
        "output_format",
        "What to print on stdout at the end: table, csv, json or markdown (progress and notes "
        "go to stderr).",
        kind=COMMAND,
        default="table",
        flags=("--format",),
        panel=OUTPUT,
    ),
    Option(
        "quiet",
        "No progress bar and nothing on stdout: only warnings and the final 'saved ...' line, "
        "on stderr.",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--quiet", "-q"),
        panel=OUTPUT,
    ),
)

_DECLARED = (
    *declared_options(Axes, AXIS),
    *declared_options(MeasureSettings),
    *declared_options(TrainSettings),
    *declared_options(SuiteConfig),  # the run's settings, threads and subnormals among them
)


def _by_panel(options: tuple[Option, ...]) -> tuple[Option, ...]:
    """Options in the order of their panels (`--help` lists the panels as it meets them)."""
    return tuple(sorted(options, key=lambda o: PANELS.index(o.panel or OUTPUT)))


RUN_OPTIONS: tuple[Option, ...] = _by_panel(
    (_COMMAND_OPTIONS[0], *_DECLARED, *_COMMAND_OPTIONS[1:])
)
