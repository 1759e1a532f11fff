"""The Typer application every command module registers with.

Exit codes: 0 success; 1 the run finished but some cells could not be measured (an error,
or a device that is not here), or a comparison found a regression; 2 bad input (flags,
suite files, result files); 130 interrupted (Ctrl-C, SIGTERM), with every finished cell
saved; 74 standard output refused a write (a full device, a closed pipe: see cli.streams).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from seqbench.cli import streams
from seqbench.core.version import __version__


class OneLineErrors(TyperGroup):
    """Typer's group, with its errors as one line: a usage mistake (an unknown option, a
    missing argument) is `error: ...` and exit 2, as every other input error is, rather
    than a boxed panel; Ctrl-C before a command has anything to save is `interrupted`, 130."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        exceptions = _click_exceptions()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except streams.StdoutRefused as exc:
            streams.give_up(exc)
        except exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "seqbench"
            message = " ".join(exc.format_message().split())
            _one_line(f"{message} (see {where} --help)")
            sys.exit(2)
        except exceptions.ClickException as exc:
            _one_line(" ".join(exc.format_message().split()))
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        finally:
            forget_handled_interrupt()
        streams.flush_or_give_up()
        if code == 130:  # a second Ctrl-C must not break into the interpreter's exit
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except streams.StdoutRefused as exc:  # before Click's own OSError handling sees it
            streams.give_up(exc)
        except (ImportError, OSError) as exc:
            why = torch_unloadable(exc)
            if why is None:
                raise
            _one_line(why)
            sys.exit(2)


def forget_handled_interrupt() -> None:
    """Let the exit code chosen stand after a Ctrl-C or SIGTERM that was handled.

    CPython remembers a KeyboardInterrupt that left an `exec` of source text (a dataclass's
    or namedtuple's methods are made that way, while a module imports lazily mid-run) and,
    under `python -m`, ends the process by SIGINT at exit whatever the exit code: a handled
    SIGTERM then read as -2 instead of 130, about one run in ten. An `exec` that finishes
    clears that memory (3.10 to 3.13)."""
    exec("")  # noqa: S102


def torch_unloadable(exc: BaseException) -> str | None:
    """One line for a torch that cannot be imported (not installed, or its libraries cannot
    be mapped under a memory limit), or None for any other import or OS error."""
    import os
    import resource

    tb, inside = exc.__traceback__, getattr(exc, "name", None) in ("torch", "torch._C")
    while tb is not None and not inside:
        inside = tb.tb_frame.f_code.co_filename.endswith(os.path.join("torch", "__init__.py"))
        tb = tb.tb_next
    if not inside:
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    hint = ""
    if limit != resource.RLIM_INFINITY:
        hint = f" (this process may map at most {limit / 2**20:,.0f} MiB: ulimit -v)"
    return f"torch could not be loaded: {first}{hint}"


def _click_exceptions() -> Any:
    """Click's exception classes, as Typer raises them (recent Typer versions carry their
    own copy of click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - a Typer that uses click itself
        from click import exceptions
    return exceptions


def _one_line(message: str) -> None:
    from seqbench.cli.common import fail

    fail(message)


app = typer.Typer(
    cls=OneLineErrors,
    help="Benchmark sequence-model architectures: what each one costs and what it buys.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """seqbench: a terminal benchmark for sequence-model architectures."""
