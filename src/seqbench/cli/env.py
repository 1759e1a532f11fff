"""`seqbench env`: the environment a run would record."""

from __future__ import annotations

import typer

from seqbench.cli.app import app
from seqbench.cli.common import stderr, stdout, user_errors
from seqbench.core.errors import SeqbenchError


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
    from seqbench.core import devices
    from seqbench.machine.env import apply_process_settings, collect_env
    from seqbench.output.terminal import env_table

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
