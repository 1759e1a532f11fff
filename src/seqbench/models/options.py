"""The options a sequence core may take beyond its width, and which architecture takes which.

Plain data, importing nothing heavy: the readers of saved runs (tables, plots, scaling) need to
know which options a row's architecture takes without building it (and importing torch).
"""

from __future__ import annotations

import re

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
    return BUILTIN_OPTIONS.get(split_variant(name)[0], _ALL)


# A variant of a built-in architecture names the settings it changes in parentheses after
# the name, `mamba(d_state=32,expand=1)`, as a constructor call would: one string, so that
# everything keyed on `arch` (the results, compare, tables, plots) tells the variant from
# the default. (Not brackets: the terminal tables would read them as Rich markup.)
_VARIANT = re.compile(r"(?P<base>[^()]+)\((?P<body>[^()]*)\)")


def split_variant(name: str) -> tuple[str, dict[str, str]]:
    """'mamba(d_state=32, expand=1)' -> ('mamba', {'d_state': '32', 'expand': '1'}); a name
    without parentheses has no settings. Values stay text: the architecture checks them."""
    if not is_variant(name):
        return name, {}
    match = _VARIANT.fullmatch(name.strip())
    if match is None:
        raise ValueError(f"{name!r}: write a variant as name(setting=value,...)")
    settings: dict[str, str] = {}
    for item in match["body"].split(","):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not key or not equals or not value:
            raise ValueError(f"{name!r}: expected setting=value in the parentheses, got {item!r}")
        if key in settings:
            raise ValueError(f"{name!r}: {key} is set twice")
        settings[key] = value
    return match["base"].strip(), settings


def variant_settings(
    name: str, owner: str, defaults: dict[str, int], describe=str
) -> tuple[str, dict[str, int]]:
    """The base name of a variant and the settings it changes from `defaults`, each checked:
    a name `owner` declares, a whole number above 0. Raises ValueError with one line that
    names the variant; `describe` shows a default in it."""
    base, given = split_variant(name)
    values: dict[str, int] = {}
    for key, text in given.items():
        if key not in defaults:
            takes = ", ".join(f"{k} (default {describe(v)})" for k, v in defaults.items())
            raise ValueError(
                f"{name!r}: {owner} has no setting {key!r}; "
                f"{did_you_mean(key, list(defaults))}it takes {takes}"
            )
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{name!r}: {key} must be a whole number above 0, got {text!r}")
        values[key] = int(text)
    return base, values


def canonical_name(base: str, defaults: dict[str, int], values: dict[str, int]) -> str:
    """The settings that differ from the defaults, in the defaults' order: equal models get
    equal names ('mamba(expand=2)' is 'mamba')."""
    changed = [f"{k}={values[k]}" for k in defaults if k in values and values[k] != defaults[k]]
    return f"{base}({','.join(changed)})" if changed else base


def is_variant(name: str) -> bool:
    return "(" in name or ")" in name


def split_list(text: str) -> list[str]:
    """A comma list whose items may be variants: commas inside parentheses do not split."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return items


def did_you_mean(name: str, known: list[str]) -> str:
    """'did you mean 'lstm'? ' for a near miss (any case), else ''."""
    import difflib

    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean {lowered[close[0]]!r}? " if close else ""
