"""The options a sequence core may take beyond its width, and which architecture takes which.

Plain data, importing nothing: the readers of saved runs (tables, plots, scaling) need to
know which options a row's architecture takes without building it (and importing torch).
"""

from __future__ import annotations

# An architecture lists the options it understands; the others are pinned to the values in
# its `fixed` map, so that a matrix over `bidirectional` does not measure the same
# convolution twice.
CORE_OPTIONS = ("layers", "bidirectional", "dropout", "recurrent_dropout")
# A plain model: one layer, one direction, no dropout.
CORE_OPTIONS_DEFAULTS: dict[str, object] = {
    "layers": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
}

# What `fixed` says for a core that reads one way and has no recurrent state to drop: a
# matrix over those options then measures it once.
ONE_WAY_NO_RECURRENT_DROPOUT: dict[str, object] = {
    "bidirectional": False,
    "recurrent_dropout": 0.0,
}

_ALL = frozenset(CORE_OPTIONS)
_DEPTH_AND_DROPOUT = frozenset({"layers", "dropout"})

# The options of every built-in architecture; their registry entries take them from here.
BUILTIN_OPTIONS: dict[str, frozenset[str]] = {
    "rnn": _ALL,
    "lstm": _ALL,
    "gru": _ALL,
    "lstm-weightdrop": _ALL,
    "conv1d": frozenset(),
    "transformer": _DEPTH_AND_DROPOUT,
    "transformer-causal": _DEPTH_AND_DROPOUT,
    "tcn": _DEPTH_AND_DROPOUT,
    "mingru": _DEPTH_AND_DROPOUT,
    "minlstm": _DEPTH_AND_DROPOUT,
    # The linear-recurrent and state-space cores (models/mixers.py and its families).
    "mamba": _DEPTH_AND_DROPOUT,
    "mamba2": _DEPTH_AND_DROPOUT,
    "hawk": _DEPTH_AND_DROPOUT,
    "retnet": _DEPTH_AND_DROPOUT,
    "gla": _DEPTH_AND_DROPOUT,
    "s4d": _DEPTH_AND_DROPOUT,
    "lru": _DEPTH_AND_DROPOUT,
    "deltanet": _DEPTH_AND_DROPOUT,
    "gated-deltanet": _DEPTH_AND_DROPOUT,
    "mlstm": _DEPTH_AND_DROPOUT,
    "slstm": _DEPTH_AND_DROPOUT,
    "rwkv7": _DEPTH_AND_DROPOUT,
    # Presets that fix their depth (see models/tcn.py and models/minrnn.py).
    "tcn-paper": frozenset({"dropout"}),
    "mingru-paper": frozenset({"dropout"}),
    "minlstm-paper": frozenset({"dropout"}),
}


def arch_options(name: str) -> frozenset[str]:
    """The options an architecture takes, known without building it: a built-in's from the
    table; a user's factory or a plugin is taken to take them all."""
    return BUILTIN_OPTIONS.get(name, _ALL)
