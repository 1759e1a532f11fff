"""Each setting declared once (core.settings, plan.config): its flag, help, default, panel,
suite key, API keyword and pytest option all come from that one declaration."""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer

import seqbench.pytest_plugin as plugin
from seqbench.cli import app
from seqbench.cli.options import AXIS, SETTING, SWITCH_AXIS, declared_options
from seqbench.core.settings import (
    PANELS,
    POSITIVE_INT,
    MeasureSettings,
    ProcessSettings,
    TrainSettings,
    declarations,
    format_default,
    setting,
)
from seqbench.plan.config import Axes, SuiteConfig
from seqbench.plan.module import MODULE_SETTINGS
from seqbench.plan.suites import check_axis, check_setting

SETTINGS = [d for cls in (MeasureSettings, TrainSettings, SuiteConfig) for d in declarations(cls)]
AXES = list(declarations(Axes))


def run_parameters() -> dict[str, object]:
    """The click parameters of `seqbench run`, by name."""
    command = typer.main.get_command(app).commands["run"]
    return {p.name: p for p in command.params}


@pytest.mark.parametrize("declaration", SETTINGS + AXES, ids=lambda d: d.name)
def test_every_declared_flag_shows_its_declared_help_default_and_panel(declaration):
    parameters = run_parameters()
    if not declaration.declared.cli:
        # Only an axis of the same name (the seed and rate axes) has the flag.
        assert (
            declaration.name not in parameters
            or declaration in SETTINGS
            and any(a.name == declaration.name for a in AXES)
        )
        return
    parameter = parameters[declaration.name]
    assert parameter.help == declaration.help_text()
    assert parameter.rich_help_panel == declaration.declared.panel
    assert declaration.declared.panel in PANELS
    text = declaration.declared.default_text or (
        None if declaration.default is None else format_default(declaration.default)
    )
    if text is not None:
        assert parameter.help.endswith(f"(default: {text}).")
    if declaration.declared.switch:
        assert parameter.secondary_opts == [f"--no-{declaration.flag[2:]}"]


def test_no_help_text_types_a_default_by_hand():
    """A default in a help text is the declaration's: each '(default: X)' a run option shows
    is one `help_text` wrote."""
    derived = {d.name: d.help_text() for d in SETTINGS + AXES}
    for name, parameter in run_parameters().items():
        if re.search(r"\(default[: ]", parameter.help or ""):
            assert parameter.help == derived[name], name


@pytest.mark.parametrize("declaration", SETTINGS, ids=lambda d: d.name)
def test_every_setting_is_a_suite_key_and_an_api_keyword_checked_by_its_rule(declaration):
    value = declaration.default
    if value is None:  # a value the rule takes
        value = {int: 1, float: 1.0, str: "adam", bool: True}[declaration.rule.kind]
    assert check_setting(declaration.name, value, "x") == value
    with pytest.raises(Exception, match="expected"):
        check_setting(declaration.name, object(), "x")


@pytest.mark.parametrize("declaration", AXES, ids=lambda d: d.name)
def test_every_axis_takes_its_own_default(declaration):
    if declaration.name in ("arch", "task", "lr"):
        pytest.skip("checked by building the model or the task (test_config)")
    assert check_axis(declaration.name, list(declaration.default), "x") == declaration.default


def test_the_pytest_plugin_options_are_the_declared_ones():
    declared = {d.name for cls in (MeasureSettings, ProcessSettings)
                for d in declarations(cls) if d.declared.pytest}  # fmt: skip
    assert (
        {d.name for d in plugin.SESSION_SETTINGS}
        == declared
        == {"min_time", "rounds", "processes", "threads"}
    )


def test_the_module_settings_are_the_declared_ones():
    assert set(MODULE_SETTINGS) == {
        d.name for cls in (MeasureSettings, SuiteConfig) for d in declarations(cls)
        if d.declared.module
    }  # fmt: skip
    assert {"min_time", "rounds", "threads", "seed", "cell_timeout"} <= set(MODULE_SETTINGS)


def test_a_new_field_is_a_new_option_with_nothing_else_written():
    """What adding a setting is: one field. Its option, rule and help follow."""

    @dataclasses.dataclass(frozen=True)
    class Extra:
        batches_per_sample: int = setting(4, POSITIVE_INT, "Batches each sample spans")

    (option,) = declared_options(Extra)
    assert option.flag == "--batches-per-sample" and option.type is int
    assert option.help == "Batches each sample spans (default: 4)."
    assert option.kind == SETTING and option.panel == "Timing"
    (axis,) = [o for o in declared_options(Axes, AXIS) if o.name == "bidirectional"]
    assert axis.kind == SWITCH_AXIS


def test_the_process_settings_are_declared_once_for_the_config_and_the_request():
    """The configuration's threads, subnormals and TF32 are the request's declarations."""
    for name in ("threads", "flush_denormal", "tf32"):
        ours = next(d for d in declarations(SuiteConfig) if d.name == name)
        theirs = next(d for d in declarations(ProcessSettings) if d.name == name)
        assert ours == theirs


def test_the_results_root_is_root_on_every_command():
    """One name for the results root: `--root` wherever a command reads or writes runs
    (`--out` stays an older name on the measuring commands, whose readers' --out is a file)."""
    commands = typer.main.get_command(app).commands
    roots = {}
    for name, command in commands.items():
        for parameter in command.params:
            if parameter.name == "root":
                roots[name] = (parameter.opts, parameter.default)
    assert set(roots) >= {"run", "ab", "frontier", "runs", "show", "export", "compare",
                          "plot", "history", "report", "curves"}  # fmt: skip
    assert all("--root" in opts for opts, _ in roots.values())
    assert {str(default) for _, default in roots.values()} == {"results"}
    for measuring in ("run", "ab", "frontier"):
        assert "--out" in roots[measuring][0]
