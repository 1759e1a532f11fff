"""The `seqbench` command: thin commands that call the core, render, and pick the exit code.

Exit codes: 0 success; 1 the run finished but some cells could not be measured (an error,
or a device that is not here); 2 bad input (flags, suite files, result files).
"""

from __future__ import annotations

import dataclasses
import functools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from seqbench import __version__, devices
from seqbench.compare import compare_runs, run_checks
from seqbench.config import (
    SuiteConfig,
    apply_overrides,
    check_setting,
    config_differences,
    parse_list,
    plan,
    resolve_config,
)
from seqbench.env import apply_process_settings, collect_env, env_differences
from seqbench.errors import SeqbenchError
from seqbench.export import exporter_for_path, get_exporter
from seqbench.frontier import PROBE_SETTINGS, Probe, fits, parse_bytes, search, summarize
from seqbench.measure import measure_cell, trace_gradient_flow
from seqbench.optional import require
from seqbench.plot import (
    build_chart,
    check_metric,
    gradient_chart,
    image_format,
    render_image,
    render_text,
)
from seqbench.render import (
    archs_table,
    comparison_table,
    env_table,
    fitted_table,
    make_progress,
    results_view,
    runs_table,
    terminal_plot,
)
from seqbench.report import (
    format_comparison,
    format_comparison_summary,
    format_env_differences,
    format_env_line,
    format_frontier,
    format_gradient_profiles,
    format_markdown,
)
from seqbench.runner import CellFinished, CellStarted, iter_run, prepare_tasks
from seqbench.select import FILTER_COLUMNS, select_rows, sort_rows
from seqbench.storage import (
    ROWS_FORMATS,
    Run,
    atomic_write,
    create_run,
    load_run,
    reopen_run,
    summarize_runs,
    write_rows_file,
)
from seqbench.worker import measure_isolated

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
    # Escaped: a message may hold brackets ("pip install 'seqbench[report]'") Rich would eat.
    stderr().print(f"[bold red]error:[/] {escape(message)}", markup=True)
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


# What `run --format` prints on stdout: the Rich table, or an exporter's text.
RUN_FORMATS = ("table", "csv", "json", "markdown")

_AXIS_FLAGS = {
    "task": "--task",
    "match_params": "--match-params",
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
        None,
        help="Architectures, comma-separated (see `seqbench archs`), or package.module:factory.",
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
    mode: str | None = typer.Option(
        None,
        help="infer, train, step (one token of streaming inference, state carried), comma-separated.",
    ),
    match_params: str | None = typer.Option(
        None,
        help="Choose each architecture's width so its core has about this many parameters (comma list; 0: off).",
    ),
    task: str | None = typer.Option(
        None,
        help="Accuracy tasks, comma-separated: adding, copy, digits, imdb, or none (speed only, the default).",
    ),
    train_steps: int | None = typer.Option(
        None, help="Training steps per task cell (default 200 unless --train-time)."
    ),
    train_time: float | None = typer.Option(
        None, help="Seconds of training per task cell, at most."
    ),
    target: float | None = typer.Option(
        None,
        help="Record the training time until the task metric first reaches this (time_to_target_s).",
    ),
    eval_every: int | None = typer.Option(
        None, help="Steps between evaluations while chasing --target (default 100)."
    ),
    optimizer: str | None = typer.Option(
        None,
        help="adam (with gradient clipping) or rmsprop; default: the task's (adam for synthetic tasks, rmsprop for imdb).",
    ),
    lr: float | None = typer.Option(None, help="Learning rate (default 1e-3)."),
    clip: float | None = typer.Option(
        None, help="Gradient-norm clipping with Adam (default 1.0; 0 turns it off)."
    ),
    data: str | None = typer.Option(
        None, help="A local dataset: Keras' imdb.npz or the aclImdb folder (imdb task)."
    ),
    compile: bool | None = typer.Option(
        None,
        "--compile/--no-compile",
        help="Run the models through torch.compile (compile time is reported apart, never timed).",
    ),
    compile_backend: str | None = typer.Option(
        None, help="torch.compile backend (default inductor)."
    ),
    tf32: bool | None = typer.Option(
        None,
        "--tf32/--no-tf32",
        help="Let CUDA float32 matmuls and cuDNN use TensorFloat-32 (default on; recorded per row).",
    ),
    ceiling: bool | None = typer.Option(
        None,
        "--ceiling/--no-ceiling",
        help="Measure each device's matmul FLOP/s once per run, for the mfu column (default on).",
    ),
    grad_flow: bool | None = typer.Option(
        None,
        "--grad-flow/--no-grad-flow",
        help="Also measure each cell's memory horizon (see `seqbench gradflow`).",
    ),
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
    rounds: int | None = typer.Option(
        None,
        help="Passes over the whole matrix; each cell's samples are pooled across them, so a burst of interference touches one pass (default 1).",
    ),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    seed: int | None = typer.Option(None, help="Seed for weights and inputs (default 0)."),
    flush_denormal: bool | None = typer.Option(
        None,
        "--flush-denormal/--no-flush-denormal",
        help="Flush subnormal floats to zero on the CPU (default on, as in Keras).",
    ),
    executor: str | None = typer.Option(
        None,
        help="local (default), or ray: every cell a Ray task in a fresh worker, on any node of the cluster.",
    ),
    ray_address: str | None = typer.Option(
        None,
        help="With --executor ray: 'auto' or an address joins that cluster; default: a local cluster.",
    ),
    cpu_cells_per_node: int | None = typer.Option(
        None,
        help="With --executor ray: CPU cells that may run on one node at once, sharing its CPUs (default 1).",
    ),
    isolate: bool | None = typer.Option(
        None,
        "--isolate/--no-isolate",
        help="Run each cell in a fresh process: a crash or leak costs one cell, and host memory is measured cleanly.",
    ),
    cell_timeout: float | None = typer.Option(
        None, help="Seconds a cell may take before it is recorded as 'timeout' and the run goes on."
    ),
    skip_larger: bool | None = typer.Option(
        None,
        "--skip-larger/--no-skip-larger",
        help="After an OOM cell, skip larger cells of the same model on that device (default on).",
    ),
    label: str | None = typer.Option(None, help="A short name for the run (default: the suite's)."),
    resume: str | None = typer.Option(
        None,
        help="Finish an interrupted run: its id, its folder, or 'latest'. Uses the run's saved configuration.",
    ),
    out: Path = typer.Option(
        Path("results"), help="Results root: each run is saved in a folder under it."
    ),
    csv: Path | None = typer.Option(
        None, help="Also write the rows to this CSV (with .samples.csv and .meta.json beside it)."
    ),
    output_format: str = typer.Option(
        "table",
        "--format",
        help="What to print on stdout at the end: table, csv, json or markdown (progress and notes go to stderr).",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="No progress bar and nothing on stdout: only warnings and the final 'saved ...' line, on stderr.",
    ),
) -> None:
    """Measure a matrix of architectures x lengths x batch sizes x devices x dtypes x modes.

    With no options, runs the quick suite: every seed architecture at two lengths, inference
    and training, on the CPU, in well under a minute. Results are saved after every cell;
    Ctrl-C stops after saving what finished, and --resume finishes the rest.
    """
    if output_format not in RUN_FORMATS:
        raise SeqbenchError(
            f"--format: expected one of {', '.join(RUN_FORMATS)}; got {output_format!r}"
        )
    local = locals()
    axes = {
        name: parse_list(local[name], name, flag)
        for name, flag in _AXIS_FLAGS.items()
        if local[name] is not None
    }
    if bidirectional is not None:
        axes["bidirectional"] = (bidirectional,)
    if compile is not None:
        axes["compile"] = (compile,)
    settings = {
        name: check_setting(name, local[name], "--" + name.replace("_", "-"))
        for name in _SETTING_FLAGS
        if local[name] is not None
    }
    given = bool(suite or axes or settings)
    if resume is not None:
        run_, config, env = _reopen(resume, out, suite if given else None, axes, settings, given)
    else:
        config = resolve_config(suite, axes=axes, settings=settings)
        cells = plan(config)
        prepare_tasks(config, cells)  # a missing dataset stops us before anything is saved

        env = collect_env(
            [c.device for c in cells],
            apply_process_settings(config.threads, config.flush_denormal, config.tf32),
        )
        env["isolated"] = config.isolate or config.executor == "ray"
        env["executor"] = config.executor
        run_ = create_run(
            out,
            label=config.label,
            config=config.to_dict(),
            env=env,
            plan=[c.cell_id for c in cells],
            extra_csv=csv,
        )
    run_.extra_csv = csv
    _execute(config, plan(config), run_, env, output_format=output_format, quiet=quiet)


# Single-valued flags that override a suite's [measure] and [run] settings.
_SETTING_FLAGS = (
    "min_time",
    "min_repeats",
    "max_repeats",
    "precision",
    "warmup_time",
    "rounds",
    "train_steps",
    "train_time",
    "target",
    "eval_every",
    "optimizer",
    "lr",
    "clip",
    "data",
    "grad_flow",
    "compile_backend",
    "tf32",
    "ceiling",
    "threads",
    "seed",
    "flush_denormal",
    "isolate",
    "executor",
    "ray_address",
    "cpu_cells_per_node",
    "cell_timeout",
    "skip_larger",
    "label",
)


def _reopen(ref: str, out: Path, suite: str | None, axes: dict, settings: dict, given: bool):
    """The run to resume, its saved configuration, and the environment (which must match)."""
    run_ = reopen_run(ref, out)
    saved = SuiteConfig.from_dict(run_.meta["config"])
    if given:
        asked = (
            resolve_config(suite, axes=axes, settings=settings)
            if suite
            else apply_overrides(saved, axes, settings)
        )
        changed = config_differences(saved, asked)
        if changed:
            raise SeqbenchError(
                f"cannot resume {run_.run_id}: the configuration differs ({', '.join(changed)}); "
                "start a new run instead, or resume without those options"
            )
    env = collect_env(
        run_.meta["env"].get("device_names", {}),
        apply_process_settings(saved.threads, saved.flush_denormal, saved.tf32),
    )
    env["isolated"] = saved.isolate or saved.executor == "ray"
    env["executor"] = saved.executor
    changed = env_differences(run_.meta["env"], env)
    if saved.executor == "ray":  # cells' threads come from the cluster, set again when it starts
        changed = [k for k in changed if k != "threads"]
    if changed:
        raise SeqbenchError(
            f"cannot resume {run_.run_id}: the environment differs ({', '.join(changed)}); "
            "its numbers would not be comparable with those already saved"
        )
    return run_, saved, run_.meta["env"]


def _execute(
    config: SuiteConfig,
    cells: list,
    run_,
    env: dict,
    *,
    output_format: str = "table",
    quiet: bool = False,
) -> None:
    """Measure `cells` with a progress bar, then show the rows and pick the exit code."""
    err = stderr()
    missing = sorted({c.device for c in cells if devices.unavailable_reason(c.device)})
    for name in missing:
        count = sum(c.device == name for c in cells)
        err.print(
            f"[yellow]warning:[/] {devices.unavailable_reason(name)}: skipping its {count} cells"
        )
    total = len(run_.meta["plan"])
    rounds = config.measure.rounds
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with make_progress(err, disable=quiet) as progress:
            task = progress.add_task("starting", total=None)
            for event in iter_run(config, cells, run_):
                if isinstance(event, CellStarted):
                    where = f"round {event.round}/{rounds} " if rounds > 1 else ""
                    # Completions move the bar: with Ray, cells start long before they finish.
                    progress.update(task, total=event.total, description=where + event.cell.cell_id)
                elif isinstance(event, CellFinished):
                    progress.advance(task)
    except KeyboardInterrupt:
        run_.finish("interrupted")
        err.print(f"interrupted: {len(run_.rows)} of {total} cells are saved in {run_.path}")
        err.print(f"resume with: seqbench run --resume {run_.path}")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    run_.finish("complete")

    if not quiet:
        _print_rows(run_, run_.rows, output_format, env)
        err.print(format_env_line(env))
    counts = {
        s: sum(r.status == s for r in run_.rows)
        for s in ("ok", "skipped", "oom", "timeout", "error")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    err.print(f"saved {len(run_.rows)} cells ({summary}) to {run_.path}")
    if run_.extra_csv is not None and not quiet:
        err.print(f"rows also written to {run_.extra_csv}")
    unavailable = {
        r.device
        for r in run_.rows
        if r.status == "skipped" and devices.unavailable_reason(r.device)
    }
    if counts["error"] or unavailable:
        raise typer.Exit(1)


def _print_rows(run_: Run, rows: list, output_format: str, env: dict) -> None:
    """The rows on stdout: the results and scaling tables, or an exporter's text."""
    if output_format != "table":
        typer.echo(get_exporter(output_format).render(rows), nl=False)
        return
    console = stdout()
    title = f"seqbench {run_.meta.get('label', '')} ({run_.run_id})"
    console.print(results_view(rows, title, console, env.get("flush_denormal")))


def _raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a cancelled CI job, `kill`) stops a run the way Ctrl-C does."""
    raise KeyboardInterrupt


@app.command()
@user_errors
def compare(
    baseline: str = typer.Argument(
        ...,
        help="The reference run: a run id, a run folder, 'latest', or a results CSV with its .samples.csv.",
    ),
    candidate: str = typer.Argument(..., help="The run to judge, in the same forms."),
    threshold: float = typer.Option(
        0.10, help="A change smaller than this fraction is never a regression (default 0.10 = 10%)."
    ),
    metric: str = typer.Option(
        "time", help="What to gate on: time (from raw samples) or memory (exact)."
    ),
    output_format: str = typer.Option(
        "table", "--format", help="table, markdown (for CI job summaries and PR comments) or json."
    ),
    allow_env_mismatch: bool = typer.Option(
        False,
        "--allow-env-mismatch",
        help="Compare runs from different devices, library versions, thread counts or subnormal settings.",
    ),
    fail_on_improvement: bool = typer.Option(
        False,
        "--fail-on-improvement",
        help="Also exit 1 on large improvements (they often mean a benchmark broke).",
    ),
    root: Path = typer.Option(Path("results"), help="Results root, for run ids and 'latest'."),
) -> None:
    """Compare two runs cell by cell; exit 1 if a cell got significantly slower than the threshold.

    Exit codes: 0 no regression, 1 at least one regression, 2 bad input or runs from
    different environments (unless --allow-env-mismatch).
    """
    if threshold < 0:
        raise SeqbenchError(f"--threshold: expected a fraction >= 0, got {threshold}")
    if output_format not in ("table", "markdown", "json"):
        raise SeqbenchError(f"--format: expected table, markdown or json, got {output_format!r}")
    result = compare_runs(
        load_run(baseline, root), load_run(candidate, root), metric=metric, threshold=threshold
    )
    if result.env_differences and not allow_env_mismatch:
        raise SeqbenchError(
            "the runs come from different environments: "
            + format_env_differences(result.env_differences)
            + "; pass --allow-env-mismatch to compare them anyway"
        )
    failures = run_checks(result, fail_on_improvement=fail_on_improvement)
    summary = format_comparison_summary(result) + [f"FAIL: {m}" for m in failures]
    console = stdout()
    if output_format == "json":
        console.print_json(data={**result.to_dict(), "failures": failures})
    elif output_format == "markdown":
        text = format_markdown(
            format_comparison(result), title=f"seqbench compare: {result.metric.name}"
        )
        print(text + "\n" + "\n".join(f"- {line}" for line in summary))
    else:
        console.print(comparison_table(result, console=console))
        for line in summary:
            stderr().print(line, markup=False)
    if failures:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- reading runs

RUN_ARGUMENT_HELP = (
    "A run id, a run folder, 'latest', or a rows file (csv, json, parquet) with its .meta.json."
)
ROOT_HELP = "Results root, for run ids and 'latest'."


def _filter_option(column: str) -> Any:
    return typer.Option(
        None, f"--{column}", help=f"Only cells with these {column} values, comma-separated."
    )


def _load_selected(ref: str, root: Path, filters: dict[str, str | None]) -> tuple[Run, list]:
    """A saved run and its rows that pass the filters (at least one, or an error)."""
    loaded = load_run(ref, root)
    rows = select_rows(loaded.rows, filters)
    if not rows:
        asked = " ".join(f"--{c} {v}" for c, v in filters.items() if v is not None)
        raise SeqbenchError(f"no cells of {loaded.run_id} match {asked}")
    return loaded, rows


def _format_of(path: Path | None) -> str | None:
    """The export format a file name implies, if it implies one."""
    try:
        return None if path is None else exporter_for_path(path).name
    except SeqbenchError:
        return None


def _write(path: Path, write: Callable[[], None]) -> None:
    """Run a file write; turn an OS error into one line naming the file."""
    try:
        write()
    except OSError as exc:
        raise SeqbenchError(f"--out {path}: cannot write it ({exc.strerror or exc})") from None


@app.command()
@user_errors
def runs(
    root: Path = typer.Option(Path("results"), help="Results root whose runs to list."),
) -> None:
    """List the saved runs, newest first: id, label, time, devices, cells and their statuses."""
    summaries = summarize_runs(root)
    if not summaries:
        stderr().print(f"no saved runs in {root}", markup=False)
        return
    console = stdout()
    console.print(runs_table(summaries, console))


@app.command()
@user_errors
def show(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    arch: str | None = _filter_option("arch"),
    mode: str | None = _filter_option("mode"),
    device: str | None = _filter_option("device"),
    task: str | None = _filter_option("task"),
    sort: str | None = typer.Option(
        None,
        help="Order by these result columns, comma-separated (e.g. median_s, or arch,seq_len).",
    ),
    reverse: bool = typer.Option(False, "--reverse", help="With --sort: largest first."),
    root: Path = typer.Option(Path("results"), help=ROOT_HELP),
) -> None:
    """Show a saved run as the results table, with how its cost grows with length.

    With three or more lengths a second table gives each model's fitted exponent k
    (cost ∝ T^k) for time and memory, flags steps far off the fit, and says where two
    models' curves cross.
    """
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    loaded, rows = _load_selected(run, root, filters)
    env = loaded.meta.get("env", {})
    _print_rows(loaded, sort_rows(rows, sort, reverse), "table", env)
    stderr().print(format_env_line(env), markup=False)


@app.command()
@user_errors
def export(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    output_format: str | None = typer.Option(
        None,
        "--format",
        help="csv, json, parquet or markdown (default: from --out's suffix, else csv).",
    ),
    out: Path | None = typer.Option(
        None,
        help="Write to this file instead of stdout (csv, json and parquet get .samples.csv and .meta.json beside them, so seqbench can read them back).",
    ),
    arch: str | None = _filter_option("arch"),
    mode: str | None = _filter_option("mode"),
    device: str | None = _filter_option("device"),
    task: str | None = _filter_option("task"),
    root: Path = typer.Option(Path("results"), help=ROOT_HELP),
) -> None:
    """Write a saved run's rows as CSV, JSON, parquet or markdown."""
    if output_format is not None:
        exporter = get_exporter(output_format)
        implied = _format_of(out)
        if implied not in (None, exporter.name):
            # A json file named .csv would not read back: load_run goes by the suffix.
            raise SeqbenchError(
                f"--out {out}: the suffix says {implied}, --format says {exporter.name}"
            )
    else:
        exporter = exporter_for_path(out) if out is not None else get_exporter("csv")
    if exporter.name == "parquet":
        require("pyarrow", "parquet export")
    if exporter.binary and out is None:
        raise SeqbenchError(
            f"--format {exporter.name} is binary: give a file to write it to (--out FILE)"
        )
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    loaded, rows = _load_selected(run, root, filters)
    data = exporter.render(rows)
    if out is None:
        typer.echo(data, nl=False)
        return
    if exporter.name in ("csv", *ROWS_FORMATS.values()):
        kept = {r.cell_id for r in rows}
        samples = {k: v for k, v in loaded.samples.items() if k in kept}
        _write(out, lambda: write_rows_file(out, data, samples, loaded.meta))
    else:
        _write(out, lambda: atomic_write(out, data))
    stderr().print(f"wrote {len(rows)} rows to {out}", markup=False)


@app.command()
@user_errors
def plot(
    run: str = typer.Argument(..., help=RUN_ARGUMENT_HELP),
    metric: str | None = typer.Option(
        None,
        help="seq_per_s, median_s, peak_mem_bytes or tflops against length; metric_value against cost (default: metric_value when the run has a task, else median_s).",
    ),
    out: Path | None = typer.Option(
        None, help="Write a .png or .svg file instead of drawing in the terminal."
    ),
    arch: str | None = _filter_option("arch"),
    mode: str | None = _filter_option("mode"),
    device: str | None = _filter_option("device"),
    task: str | None = _filter_option("task"),
    root: Path = typer.Option(Path("results"), help=ROOT_HELP),
) -> None:
    """Plot a saved run: a cost against length (log–log), or accuracy against cost.

    A cost is drawn per model against sequence length on log–log axes, where c·T^k is a
    straight line; the legend gives each model's fitted k. A run with a task plots accuracy
    against step time instead, with the Pareto frontier (nothing both cheaper and better)
    marked. Without --out the plot is drawn in the terminal (plotext); with it, a PNG or
    SVG file (matplotlib).
    """
    if metric is not None:
        check_metric(metric)
    fmt = image_format(out) if out is not None else None
    require("matplotlib" if out is not None else "plotext", "plot")
    filters = dict(zip(FILTER_COLUMNS, (arch, mode, device, task), strict=True))
    loaded, rows = _load_selected(run, root, filters)
    if metric is None:
        metric = "metric_value" if any(r.metric_value is not None for r in rows) else "median_s"
    chart = build_chart(rows, metric, loaded.run_id)
    if out is None:
        console = stdout()
        height = max(15, min(console.height - 6, 30))
        console.print(terminal_plot(render_text(chart, console.width, height)))
        return
    image = render_image(chart, fmt)
    _write(out, lambda: atomic_write(out, image))
    stderr().print(f"wrote {out}", markup=False)


@app.command(name="env")
@user_errors
def env_command(
    device: str = typer.Option(
        "auto", help="Devices to name, comma-separated: cpu, cuda, cuda:N, mps, or auto."
    ),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    flush_denormal: bool = typer.Option(
        True,
        "--flush-denormal/--no-flush-denormal",
        help="Flush subnormal floats to zero on the CPU, as `seqbench run` does by default.",
    ),
    output_format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Show the environment a run would record: versions, hardware, threads, subnormals."""
    if output_format not in ("table", "json"):
        raise SeqbenchError(f"--format: expected table or json; got {output_format!r}")
    if threads is not None and threads < 1:
        raise SeqbenchError(f"--threads: expected a positive integer, got {threads}")
    names = [devices.resolve(d.strip()) for d in device.split(",") if d.strip()]
    for name in names:
        reason = devices.unavailable_reason(name)
        if reason:
            stderr().print(f"[yellow]warning:[/] {reason}")
    env = collect_env(names, apply_process_settings(threads, flush_denormal))
    console = stdout()
    if output_format == "json":
        console.print_json(data=env, default=str)
    else:
        console.print(env_table(env))


@app.command()
@user_errors
def gradflow(
    arch: str = typer.Option("rnn,lstm,gru", help="Architectures, comma-separated."),
    seq_len: int = typer.Option(200, help="Sequence length."),
    hidden: int = typer.Option(64, help="Hidden units."),
    batch_size: int = typer.Option(
        32, help="Sequences the gradient is averaged over (and the training batch)."
    ),
    layers: int = typer.Option(1, help="Stacked recurrent layers."),
    task: str | None = typer.Option(
        None, help="Feed this task's data (adding, copy, digits, imdb); default: random token ids."
    ),
    train_steps: int | None = typer.Option(
        None, help="With --task: also measure after this many training steps."
    ),
    data: str | None = typer.Option(None, help="A local dataset for the imdb task."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, help="Seed for weights and inputs."),
    output_format: str = typer.Option(
        "table", "--format", help="table, or json (with every norm)."
    ),
    plot: bool = typer.Option(
        False, "--plot", help="Also draw the norms against distance in the terminal."
    ),
    out: Path | None = typer.Option(None, help="Also write that plot to a .png or .svg file."),
) -> None:
    """How far back a loss on the last output reaches: the vanishing gradient as a number.

    For each architecture, the norm of d(loss)/d(input_t) at every step t, at initialisation
    (and after training, with --task and --train-steps). The memory horizon is how many steps
    back from the end the norm stays at or above 1e-3 of its largest value.
    """
    if output_format not in ("table", "json"):
        raise SeqbenchError(f"--format: expected table or json, got {output_format!r}")
    if train_steps is not None and not task:
        raise SeqbenchError("--train-steps needs a --task to train on")
    fmt = image_format(out) if out is not None else None
    if plot or out is not None:
        require("matplotlib" if out is not None else "plotext", "a plot")
    axes = {
        "arch": parse_list(arch, "arch", "--arch"),
        "task": parse_list(task or "none", "task", "--task"),
    }
    for name, value, flag in (
        ("seq_len", seq_len, "--seq-len"),
        ("hidden", hidden, "--hidden"),
        ("batch_size", batch_size, "--batch-size"),
        ("layers", layers, "--layers"),
    ):
        axes[name] = parse_list(str(value), name, flag)
    axes["device"] = parse_list(device, "device", "--device")
    axes["mode"] = ("train",)
    settings = {"seed": check_setting("seed", seed, "--seed")}
    if train_steps is not None:
        settings["train_steps"] = check_setting("train_steps", train_steps, "--train-steps")
    if data is not None:
        settings["data"] = data
    config = resolve_config(None, axes=axes, settings=settings)
    cells = plan(config)
    missing = [
        devices.unavailable_reason(c.device) for c in cells if devices.unavailable_reason(c.device)
    ]
    if missing:
        raise SeqbenchError(missing[0])
    apply_process_settings(config.threads, config.flush_denormal, config.tf32)
    profiles = [
        trace_gradient_flow(c, config.train, config.seed, after_training=train_steps is not None)
        for c in cells
    ]
    console = stdout()
    if output_format == "json":
        console.print_json(data=[dataclasses.asdict(p) for p in profiles])
    else:
        title = "gradient flow: |d loss / d input_t|, relative to its peak"
        console.print(fitted_table(format_gradient_profiles(profiles), title, console))
    chart = gradient_chart(profiles)
    if plot:
        height = max(15, min(console.height - 6, 30))
        console.print(terminal_plot(render_text(chart, console.width, height)))
    if out is not None:
        image = render_image(chart, fmt)
        _write(out, lambda: atomic_write(out, image))
        stderr().print(f"wrote {out}", markup=False)


@app.command()
@user_errors
def frontier(
    arch: str = typer.Option("rnn,lstm,gru,conv1d", help="Architectures, comma-separated."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    batch_size: int = typer.Option(32, help="Batch size."),
    hidden: int = typer.Option(32, help="Hidden units."),
    layers: int = typer.Option(1, help="Stacked recurrent layers."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    mode: str = typer.Option("train", help="infer or train."),
    mem_limit: str | None = typer.Option(
        None,
        help="Count a probe as fitting only if its peak memory is at most this (2GiB, 500MB, 1e9); needed on the CPU.",
    ),
    start: int = typer.Option(
        256, help="The first length tried; the search doubles or halves from here."
    ),
    max_len: int = typer.Option(1 << 20, help="Stop growing at this length."),
    tolerance: float = typer.Option(
        0.02,
        help="Stop once the first failing length is within this fraction of the largest fitting one (0: exact).",
    ),
    isolate: bool = typer.Option(
        True,
        "--isolate/--no-isolate",
        help="Run each probe in a fresh process (default), so that an OOM cannot poison the next.",
    ),
    out: Path = typer.Option(
        Path("results"), help="Results root: the probes are saved as a run there."
    ),
) -> None:
    """The longest sequence each architecture fits on the device, found by bisection.

    A probe fits when one step runs without running out of memory and, with --mem-limit,
    its peak memory stays within the limit. The probes are saved as a run (label
    'frontier'); the table shows each architecture's frontier.
    """
    limit = parse_bytes(mem_limit) if mem_limit is not None else None
    if start < 1 or max_len < start:
        raise SeqbenchError("--start and --max-len: expected 1 <= start <= max-len")
    if tolerance < 0:
        raise SeqbenchError(f"--tolerance: expected a fraction >= 0, got {tolerance}")
    axes = {
        "arch": parse_list(arch, "arch", "--arch"),
        "device": parse_list(device, "device", "--device"),
        "batch_size": parse_list(str(batch_size), "batch_size", "--batch-size"),
        "hidden": parse_list(str(hidden), "hidden", "--hidden"),
        "layers": parse_list(str(layers), "layers", "--layers"),
        "dtype": parse_list(dtype, "dtype", "--dtype"),
        "mode": parse_list(mode, "mode", "--mode"),
        "seq_len": (start,),
    }
    config = resolve_config(None, axes=axes, settings={"label": "frontier", "ceiling": False})
    config = dataclasses.replace(config, measure=PROBE_SETTINGS)
    cells = plan(config)
    for cell in cells:
        reason = devices.unavailable_reason(cell.device)
        if reason:
            raise SeqbenchError(reason)
    if limit is None and any(c.device == "cpu" for c in cells):
        raise SeqbenchError(
            "on the CPU, give --mem-limit: host memory runs out far past where a benchmark is useful"
        )
    env = collect_env(
        [c.device for c in cells],
        apply_process_settings(config.threads, config.flush_denormal, config.tf32),
    )
    run_ = create_run(out, label="frontier", config=config.to_dict(), env=env, plan=[])
    results = {}
    with make_progress(stderr()) as progress:
        task = progress.add_task("probing", total=None)
        for cell in cells:

            def probe(length: int, cell=cell) -> Probe:
                progress.update(task, description=f"{cell.arch} T={length}")
                probe_cell = dataclasses.replace(cell, seq_len=length)
                m = (
                    measure_isolated(probe_cell, config)
                    if isolate
                    else measure_cell(probe_cell, PROBE_SETTINGS, seed=config.seed)
                )
                run_.add(m)
                return Probe(length, fits(m, limit), m)

            results[cell.arch] = summarize(
                list(search(probe, start=min(start, max_len), max_len=max_len, tolerance=tolerance))
            )
    run_.meta["frontier"] = {
        a: {"largest": r.largest, "smallest_failing": r.smallest_failing, "mem_limit": limit}
        for a, r in results.items()
    }
    run_.finish("complete")
    console = stdout()
    console.print(
        fitted_table(format_frontier(results), f"memory frontier ({run_.run_id})", console)
    )
    stderr().print(f"saved {len(run_.rows)} probes to {run_.path}")


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
