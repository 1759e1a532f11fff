"""Hugging Face architectures by name: `--arch hf:<model_type>` (`hf:mamba`, `hf:llama`, ...).

The model is built from `transformers`' own configuration class with random weights (nothing
is downloaded), as `AutoModel.from_config` builds it: the base model, without a language-model
head. seqbench's axes set the configuration's fields:

    hidden -> hidden_size           layers -> num_hidden_layers
    heads  -> num_attention_heads = num_key_value_heads = max(1, H // 64) (a divisor of H),
              head_dim = H / heads, where the configuration has them
    MLP    -> intermediate_size = 4·H where the configuration sets it on its own (Llama,
              RecurrentGemma); Mamba's and RWKV's follow their own rules from H
    Mamba-2 -> head_dim 64 (or 2·H, if smaller), num_heads = 2·H / head_dim, n_groups 1

and any other field is passed through as a variant: `hf:llama(intermediate_size=172)`.

A cell feeds it as it feeds every core: token ids through seqbench's embedding (the model's
own input embedding is removed, so it is neither run nor counted: the embedding is counted
once), a projection to H when `--embed` differs, then `inputs_embeds`; the readout is the
model's `last_hidden_state`, through seqbench's head and the task's loss. The `kernel` column
says `hf`, or `hf-reference` where transformers said it fell back to its reference PyTorch
path (Mamba without `mamba_ssm` on a CPU: "correct but much slower"), with what it said in
`kernel_note`, so that a reference path's cost is not mistaken for the architecture's.

Under the `lm` task (next-token prediction), a type transformers builds as a causal language
model is built that way instead (`language_model`): its own head, tied to seqbench's
embedding where its configuration ties them, and its own loss.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import sys
from typing import Any

import torch
from torch import nn

from seqbench.core.errors import ConfigError, MissingDependency
from seqbench.models.base import ArchSpec, CoreShape, SequenceCore
from seqbench.models.transformer import HEAD_WIDTH, attention_heads

PREFIX = "hf:"
INSTALL = "pip install 'seqbench[hf]'"


def is_hf(name: str) -> bool:
    return name.startswith(PREFIX)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependency(
            f"hf: architectures need transformers, which is not installed: {INSTALL}"
        ) from None
    return transformers


def _own_types() -> list[str]:
    """The model types transformers itself ships. Its CONFIG_MAPPING also holds the types
    other packages register at import, and one may take over a built-in name: importing
    flash-linear-attention makes 'mamba' its own Triton Mamba, which then fails on a CPU
    with '0 active drivers' (and would be measured as transformers' where it runs)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return sorted(CONFIG_MAPPING_NAMES)


def _own_config_class(model_type: str) -> Any:
    """transformers' own configuration class of a model type, whatever was registered."""
    from transformers.models.auto.configuration_auto import (
        CONFIG_MAPPING_NAMES,
        model_type_to_module_name,
    )

    module = importlib.import_module(
        f".{model_type_to_module_name(model_type)}", "transformers.models"
    )
    return getattr(module, CONFIG_MAPPING_NAMES[model_type])


def _parse(name: str) -> tuple[str, dict[str, Any]]:
    """'hf:llama(intermediate_size=172,rope_theta=1e4)' -> ('llama', {...})."""
    body = name[len(PREFIX) :]
    model_type, _, rest = body.partition("(")
    fields: dict[str, Any] = {}
    if rest:
        if not rest.endswith(")"):
            raise ConfigError(f"{name!r}: write settings as hf:type(field=value,...)")
        for item in filter(None, (p.strip() for p in rest[:-1].split(","))):
            key, eq, text = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"{name!r}: {item!r} is not field=value")
            fields[key.strip()] = _value(text.strip())
    return model_type.strip(), fields


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def config_fields(model_type: str, defaults: Any, shape: CoreShape) -> dict[str, Any]:
    """The configuration fields seqbench's axes set for `model_type` (module docstring)."""
    h = shape.hidden
    fields: dict[str, Any] = {"hidden_size": h, "num_hidden_layers": shape.layers}
    if model_type == "mamba2":
        head_dim = min(HEAD_WIDTH, 2 * h)
        return {**fields, "head_dim": head_dim, "num_heads": 2 * h // head_dim, "n_groups": 1}
    if model_type == "xlstm":
        return {**fields, "num_heads": attention_heads(h)}
    if getattr(defaults, "num_attention_heads", None) is not None:
        heads = attention_heads(h)
        fields["num_attention_heads"] = heads
        if getattr(defaults, "num_key_value_heads", None) is not None:
            fields["num_key_value_heads"] = heads
        if getattr(defaults, "head_dim", None) is not None:
            fields["head_dim"] = h // heads
        if getattr(defaults, "intermediate_size", None) is not None:
            fields["intermediate_size"] = 4 * h
        if getattr(defaults, "lru_width", None) is not None:  # RecurrentGemma
            fields["lru_width"] = h
    return fields


class _Said(logging.Handler):
    """What transformers logs while a model is built and first run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class HFCore(SequenceCore):
    """A transformers base model fed seqbench's embedding through `inputs_embeds`."""

    def __init__(self, model: nn.Module, shape: CoreShape, kernel: tuple[str, str]) -> None:
        super().__init__()
        hidden = shape.hidden
        self.project = (
            nn.Linear(shape.input_size, hidden) if shape.input_size != hidden else nn.Identity()
        )
        self.model = model
        self.out_features = hidden
        self._kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(inputs_embeds=self.project(x), use_cache=False)
        return out.last_hidden_state

    def summary(self, y: torch.Tensor) -> torch.Tensor:  # causal models: the last step
        return y[:, -1]

    def implementation(self, training: bool, device: str, dtype: str) -> tuple[str, str]:
        return self._kernel

    def step_implementation(self, device: str, dtype: str) -> tuple[str, str]:
        return self._kernel

    def step_unsupported(self) -> str | None:
        model_type = self.model.config.model_type
        if model_type in STEPPING:
            return None
        return (
            f"transformers' {model_type} is not stepped through its cache here (tested: "
            f"{', '.join(sorted(STEPPING))})"
        )

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Any:
        return _HFState(None, 0)

    def step(self, x_t: torch.Tensor, state: _HFState) -> tuple[torch.Tensor, _HFState]:
        """One token through the model's own cache. transformers grows the cache in place:
        an attention cache is first cut back to the tokens `state` stands for, so that a
        step repeated from one state (as the timed step is) attends over the same T - 1
        tokens each time; a recurrent cache (Mamba's) is a fixed size, updated in place."""
        cache = state.cache
        if cache is not None and state.attention:
            extra = int(cache.get_seq_length()) - state.length
            if extra > 0:
                cache.crop(-extra)
        out = self.model(inputs_embeds=self.project(x_t)[:, None], cache=cache, use_cache=True)
        return out.last_hidden_state[:, -1], _HFState(out.cache, state.length + 1)


class HFLanguageModel(HFCore):
    """A transformers causal language model, as the `lm` task trains it: its own final norm,
    language-model head (tied to seqbench's embedding where its configuration ties them and
    the widths allow) and logit soft-capping, and its own loss. Returns logits (B, T, V)."""

    def __init__(self, causal: nn.Module, shape: CoreShape, kernel: tuple[str, str]) -> None:
        super().__init__(causal, shape, kernel)
        self.out_features = causal.config.vocab_size
        ties = getattr(causal.config, "tie_word_embeddings", False)
        head = causal.get_output_embeddings()  # lm_head, or RWKV's head
        self.tied = head.weight if ties and shape.input_size == shape.hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=self.project(x), use_cache=False).logits

    def own_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """transformers' own loss for the model (ForCausalLMLoss: float32, mean over tokens),
        given the targets already shifted (y[t] is the token after x[t])."""
        return self.model.loss_function(
            logits, None, vocab_size=self.out_features, shift_labels=y.contiguous()
        )

    def step_unsupported(self) -> str | None:
        return (
            "its causal language model (the lm task's form) is not stepped here; without a "
            "task, step mode steps its base model"
        )


def language_model(core: SequenceCore, vocab: int, shape: CoreShape) -> HFLanguageModel | None:
    """The causal-language-model form of an hf: core, for the `lm` task: None where the core
    is not an hf: model or transformers has no causal language model of its type."""
    if not isinstance(core, HFCore):
        return None
    transformers = _transformers()
    config = core.model.config
    if type(config) not in transformers.AutoModelForCausalLM._model_mapping:
        return None
    fields = {"vocab_size": vocab, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
    lm_config = type(config)(**{**config.to_dict(), **fields})
    causal = transformers.AutoModelForCausalLM.from_config(lm_config)
    causal.set_input_embeddings(nn.Identity())  # seqbench's embedding feeds it (or is tied)
    return HFLanguageModel(causal, shape, core._kernel)


def whole_model(module: object, shape: CoreShape, kernel: tuple[str, str]) -> HFCore | None:
    """A transformers model a user's factory returned (`LlamaForCausalLM(config)`), fed as
    an `hf:` model is: its body only (a language-model head it carries would be counted and
    never run; the readout is `last_hidden_state`), its own input embedding removed so that
    seqbench's is the one run and counted, a projection from the input width to its
    `hidden_size` where they differ. None for anything else (a core in seqbench's contract)."""
    transformers = sys.modules.get("transformers")  # a model of it means it is imported
    if transformers is None or not isinstance(module, transformers.PreTrainedModel):
        return None
    body = module.base_model
    body.set_input_embeddings(nn.Identity())
    return HFCore(body, dataclasses.replace(shape, hidden=body.config.hidden_size), kernel)


# The model types whose stepping through transformers' cache tests hold equal to their
# forward (tests/test_hf.py). Not the others, at transformers 5.25: RWKV stepped through its
# `state` disagrees with its own forward on token ids from the first token, xLSTM's step
# kernel rejects its own cache, RecurrentGemma keeps its state in its modules.
STEPPING = frozenset({"mamba", "mamba2", "llama", "gpt2"})


@dataclasses.dataclass
class _HFState:
    """A transformers cache and how many tokens it stands for."""

    cache: Any
    length: int

    @property
    def attention(self) -> bool:  # key/value layers grow with the tokens; recurrent ones do not
        return all(hasattr(layer, "keys") for layer in getattr(self.cache, "layers", ()))

    def tensors(self) -> list[torch.Tensor]:
        """The cache's tensors, for the memory a step holds (`state_bytes`)."""
        found: list[torch.Tensor] = []
        for layer in getattr(self.cache, "layers", ()):
            for value in vars(layer).values():
                items = value.values() if isinstance(value, dict) else [value]
                found += [t for t in items if isinstance(t, torch.Tensor) and t.dim() > 0]
        return found


def build_hf(name: str, shape: CoreShape) -> HFCore:
    """The model `name` names, at `shape`, with random weights; one line for what fails."""
    transformers = _transformers()
    model_type, passed = _parse(name)
    config_class = _own_config_class(model_type)
    said = _Said()
    logger = logging.getLogger("transformers")
    # What it says goes into the row (kernel_note), not on the user's terminal.
    handlers, level, logger.handlers = logger.handlers, logger.level, [said]
    logger.setLevel(logging.WARNING)
    try:
        defaults = config_class()
        # A configuration takes any keyword as an attribute: a field is one its defaults have.
        unknown = [k for k in passed if not hasattr(defaults, k)]
        if unknown:
            raise ConfigError(f"{name}: {config_class.__name__} has no field {unknown[0]!r}")
        config = config_class(**{**config_fields(model_type, defaults, shape), **passed})
        model = transformers.AutoModel.from_config(config)
        model.set_input_embeddings(nn.Identity())  # seqbench's embedding feeds it
        with torch.no_grad():
            model(inputs_embeds=torch.zeros(1, 4, shape.hidden), use_cache=False)
    except ConfigError:
        raise
    except Exception as exc:  # a configuration transformers refuses, at these sizes
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = (lines[-1] if lines else "")[:300]  # a validator's reason comes last
        raise ConfigError(
            f"{name}: transformers cannot build it at hidden {shape.hidden}, layers "
            f"{shape.layers}: {type(exc).__name__}: {first}"
        ) from None
    finally:
        logger.handlers = handlers
        logger.setLevel(level)
    slow = [m for m in said.messages if "falling back" in m.lower() or "slower" in m.lower()]
    if slow:  # said once per process (transformers' warning_once): remembered per type
        _REFERENCE[model_type] = slow[0].split(". ")[0]
    note = _REFERENCE.get(model_type)
    return HFCore(model, shape, ("hf-reference", note) if note else ("hf", ""))


# Model types whose build or first run said they fell back to a reference path, and what.
_REFERENCE: dict[str, str] = {}


@functools.cache
def hf_spec(name: str) -> ArchSpec:
    """The ArchSpec of 'hf:<model_type>(field=value,...)': checked here (transformers
    installed, a model type it knows), built per cell."""
    _transformers()  # one line when it is not installed
    model_type, _ = _parse(name)
    known = _own_types()
    if model_type not in known:
        near = [k for k in known if model_type and (model_type in k or k in model_type)][:5]
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise ConfigError(f"{name}: transformers has no model type {model_type!r}{hint}")
    return ArchSpec(
        name=name,
        summary=f"transformers' {model_type} base model, random weights",
        param_formula="counted on the built module",
        build=functools.partial(build_hf, name),
        count_params=None,
        forward_flops=None,
        options=frozenset({"layers"}),
        fixed={"bidirectional": False, "dropout": 0.0, "recurrent_dropout": 0.0},
    )
