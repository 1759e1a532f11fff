"""Options declared as data: each is a name, a type, a help line, and what it sets.

`seqbench run` has some fifty options. Written as fifty parameters, their meaning would be
spread between the signature and the body; here each is one `Option` that says whether it
is an axis of the matrix (a comma list), a single setting of the suite, or an option of the
command itself, and `declare` turns the list into the parameters Typer reads. The command
receives one `Given` object: what the user set, by name.

An axis or a setting is not written here: its `Option` is made from its declaration
(`core.settings`, `plan.config`) by `from_declaration`, help text, default and help panel
included. Only the options of the commands themselves are written out.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from seqbench.core.settings import OUTPUT, Declaration, ProcessSettings, declarations
from seqbench.core.settings import RESULTS_ROOT as RESULTS_ROOT_NAME

ARGUMENT = "argument"  # a positional argument of the command
AXIS = "axis"  # a comma-separated list: one axis of the matrix
SWITCH_AXIS = "switch-axis"  # a --x/--no-x flag that fixes a boolean axis to one value
SETTING = "setting"  # one value of the suite's [measure], [train] or [run] settings
COMMAND = "command"  # the command's own (where to save, what to print)


def path_value(text: str | Path) -> Path:
    """A path flag's value: an empty one is refused (Path('') is the current folder, where
    `--root ''` would have put run folders among the user's files)."""
    if isinstance(text, Path):
        return text
    if not text.strip():
        raise typer.BadParameter(f"expected a path, got {text!r}")
    return Path(text)


@dataclass(frozen=True)
class Option:
    name: str  # the parameter, and the config key it sets
    help: str
    kind: str = SETTING
    type: Any = None  # None: str
    default: Any = None  # None: not given (the suite decides)
    flags: tuple[str, ...] = ()  # default: --name-with-dashes (and --no-name for a switch)
    switch: bool = False  # a --x/--no-x pair
    panel: str | None = None  # the group `--help` lists it under

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def typer(self) -> Any:
        """The typer.Option (or Argument) Typer reads, for a command's signature."""
        if self.kind == ARGUMENT:
            return typer.Argument(..., help=self.help, rich_help_panel=self.panel)
        names = self.flags or (
            (f"{self.flag}/--no-{self.flag[2:]}",) if self.switch else (self.flag,)
        )
        parser = {"parser": path_value} if self.type is Path else {}
        return typer.Option(
            self.default, *names, help=self.help, rich_help_panel=self.panel, **parser
        )

    def parameter(self) -> inspect.Parameter:
        if self.kind == ARGUMENT:
            return inspect.Parameter(
                self.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=self.typer(),
                annotation=self.type or str,
            )
        kind = self.type or str
        annotation = kind if self.default is not None else (kind | None)
        return inspect.Parameter(
            self.name, inspect.Parameter.KEYWORD_ONLY, default=self.typer(), annotation=annotation
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


def from_declaration(declaration: Declaration, kind: str = SETTING, **changes: Any) -> Option:
    """The option of a declared axis or setting: its flag, type, help (its default said from
    the declaration) and panel. `changes` are a command's own (ab's default rounds)."""
    declared = declaration.declared
    rule_kind = declared.rule.kind
    if kind == AXIS and declared.switch:
        kind = SWITCH_AXIS
    option = Option(
        declaration.name,
        declaration.help_text(),
        kind=kind,
        type=None if kind == AXIS or rule_kind is str else rule_kind,
        switch=declared.switch,
        panel=declared.panel,
    )
    return dataclasses.replace(option, **changes)


def declared_options(cls: type, kind: str = SETTING) -> list[Option]:
    """The command-line options of a dataclass's declared settings (those with a flag)."""
    return [from_declaration(d, kind) for d in declarations(cls) if d.declared.cli]


def declared(cls: type, name: str) -> Declaration:
    return next(d for d in declarations(cls) if d.name == name)


# Options more than one command takes, written once.
THREADS = from_declaration(declared(ProcessSettings, "threads"))
RESULTS_ROOT = Option(
    "root",
    "Results root: each run is saved in a folder under it (--out is its older name)",
    kind=COMMAND,
    type=Path,
    default=Path(RESULTS_ROOT_NAME),
    flags=("--root", "--out"),
    panel=OUTPUT,
)
