"""`seqbench frontier`: the longest sequence each architecture fits, by bisection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import sigterm_as_interrupt, stderr, stdout, user_errors
from seqbench.cli.options import RESULTS_ROOT, THREADS
from seqbench.core.errors import SeqbenchError


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
    threads: int | None = THREADS.typer(),
    isolate: bool = typer.Option(
        True,
        "--isolate/--no-isolate",
        help="Run each probe in a fresh process (default), so that an OOM cannot poison the next.",
    ),
    root: Path = RESULTS_ROOT.typer(),
) -> None:
    """The longest sequence each architecture fits on the device, found by bisection.

    A probe fits when one step runs without running out of memory and, with --mem-limit,
    its peak memory stays within the limit. The probes are saved as a run (label
    'frontier'); the table shows each architecture's frontier.
    """
    from seqbench.execute.session import Session
    from seqbench.output.tables import format_frontier
    from seqbench.output.terminal import fitted_table, make_progress
    from seqbench.plan.cells import make_plan
    from seqbench.plan.frontier import PROBE_SETTINGS, Probe, fits, parse_bytes, search, summarize
    from seqbench.plan.suites import check_setting, parse_list, resolve_config

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
    settings = {"label": "frontier", "ceiling": False, "isolate": isolate}
    if threads is not None:
        settings["threads"] = check_setting("threads", threads, "--threads")
    config = resolve_config(None, axes=axes, settings=settings)
    config = dataclasses.replace(config, measure=PROBE_SETTINGS)
    plan = make_plan(config, long=False)  # a frontier searches lengths itself
    if plan.unavailable:
        raise SeqbenchError(next(iter(plan.unavailable.values())))
    if limit is None and any(c.device == "cpu" for c in plan.cells):
        raise SeqbenchError(
            "on the CPU, give --mem-limit: host memory runs out far past where a benchmark is useful"
        )
    # The probes are not known in advance: the plan of a frontier run stays empty.
    session = Session.start(config, root=root, the_plan=dataclasses.replace(plan, cells=[]))
    for line in session.notices:
        stderr().print(f"warning: {line}", markup=False)
    results = {}
    with session, sigterm_as_interrupt(), make_progress(stderr()) as progress:
        task = progress.add_task("probing", total=None)
        for cell in plan.cells:

            def probe(length: int, cell=cell) -> Probe:
                progress.update(task, description=f"{cell.arch} T={length}")
                request = session.config.request(dataclasses.replace(cell, seq_len=length))
                measurement = session.measure_one(request)
                return Probe(length, fits(measurement, limit), measurement)

            probes = search(probe, start=min(start, max_len), max_len=max_len, tolerance=tolerance)
            results[cell.arch] = summarize(list(probes))
        session.run.meta.frontier = {
            a: {"largest": r.largest, "smallest_failing": r.smallest_failing, "mem_limit": limit}
            for a, r in results.items()
        }
    run_ = session.run
    console = stdout()
    console.print(
        fitted_table(format_frontier(results), f"memory frontier ({run_.run_id})", console)
    )
    from seqbench.output.text import format_plural

    stderr().print(f"saved {format_plural(len(run_.rows), 'probe')} to {run_.path}")
