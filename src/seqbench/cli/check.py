"""`seqbench check`: what on this machine threatens a measurement, and what to do about it."""

from __future__ import annotations

import dataclasses

import typer

from seqbench.cli.app import app
from seqbench.cli.common import stdout, user_errors
from seqbench.cli.options import THREADS
from seqbench.core.errors import SeqbenchError


@app.command()
@user_errors
def check(
    threads: int | None = THREADS.typer(),
    seconds: float = typer.Option(
        0.5, help="How long to watch the CPUs for other processes' work."
    ),
    output_format: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Check this machine for what makes timings noisy: other work on the CPUs, the load,
    the thread count against free cores, steal, cgroup throttling, the frequency governor
    and turbo; each problem with advice. Exit 0 when nothing threatens a measurement, 1
    when something does."""
    from seqbench.machine import look
    from seqbench.output.terminal import checks_table
    from seqbench.plan.suites import check_setting

    if output_format not in ("table", "json"):
        raise SeqbenchError(f"--format: expected table or json; got {output_format!r}")
    if threads is not None:
        check_setting("threads", threads, "--threads")
    if not 0 < seconds <= 60:
        raise SeqbenchError(f"--seconds: expected a number of seconds in (0, 60], got {seconds}")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    machine = look.look(seconds)
    found = look.checks(machine, threads)
    console = stdout()
    if output_format == "json":
        console.print_json(data=[dataclasses.asdict(c) for c in found])
    else:
        console.print(checks_table(found))
    if any(c.ok is False for c in found):
        raise typer.Exit(1)
