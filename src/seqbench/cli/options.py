"""Options declared as data: each is a name, a type, a help line, and what it sets.

`seqbench run` has some fifty options. Written as fifty parameters, their meaning would be
spread between the signature and the body; here each is one `Option` that says whether it
is an axis of the matrix (a comma list), a single setting of the suite, or an option of the
command itself, and `declare` turns the list into the parameters Typer reads. The command
receives one `Given` object: what the user set, by name.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

ARGUMENT = "argument"  # a positional argument of the command
AXIS = "axis"  # a comma-separated list: one axis of the matrix
SWITCH_AXIS = "switch-axis"  # a --x/--no-x flag that fixes a boolean axis to one value
SETTING = "setting"  # one value of the suite's [measure], [train] or [run] settings
COMMAND = "command"  # the command's own (where to save, what to print)


@dataclass(frozen=True)
class Option:
    name: str  # the parameter, and the config key it sets
    help: str
    kind: str = SETTING
    type: Any = None  # None: str
    default: Any = None  # None: not given (the suite decides)
    flags: tuple[str, ...] = ()  # default: --name-with-dashes (and --no-name for a switch)
    switch: bool = False  # a --x/--no-x pair

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parameter(self) -> inspect.Parameter:
        if self.kind == ARGUMENT:
            return inspect.Parameter(
                self.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=typer.Argument(..., help=self.help),
                annotation=self.type or str,
            )
        names = self.flags or (
            (f"{self.flag}/--no-{self.flag[2:]}",) if self.switch else (self.flag,)
        )
        kind = self.type or str
        annotation = kind if self.default is not None else (kind | None)
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(self.default, *names, help=self.help),
            annotation=annotation,
        )


class Given:
    """The values of declared options, by name; None where the user gave nothing."""

    def __init__(self, options: Iterable[Option], values: dict[str, Any]) -> None:
        self._options = {o.name: o for o in options}
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def of_kind(self, *kinds: str) -> Iterator[tuple[Option, Any]]:
        """(option, value) for every option of these kinds that the user set."""
        for name, option in self._options.items():
            value = self._values[name]
            if option.kind in kinds and value is not None:
                yield option, value


def declare(options: Iterable[Option]) -> Callable[[Callable[[Given], Any]], Callable[..., Any]]:
    """Make `fn(given)` a Typer command whose parameters are `options`."""
    options = tuple(options)

    def wrap(fn: Callable[[Given], Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            return fn(Given(options, values))

        parameters = [o.parameter() for o in options]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # Typer must read the declared signature, not fn's
        return command

    return wrap


# Options more than one command takes, written once.
THREADS = Option(
    "threads",
    "torch CPU threads (default: torch's, fewer when other processes keep the CPUs busy).",
    type=int,
)
RESULTS_ROOT = Option(
    "out",
    "Results root: each run is saved in a folder under it.",
    kind=COMMAND,
    type=Path,
    default=Path("results"),
)
