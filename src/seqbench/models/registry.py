"""The architecture registry and the model every cell measures.

A model is the seed's IMDB classifier in general form: token ids -> Embedding(vocab, embed)
-> sequence core -> Dense(1). Only the core changes from one architecture to the next.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from seqbench.core.errors import ConfigError
from seqbench.core.schema import Cell
from seqbench.models.base import (
    CORE_OPTIONS,
    CORE_OPTIONS_DEFAULTS,
    ArchSpec,
    CoreShape,
    SequenceCore,
    SequenceModel,
    count_parameters,
)
from seqbench.models.conv import CONV1D
from seqbench.models.custom import load_factory, load_plugin, plugin_names
from seqbench.models.deltanet import DELTANET_SPEC, GATED_DELTANET_SPEC
from seqbench.models.gla import GLA_SPEC, RETNET_SPEC
from seqbench.models.griffin import HAWK_SPEC
from seqbench.models.hf import hf_spec, is_hf, language_model
from seqbench.models.mamba import MAMBA2_SPEC, MAMBA_SPEC
from seqbench.models.minrnn import minrnn_spec
from seqbench.models.options import canonical_name, did_you_mean, is_variant, variant_settings
from seqbench.models.recurrent import recurrent_spec
from seqbench.models.rwkv import RWKV7_SPEC
from seqbench.models.ssm import LRU_SPEC, S4D_SPEC
from seqbench.models.tcn import TCN, TCN_PAPER
from seqbench.models.transformer import TRANSFORMER, TRANSFORMER_CAUSAL
from seqbench.models.weightdrop import LSTM_WEIGHTDROP
from seqbench.models.xlstm import MLSTM_SPEC, SLSTM_SPEC
from seqbench.tasks import new_task, task_name

__all__ = [
    "CORE_OPTIONS_DEFAULTS",
    "ArchSpec",
    "CoreShape",
    "SequenceCore",
    "SequenceModel",
    "REGISTRY",
    "get_arch",
    "matched",
    "normalize_cell",
    "pins",
    "short_sight",
    "core_shape",
    "build_model",
    "count_parameters",
    "expected_params",
    "forward_flops",
    "step_flops",
]

REGISTRY: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        recurrent_spec("rnn"),
        recurrent_spec("lstm"),
        recurrent_spec("gru"),
        CONV1D,
        TRANSFORMER,
        TRANSFORMER_CAUSAL,
        TCN,
        minrnn_spec("mingru"),
        minrnn_spec("minlstm"),
        LSTM_WEIGHTDROP,
        TCN_PAPER,
        minrnn_spec("mingru", paper=True),
        minrnn_spec("minlstm", paper=True),
        MAMBA_SPEC,
        MAMBA2_SPEC,
        HAWK_SPEC,
        RETNET_SPEC,
        GLA_SPEC,
        S4D_SPEC,
        LRU_SPEC,
        DELTANET_SPEC,
        GATED_DELTANET_SPEC,
        MLSTM_SPEC,
        SLSTM_SPEC,
        RWKV7_SPEC,
    )
}

# A training step's FLOPs: the backward pass costs about twice the forward pass (a gradient
# for the inputs and one for the weights of every matmul), the usual convention.
TRAIN_FLOPS_FACTOR = 3


def get_arch(name: str) -> ArchSpec:
    """A registered architecture, a variant of one ('mamba(d_state=32)'), or a user's
    'package.module:factory' (see models/custom.py)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if is_hf(name):  # before variants: 'hf:llama(intermediate_size=172)' passes fields
        return hf_spec(name)
    if is_variant(name):
        return _variant(name)
    if ":" in name:
        return load_factory(name)
    plugin = load_plugin(name)
    if plugin is not None:
        return plugin
    known = [*REGISTRY, *plugin_names()]
    raise ConfigError(
        f"unknown architecture {name!r}; {did_you_mean(name, known)}choose from: "
        f"{', '.join(known)}, hf:<model_type> (transformers), or package.module:factory"
    )


_VARIANTS: dict[str, ArchSpec] = {}


def _variant(name: str) -> ArchSpec:
    """A built-in architecture with some of its settings changed, named canonically: the
    settings in the architecture's order, those at their default left out (so
    'mamba(expand=2)' is 'mamba', and 'mamba(d_conv=2, expand=1)' is
    'mamba(expand=1,d_conv=2)')."""
    if name in _VARIANTS:
        return _VARIANTS[name]
    base_name = name.partition("(")[0].strip()
    base = REGISTRY.get(base_name)
    if base is None or base.variant is None:
        with_knobs = [n for n, s in REGISTRY.items() if s.knobs]
        what = "is not a built-in architecture" if base is None else "has no settings to change"
        raise ConfigError(
            f"{name!r}: {base_name} {what}; these take (setting=value): "
            f"{', '.join(with_knobs)} (seqbench archs lists their settings)"
        )
    try:
        _, values = variant_settings(name, base_name, base.knobs, describe_knob)
        spec = base.variant(**{**base.knobs, **values})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        raise ConfigError(f"{name!r}: {exc}") from None
    spec = dataclasses.replace(spec, name=canonical_name(base_name, base.knobs, values))
    _VARIANTS[name] = spec
    return spec


def describe_knob(default: int) -> str:
    """A setting's default as `seqbench archs` and the errors show it (0: follows the width)."""
    return str(default) if default else "H"


def normalize_cell(cell: Cell) -> Cell:
    """Pin what an architecture or a task decides, so equal models get equal keys.

    Options the architecture does not take keep its fixed values. A task with dense inputs
    has no vocabulary (0) and its own input width (`embed`); a task whose data has one
    length (64 pixels of a digit) pins `seq_len`.
    """
    pinned = pins(cell.arch, cell.task, cell.seq_len)
    if any(getattr(cell, name) != value for name, value in pinned.items()):
        cell = dataclasses.replace(cell, **pinned)
    return matched(cell)


def pins(arch: str, task: str, seq_len: int) -> dict[str, object]:
    """The fields normalize_cell sets on a cell of `arch` and `task` at `seq_len`: the
    architecture's fixed values for options it does not take, then the task's pins, then
    what the architecture sizes from the length, then its canonical name. They depend on
    these three alone, so a plan of a million cells works them out once per combination
    (plan.cells)."""
    spec = get_arch(arch)
    pinned: dict[str, object] = {
        name: spec.fixed[name]
        for name in CORE_OPTIONS
        if name not in spec.options and name in spec.fixed
    }
    pinned.update(_task_pins(task))
    if spec.sized is not None:
        pinned.update(spec.sized(int(pinned.get("seq_len", seq_len))))
    if is_variant(arch):  # a variant, named canonically
        pinned["arch"] = spec.name
    return pinned


def matched(cell: Cell) -> Cell:
    """A cell with `match_params` at the width that brings its core's parameters nearest."""
    if cell.match_params:
        cell = dataclasses.replace(cell, hidden=matched_width(cell, cell.match_params))
    return cell


def task_pins(cell: Cell) -> dict[str, object]:
    """What the cell's task decides (see normalize_cell), whatever the architecture."""
    return _task_pins(cell.task)


def _task_pins(name: str) -> dict[str, object]:
    pinned: dict[str, object] = {}
    if name:
        task = new_task(name)
        if task.inputs == "dense":
            pinned.update(vocab=0, embed=task.channels)
        elif getattr(task, "vocab_size", None):  # a task with a vocabulary of its own
            pinned["vocab"] = task.vocab_size
        canonical = task_name(name)
        if canonical != name:
            pinned["task"] = canonical
        if task.fixed_seq_len is not None:
            pinned["seq_len"] = task.fixed_seq_len
    return pinned


def short_sight(cell: Cell) -> str | None:
    """One line when the cell's core cannot see its whole sequence (a TCN whose receptive
    field is shorter than seq_len), else None. Called on normalised cells."""
    spec = get_arch(cell.arch)
    if spec.receptive_field is None:
        return None
    reach = spec.receptive_field(core_shape(cell))
    if reach >= cell.seq_len:
        return None
    return (
        f"{cell.arch} with {cell.layers} block(s) sees only the last {reach} of {cell.seq_len} "
        "steps (its receptive field): more --layers, or --arch tcn-paper, covers the sequence"
    )


MAX_WIDTH = 1 << 16


def keras_param_count(cell: Cell, params: int, core_params: int) -> int | None:
    """A built model's parameters as Keras counts them (the seed's convention): its core's
    Keras count in place of the core's; None where Keras has no such layer."""
    spec = get_arch(cell.arch)
    if spec.keras_params is None:
        return None
    return params - core_params + spec.keras_params(core_shape(cell))


def core_param_count(cell: Cell) -> int:
    """The core's parameters: from the formula, or counted on a built core without one."""
    spec = get_arch(cell.arch)
    if spec.count_params is not None:
        return spec.count_params(core_shape(cell))
    return count_parameters(spec.build(core_shape(cell)))


def matched_width(cell: Cell, target: int) -> int:
    """The hidden width whose core parameter count is nearest `target` (the smaller width on
    a tie). Counts grow with the width, so a bisection finds it."""

    def count(width: int) -> int:
        return core_param_count(dataclasses.replace(cell, hidden=width))

    lo, hi = 1, MAX_WIDTH
    if count(hi) < target:
        raise ConfigError(
            f"--match-params {target}: {cell.arch} stays below it even at width {MAX_WIDTH}"
        )
    while lo < hi:  # the narrowest width reaching the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    if lo > 1 and target - count(lo - 1) <= count(lo) - target:
        return lo - 1
    return lo


@dataclasses.dataclass(frozen=True)
class Ends:
    """What a model reads and writes: token ids or dense features in; one output per
    sequence ('summary') or per step ('sequence'), `outputs` wide."""

    inputs: str = "tokens"
    outputs: int = 1
    readout: str = "summary"
    # Next-token prediction over the vocabulary: a model with a head of its own uses it.
    language_model: bool = False


def model_ends(cell: Cell) -> Ends:
    """The seed's classifier (tokens in, one logit out) unless the cell's task says otherwise."""
    if not cell.task:
        return Ends()
    task = new_task(cell.task)
    return Ends(task.inputs, task.outputs, task.readout, getattr(task, "language_model", False))


def core_shape(cell: Cell) -> CoreShape:
    return CoreShape(
        input_size=cell.embed,
        hidden=cell.hidden,
        layers=cell.layers,
        bidirectional=cell.bidirectional,
        dropout=cell.dropout,
        recurrent_dropout=cell.recurrent_dropout,
        seq_len=cell.seq_len,
    )


def build_model(cell: Cell) -> SequenceModel:
    """The full model for one cell, on the CPU in float32 (the caller moves it)."""
    spec = get_arch(cell.arch)
    ends = model_ends(cell)
    core = spec.build(core_shape(cell))
    adapter = nn.Embedding(cell.vocab, cell.embed) if ends.inputs == "tokens" else nn.Identity()
    if ends.language_model and is_hf(cell.arch):
        own = language_model(core, cell.vocab, core_shape(cell))
        if own is not None:  # its own head and loss; its embedding is seqbench's, or tied
            if own.tied is not None:
                adapter.weight = own.tied
            return SequenceModel(adapter, own, nn.Identity(), ends.readout)
    return SequenceModel(adapter, core, nn.Linear(core.out_features, ends.outputs), ends.readout)


def _head_inputs(cell: Cell) -> int:
    spec = get_arch(cell.arch)
    if "bidirectional" in spec.options and cell.bidirectional:
        return 2 * cell.hidden
    return cell.hidden


def expected_params(cell: Cell) -> int:
    """The whole model's parameter count from formulas: V·E + core + (F·K + K) for a head
    of K outputs (the embedding only with token inputs)."""
    spec = get_arch(cell.arch)
    ends = model_ends(cell)
    embedding = cell.vocab * cell.embed if ends.inputs == "tokens" else 0
    head = (_head_inputs(cell) + 1) * ends.outputs
    return embedding + spec.count_params(core_shape(cell)) + head


def forward_flops(cell: Cell) -> int | None:
    """Matmul and convolution FLOPs of one forward pass over one sequence (2 per multiply-add).

    The embedding is a lookup (0 FLOPs); elementwise gate arithmetic is not counted, as in
    `torch.utils.flop_counter` and the usual MFU convention. None without a formula.
    """
    spec = get_arch(cell.arch)
    if spec.forward_flops is None:
        return None
    ends = model_ends(cell)
    positions = cell.seq_len if ends.readout == "sequence" else 1
    head = 2 * _head_inputs(cell) * ends.outputs * positions
    return spec.forward_flops(core_shape(cell), cell.seq_len) + head


def step_flops(cell: Cell) -> int | None:
    """FLOPs per sequence of what one timed step does: forward only, or forward and backward.

    None in streaming (`step`) mode: one token's cost depends on the state carried (a KV
    cache grows with the position), which the whole-sequence formulas do not describe.
    """
    flops = forward_flops(cell)
    if flops is None or cell.mode == "step":
        return None
    return flops * TRAIN_FLOPS_FACTOR if cell.mode == "train" else flops
