"""The rules between settings: what no single value's own rule can see.

Each value is checked against its declaration where it is read (`plan.suites`); these
rules look at a whole configuration, once the suite file and the flags are laid together
(`plan.config.apply_overrides`, the one place every front passes through: the command
line, suite files, `seqbench.run`, `measure_module` and the pytest plugin). The names in
the messages are the settings' own (`max_repeats`, `data`, `target`), as in a suite file;
the flag is the same name with dashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqbench.core.errors import ConfigError
from seqbench.core.schema import metric_range

if TYPE_CHECKING:
    from seqbench.plan.config import SuiteConfig


def check_combination(config: SuiteConfig) -> SuiteConfig:
    """`config` itself, or a ConfigError naming the settings that cannot go together."""
    measure = config.measure
    if measure.max_repeats < measure.min_repeats:
        raise ConfigError(
            f"max_repeats ({measure.max_repeats}) is below min_repeats ({measure.min_repeats})"
        )
    _check_foreign_archs(config)
    train = config.train
    if train.data is None and train.target is None:
        return config
    # Only now the task classes (and torch with them): a run without --data or --target
    # never needs them here.
    from seqbench.tasks import TASKS

    tasks = list(dict.fromkeys(t for m in config.matrices for t in m.task if t))
    classes = {t: TASKS[t.partition("(")[0].strip()] for t in tasks}
    if train.data is not None:
        _check_data(train.data, tasks, classes)
    if train.target is not None:
        for name, task in classes.items():
            low, high = metric_range(task.metric)
            if not low <= train.target <= high:
                raise ConfigError(
                    f"target {train.target:g}: the {name} task's {task.metric} lies in "
                    f"[{low:g}, {high:g}], so it can never reach it"
                )
    return config


def _check_data(data: str, tasks: list[str], classes: dict) -> None:
    """`data` is read by a task that reads a local dataset (`reads_data`), or refused: given
    for tasks that generate theirs, or for a speed-only run, it would be silently ignored."""
    from seqbench.tasks import TASKS

    if any(getattr(task, "reads_data", False) for task in classes.values()):
        return
    readers = [name for name, task in TASKS.items() if getattr(task, "reads_data", False)]
    which = " or ".join(readers)
    raise ConfigError(
        f"data {data!r}: only the {which} task reads a local dataset, and this run has none "
        f"(its tasks: {', '.join(tasks) or 'none'}); leave data out, or add the {which} task"
    )


def _check_foreign_archs(config: SuiteConfig) -> None:
    """Each architecture seqbench has no formula for (a user's 'package.module:factory', an
    installed plugin) is built, and run forward once, at the shape of the first cell the run
    will measure with it: a factory's own rules (RWKV's `layers - 1`) then meet the layers,
    width and input the run asks for, never a made-up shape, and its failure is one line
    naming that shape. A user's factory is tried in a process of its own before its module
    is imported here (models.custom.probe_factory): one that hangs or crashes costs a line."""
    from seqbench.models.options import BUILTIN_OPTIONS, is_variant

    ours = lambda n: n in BUILTIN_OPTIONS or (is_variant(n) and not n.startswith("hf:"))  # noqa: E731
    if all(ours(n) for m in config.matrices for n in m.arch):
        return  # seqbench's own (and torch not needed to say so)
    from seqbench.models import core_shape, get_arch
    from seqbench.models.custom import plugin_names, probe_factory
    from seqbench.plan.cells import first_cell

    plugins = set(plugin_names())
    for axes in config.matrices:
        for name in axes.arch:
            if name.startswith("hf:") or name in plugins:  # built here, at the first shape
                get_arch(name).build(core_shape(first_cell(axes, name)))
            elif ":" in name:
                probe_factory(name, core_shape(first_cell(axes, name)))
