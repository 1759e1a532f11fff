"""`seqbench gradflow`: how far back the task's loss reaches into the input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from seqbench.cli.app import app
from seqbench.cli.common import plot_format, show_plot, stdout, user_errors, write_image
from seqbench.cli.options import path_value
from seqbench.core.errors import SeqbenchError


@app.command()
@user_errors
def gradflow(
    arch: str = typer.Option("rnn,lstm,gru", help="Architectures, comma-separated."),
    seq_len: int = typer.Option(200, help="Sequence length."),
    hidden: int = typer.Option(64, help="Hidden units."),
    batch_size: int = typer.Option(
        32, help="Held-out sequences the loss's gradient is taken over (and the training batch)."
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
    seed: str = typer.Option(
        "0", help="Seeds for weights and inputs, comma-separated: several give the spread."
    ),
    output_format: str = typer.Option(
        "table", "--format", help="table, or json (with every norm)."
    ),
    plot: bool = typer.Option(
        False, "--plot", help="Also draw the norms against distance in the terminal."
    ),
    out: Path | None = typer.Option(
        None, help="Also write that plot to a .png or .svg file.", parser=path_value
    ),
) -> None:
    """How far back the task's loss reaches: the vanishing gradient as a number.

    For each architecture, the norm of d(loss)/d(input_t) at every step t over --batch-size
    held-out sequences, at initialisation (and after training, with --task and
    --train-steps). The memory horizon is the fewest steps back from the end that hold all
    but 1e-3 (then 1e-2) of the norms' sum; the t-d columns are relative to the last step.
    """
    from seqbench.machine.env import apply_process
    from seqbench.measure.gradflow import horizon_spread, trace_gradient_flow
    from seqbench.output.plots import gradient_chart, render_image, render_text
    from seqbench.output.tables import format_gradient_profiles, format_horizon_spread
    from seqbench.output.terminal import fitted_table
    from seqbench.plan.cells import make_plan
    from seqbench.plan.suites import check_setting, parse_list, resolve_config

    if output_format not in ("table", "json"):
        raise SeqbenchError(f"--format: expected table or json, got {output_format!r}")
    if train_steps is not None and not task:
        raise SeqbenchError("--train-steps needs a --task to train on")
    fmt = plot_format(out, "a plot") if plot or out is not None else None
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
    seeds = [check_setting("seed", _integer(v, "--seed"), "--seed") for v in seed.split(",")]
    settings = {"seed": seeds[0]}
    if train_steps is not None:
        settings["train_steps"] = check_setting("train_steps", train_steps, "--train-steps")
    if data is not None:
        settings["data"] = data
    config = resolve_config(None, axes=axes, settings=settings)
    plan = make_plan(config)
    if plan.unavailable:
        raise SeqbenchError(next(iter(plan.unavailable.values())))
    apply_process(config.process)
    profiles = [
        trace_gradient_flow(c, config.train, s, after_training=train_steps is not None)
        for c in plan.cells
        for s in seeds
    ]
    console = stdout()
    if output_format == "json":
        console.print_json(data=[dataclasses.asdict(p) for p in profiles])
    else:
        title = "gradient flow: |d loss / d input_t|, relative to the last step's"
        console.print(fitted_table(format_gradient_profiles(profiles), title, console))
        for line in format_horizon_spread(horizon_spread(profiles)):
            console.print(line, markup=False)
    chart = gradient_chart(profiles)
    if plot:
        show_plot(lambda w, h: render_text(chart, w, h))
    if out is not None:
        write_image(out, render_image(chart, fmt))


def _integer(text: str, flag: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SeqbenchError(
            f"{flag}: expected comma-separated integers, got {text.strip()!r}"
        ) from None
