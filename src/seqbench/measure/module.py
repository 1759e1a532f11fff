"""A user's own `torch.nn.Module`, on the user's inputs, as a workload: the step that the
one timing path (`timed.time_workload`) times, exactly as it times seqbench's own models.

Inputs are what the module is called with: a tensor (one positional argument), a tuple or
list (positional arguments), a dict (keyword arguments), or a function of (batch_size,
seq_len) that returns one of those, so that one module can be swept over lengths and batch
sizes. Fixed inputs give one size, read from their first tensor: (batch_size, seq_len, ...).

A training step is zero-grad, forward, loss, backward, optimiser step, timed as a whole:
the loss is the user's (`loss(output)`, or `loss(output, target)` with a target), or the
mean of every floating-point tensor in the output; the optimiser is the user's factory
(`optimizer(parameters)`), or SGD with learning rate 1e-3. Training changes the module's
weights in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seqbench.core.errors import ConfigError
from seqbench.core.request import CellRequest, ModuleSpec
from seqbench.core.schema import Cell, Measurement
from seqbench.core.timing import Clock, Stopwatch
from seqbench.measure.limits import CellSkipped
from seqbench.measure.timed import time_workload
from seqbench.measure.workload import Workload, autocast, counted_flops
from seqbench.models import count_parameters
from seqbench.models.custom import USER_KERNEL

DEFAULT_LR = 1e-3


@dataclass
class UserModule:
    """A user's module and what to call it with (see the module notes)."""

    model: nn.Module
    inputs: Any
    target: Any = None
    loss: Callable[..., torch.Tensor] | None = None
    optimizer: Callable[[Any], torch.optim.Optimizer] | None = None


def load_name(name: str, what: str) -> Any:
    """The object 'package.module:attribute' names; a ConfigError saying why not."""
    from seqbench.models.custom import import_named

    return import_named(name, what, "attribute")


def ship(user: UserModule, folder: str) -> ModuleSpec | str:
    """The user's live module as a file a fresh worker process can load (a pickle in
    `folder`), or why it cannot be: an object that does not pickle (a lambda, a closure), or
    one defined in the script being run, which the worker cannot import (`__main__`). The
    worker measures a copy: training there leaves the caller's weights as they were."""
    import os
    import pickle
    import tempfile

    objects = (user.model, user.inputs, user.target, user.loss, user.optimizer)
    try:
        data = pickle.dumps(objects)
    except Exception as exc:  # pickle raises many kinds: say the first line of any
        return f"it cannot be pickled ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    if b"__main__" in data:
        return "it is defined in the script being run (__main__), which a worker cannot import"
    fd, path = tempfile.mkstemp(prefix="module-", suffix=".pickle", dir=folder)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return ModuleSpec(model=type(user.model).__qualname__, inputs="(pickled)", pickled=path)


def one_process(label: str, why: str) -> str:
    """What measuring a live module in this process only means, and why it came to that."""
    return (
        f"{label} is measured in this process only, since {why}: its interval describes one "
        "process, and a comparison with it cannot decide (import it from a module, or give "
        "it by its importable name)"
    )


def resolve(spec: ModuleSpec) -> UserModule:
    """Build the user's module and find its inputs, loss and optimiser by their names (or
    load them, pickled, from the file `ship` wrote)."""
    if spec.pickled is not None:
        import pickle

        try:
            with open(spec.pickled, "rb") as file:
                return UserModule(*pickle.load(file))
        except Exception as exc:  # an import the worker cannot do, a file gone
            raise ConfigError(
                f"the module could not be loaded in a worker process ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); measure it with processes=1"
            ) from None
    model = load_name(spec.model, "model")
    if not isinstance(model, nn.Module):
        model = model() if callable(model) else model
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {spec.model!r} gives {type(model).__name__}, not an nn.Module")

    def maybe(name: str | None, what: str) -> Any:
        return None if name is None else load_name(name, what)

    return UserModule(
        model,
        load_name(spec.inputs, "inputs"),
        maybe(spec.target, "target"),
        maybe(spec.loss, "loss"),
        maybe(spec.optimizer, "optimizer"),
    )


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)


def to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def is_generator(inputs: Any) -> bool:
    """Inputs given as a function of (batch_size, seq_len), not as the inputs themselves."""
    return callable(inputs) and not isinstance(inputs, (torch.Tensor, nn.Module))


def fixed_size(inputs: Any) -> tuple[int, int]:
    """(batch_size, seq_len) of fixed inputs: the first two dimensions of their first tensor
    (a 1-D tensor is one sequence)."""
    first = next(tensors(inputs), None)
    if first is None:
        raise ConfigError("inputs: expected a tensor, or a tuple, list or dict holding one")
    if first.dim() == 0:
        return 1, 1
    return (
        (1, int(first.shape[0])) if first.dim() == 1 else (int(first.shape[0]), int(first.shape[1]))
    )


def make(value: Any, cell: Cell) -> Any:
    return value(cell.batch_size, cell.seq_len) if is_generator(value) else value


def call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def default_loss(output: Any) -> torch.Tensor:
    """The mean of every floating-point tensor in the output, summed: a scalar whose
    gradient reaches everything the output depends on."""
    parts = [t.float().mean() for t in tensors(output) if t.is_floating_point()]
    if not parts:
        raise TypeError("the default loss needs a floating-point tensor in the output; pass loss=")
    return torch.stack(parts).sum()


def default_optimizer(parameters: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(parameters, lr=DEFAULT_LR)


def build_user_workload(cell: Cell, user: UserModule, seed: int = 0) -> Workload:
    """The user's module on the cell's device, its inputs made for the cell's size, and the
    step of the cell's mode. Inputs go to the device once, before any timing."""
    if cell.mode == "step":
        raise CellSkipped(
            "no streaming step for a user's module: streaming needs seqbench's core protocol "
            "(init_state, step); measure it with `seqbench run --arch package.module:factory`"
        )
    device = torch.device(cell.device)
    torch.manual_seed(seed)
    model = user.model.to(device)
    inputs = to_device(make(user.inputs, cell), device)
    target = to_device(make(user.target, cell), device)
    params = count_parameters(model)
    held = [*tensors(inputs), *tensors(target)]
    if cell.mode == "infer":
        model.eval()

        def infer() -> object:
            with torch.inference_mode(), autocast(cell):
                return call(model, inputs)

        return Workload(cell, model, infer, None, held, params, params, _no_task)
    model.train()
    optimizer = (user.optimizer or default_optimizer)(model.parameters())
    loss_fn = user.loss or default_loss

    def train() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(cell):
            output = call(model, inputs)
            loss = loss_fn(output) if target is None else loss_fn(output, target)
        loss.backward()
        optimizer.step()
        return loss

    return Workload(cell, model, train, optimizer, held, params, params, _no_task)


def _no_task(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    raise CellSkipped("a user's module is not trained on a seqbench task")


def measure_user(
    request: CellRequest, clock: Clock, watch: Stopwatch, user: UserModule | None = None
) -> Measurement:
    """Time a user's module for one cell: given live, or built from `request.module`."""
    if user is None:
        assert request.module is not None
        user = resolve(request.module)
    training = user.model.training
    try:
        work = build_user_workload(request.cell, user, request.seed)
        flops, uncounted = counted_flops(work)
        return time_workload(
            work, request, clock, watch, flops=flops, kernel=USER_KERNEL, note=uncounted
        )
    finally:
        user.model.train(training)
