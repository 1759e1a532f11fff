"""What measuring a user's own module asks for (`seqbench.measure_module`, the pytest
plugin): its configuration and its cells, every value checked as a suite file's would be."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from seqbench.core import devices
from seqbench.core.errors import ConfigError
from seqbench.core.request import ModuleSpec
from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings, declarations
from seqbench.plan.config import Axes, SuiteConfig, apply_overrides
from seqbench.plan.suites import check_axis, check_setting

# Settings a user's module is measured with (how it is timed, and the process around it):
# those declared for it.
MODULE_SETTINGS = tuple(
    d.name for cls in (MeasureSettings, SuiteConfig) for d in declarations(cls) if d.declared.module
)
# Key columns a user's rows may carry so that they line up with a `seqbench run` matrix.
KEY_FIELDS = ("hidden", "layers", "bidirectional", "dropout", "recurrent_dropout", "vocab", "embed")
_LABEL = re.compile(r"[\w.:\[\]/=+-]{1,128}")


def module_plan(
    label: str,
    inputs: Any,
    *,
    mode: Any = "infer",
    seq_len: Any = None,
    batch_size: Any = None,
    device: Any = "cpu",
    dtype: Any = "float32",
    key: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> tuple[SuiteConfig, list[Cell]]:
    """The configuration and the cells of a user's module, every value checked as a suite
    file's would be (for `measure_module` and the pytest plugin)."""
    from seqbench.measure.module import fixed_size, is_generator

    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ConfigError(f"label: expected 1-128 letters, digits or ._-:[]/=+, got {label!r}")
    unknown = [k for k in settings or {} if k not in (*MODULE_SETTINGS, "isolate")]
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r}; expected one of: {', '.join(MODULE_SETTINGS)}"
        )
    checked = {k: check_setting(k, v, k) for k, v in (settings or {}).items()}
    values = {k: check_axis(k, v, k) for k, v in (key or {}).items() if k in KEY_FIELDS}
    if set(key or {}) - set(KEY_FIELDS):
        wrong = sorted(set(key or {}) - set(KEY_FIELDS))[0]
        raise ConfigError(
            f"key: unknown column {wrong!r}; expected one of: {', '.join(KEY_FIELDS)}"
        )
    if not is_generator(inputs):
        batch, length = fixed_size(inputs)
        for name, given, size in (("seq_len", seq_len, length), ("batch_size", batch_size, batch)):
            if given is not None and check_axis(name, given, name) != (size,):
                raise ConfigError(
                    f"{name}: fixed inputs have {name} {size}; to sweep it, give inputs as a "
                    "function of (batch_size, seq_len)"
                )
        seq_len, batch_size = length, batch
    modes = check_axis("mode", mode, "mode")
    axes = Axes(
        arch=(label,),
        seq_len=tuple(sorted(check_axis("seq_len", 64 if seq_len is None else seq_len, "seq_len"))),
        batch_size=tuple(
            sorted(check_axis("batch_size", 32 if batch_size is None else batch_size, "batch_size"))
        ),
        device=check_axis("device", device, "device"),
        dtype=check_axis("dtype", dtype, "dtype"),
        mode=modes,
        **{k: v[:1] for k, v in values.items()},
        **{k: (0,) for k in ("hidden", "layers", "vocab", "embed") if k not in values},
    )
    config = apply_overrides(
        SuiteConfig(label=re.sub(r"[^\w.-]", "_", label)[:64], matrices=(axes,),
                    description=f"the module {label}",
                    source="seqbench.measure_module"),
        settings=checked,
    )  # fmt: skip
    cells = [
        Cell(
            arch=label,
            seq_len=t,
            batch_size=b,
            hidden=axes.hidden[0],
            layers=axes.layers[0],
            bidirectional=axes.bidirectional[0],
            dropout=axes.dropout[0],
            recurrent_dropout=axes.recurrent_dropout[0],
            vocab=axes.vocab[0],
            embed=axes.embed[0],
            device=devices.resolve(d),
            dtype=dt,
            mode=m,
        )  # fmt: skip
        for d in axes.device
        for dt in axes.dtype
        for b in axes.batch_size
        for t in axes.seq_len
        for m in modes
    ]
    return config, cells


def describe_module(label: str, model: Any, inputs: Any, spec: ModuleSpec | None) -> dict:
    """What the run's metadata says about the module measured."""
    if spec is not None:
        return {"label": label, **dataclasses.asdict(spec)}
    kind = type(inputs).__name__ if not callable(inputs) else "function of (batch_size, seq_len)"
    return {"label": label, "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "inputs": kind}  # fmt: skip
