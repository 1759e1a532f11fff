"""A cell's model and inputs, built on its device, and the step the clock times."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from seqbench.core.schema import Cell
from seqbench.core.settings import TrainSettings
from seqbench.measure.limits import CellSkipped
from seqbench.models import build_model, count_parameters
from seqbench.tasks import Task

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# The seed's optimiser: Keras' RMSprop defaults (learning rate 1e-3, rho 0.9, eps 1e-7).
RMSPROP = {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}


@dataclass
class Workload:
    """A built model with its inputs, on its device, and the step that the clock times."""

    cell: Cell
    model: nn.Module
    step: Callable[[], object]
    optimizer: torch.optim.Optimizer | None
    inputs: list[torch.Tensor]
    params: int
    core_params: int
    train_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    # Streaming: the bytes one sequence's state holds after the timed token, read from the
    # live state the first time the step runs (empty until then, and in other modes).
    state_bytes: list[int] = field(default_factory=list)
    params_keras: int | None = None  # the parameters as Keras counts them, where it can

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.cell)


def counted_flops(work: Workload) -> tuple[int | None, str]:
    """FLOPs per sequence of one step, counted as it runs (measure.flops): for models without
    a formula (a user's module). The counter sees the same operations the formulas count
    (matmuls and convolutions, 2 per multiply-add) but a training step's real backward pass,
    not the formulas' 3x the forward. The step runs once more, before anything is timed.
    None in streaming mode and under torch.compile (the counter would see the compiler's own
    work); None with a note when a heavy kernel has no formula or counting failed."""
    cell = work.cell
    if cell.mode == "step" or cell.compile:
        return None, ""
    from seqbench.measure.flops import count_step

    return count_step(work.step, cell.batch_size)


def autocast(cell: Cell) -> contextlib.AbstractContextManager:
    """Mixed precision for bfloat16 and float16 cells; nothing for float32."""
    if cell.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(cell.device).type, dtype=DTYPES[cell.dtype])


def make_optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.RMSprop(params, **{**RMSPROP, "lr": lr})


def build_workload(
    cell: Cell,
    seed: int = 0,
    train: TrainSettings | None = None,
    task: Task | None = None,
    compile_backend: str = "inductor",
) -> Workload:
    """Build the cell's model and inputs; the same seed gives the same weights and data.

    Without a task the inputs are random token ids and labels (the seed's classifier, with
    RMSprop); with one, a batch of the task's training data and the task's loss, with Adam
    and gradient clipping for synthetic tasks or RMSprop for IMDB, unless `train` says else.
    """
    from seqbench.models import keras_param_count

    work = _build(cell, seed, train, task, compile_backend)
    work.params_keras = keras_param_count(cell, work.params, work.core_params)
    return work


def _build(
    cell: Cell, seed: int, train: TrainSettings | None, task: Task | None, compile_backend: str
) -> Workload:
    train = train or TrainSettings()
    device = torch.device(cell.device)
    torch.manual_seed(seed)
    model = build_model(cell)
    if getattr(task, "language_model", False):
        position = reads_ahead(model, cell)
        if position is not None:
            raise CellSkipped(
                f"{cell.arch} reads ahead: its output at step {position} moved when only later "
                f"tokens changed, and the {cell.task} task scores each step on the next token"
            )
    if train.forget_bias is not None:
        from seqbench.models.recurrent import set_forget_bias

        set_forget_bias(model, train.forget_bias)
    params, core_params = count_parameters(model), count_parameters(model.core)
    model.to(device)
    # Steps call the compiled module; the eager one stays for its parameters and modes.
    forward = torch.compile(model, backend=compile_backend) if cell.compile else model
    gen = torch.Generator().manual_seed(seed)
    if task is None:
        x = torch.randint(1, cell.vocab, (cell.batch_size, cell.seq_len), generator=gen)
        y = torch.randint(0, 2, (cell.batch_size, 1), generator=gen).float()
        loss_fn = _binary_loss
        kind = train.optimizer or "rmsprop"
    else:
        batch = task.train_batch(cell.batch_size, gen)
        x, y = batch.x, batch.y
        loss_fn = getattr(model.core, "own_loss", None) or task.loss  # a model's own, if any
        kind = train.optimizer or task.optimizer
    # Inputs go to the device once, before any timing: host-to-device copies are not timed.
    x, y = x.to(device), y.to(device)
    # A task cell trains at its own rate (the lr axis); a speed cell at the settings' rate.
    # An inference cell without a task never steps it: its optimizer is made on first use,
    # since torch's first optimizer imports torch._dynamo (1.4 s of every worker's start).
    rate = cell.lr or train.lr
    optimizer = (
        make_optimizer(kind, model.parameters(), rate) if cell.mode == "train" or task else None
    )
    clip = train.clip if kind == "adam" else 0.0
    scaler = (
        torch.amp.GradScaler(device.type)
        if cell.dtype == "float16" and device.type == "cuda"
        else None
    )

    def train_step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        # One training step, timed as a whole: zero-grad, forward, loss, backward, update.
        nonlocal optimizer
        if optimizer is None:
            optimizer = make_optimizer(kind, model.parameters(), rate)
        optimizer.zero_grad(set_to_none=True)
        with autocast(cell):
            loss = loss_fn(forward(xb), yb)
        if scaler is not None:
            loss = scaler.scale(loss)
        loss.backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return loss

    if cell.mode == "step":
        return _streaming(cell, model, optimizer, x, params, core_params, train_step)
    if cell.mode == "infer":
        model.eval()

        def infer() -> object:
            with torch.inference_mode(), autocast(cell):
                return forward(x)

        return Workload(cell, model, infer, optimizer, [x], params, core_params, train_step)
    model.train()
    return Workload(
        cell, model, lambda: train_step(x, y), optimizer, [x, y], params, core_params, train_step
    )


def _streaming(cell, model, optimizer, x, params, core_params, train_step) -> Workload:
    """One token of streaming inference: the state after the first T-1 tokens is built once
    (untimed), and each timed step feeds token T from that same state, so every sample costs
    what the T-th token costs; nothing accumulates between samples."""
    core = model.core
    reason = core.step_unsupported()
    if reason:
        raise CellSkipped(f"no streaming step: {reason}")
    model.eval()
    device = torch.device(cell.device)
    inputs = [x]
    carried: list[object] = []
    last = x[:, -1:]  # the T-th token, through the adapter inside the timed step

    def prefill() -> object:
        # On the first call (a warm-up call, after any training): the weights are final.
        with torch.inference_mode(), autocast(cell):
            h = model.adapter(x)  # (B, T, I)
            state = core.init_state(cell.batch_size, device, h.dtype)
            for t in range(cell.seq_len - 1):
                _, state = core.step(h[:, t], state)
        inputs.extend(_tensors(state))  # the state is memory the step holds
        carried.append(state)
        return state

    work = Workload(cell, model, lambda: None, optimizer, inputs, params, core_params, train_step)

    def step() -> object:
        state = carried[0] if carried else prefill()
        with torch.inference_mode(), autocast(cell):
            y, after = core.step(model.adapter(last)[:, 0], state)  # (B, F)
            if not work.state_bytes:
                work.state_bytes.append(state_nbytes(after) // cell.batch_size)
            return model.head(y)

    work.step = step
    return work


def reads_ahead(model: nn.Module, cell: Cell) -> int | None:
    """The first step whose output changes when only later tokens change (a bidirectional
    core, a module that looks ahead), or None for a causal model. Checked once per cell, in
    evaluation mode (dropout would move every output), on the cell's own length."""
    t = cell.seq_len
    cut = t // 2
    x = torch.randint(0, cell.vocab, (2, t), generator=torch.Generator().manual_seed(0))
    later = x.clone()
    later[:, cut:] = (x[:, cut:] + 1) % cell.vocab  # every later token differs
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            a, b = model(x)[:, :cut], model(later)[:, :cut]
    finally:
        model.train(training)
    moved = (a - b).abs().flatten(2).amax(dim=(0, 2)) > 1e-4 * (1 + float(a.abs().max()))
    return int(moved.nonzero()[0]) if bool(moved.any()) else None


def state_nbytes(state: object) -> int:
    """The bytes of every tensor in a (nested) streaming state (counters and flags are not)."""
    return sum(t.numel() * t.element_size() for t in _tensors(state))


def _tensors(state: object) -> list[torch.Tensor]:
    """Every tensor inside a (nested) streaming state, for the memory it holds."""
    if isinstance(state, torch.Tensor):
        return [state]
    if callable(getattr(state, "tensors", None)):  # a state that knows its tensors (hf: caches)
        return list(state.tensors())
    if isinstance(state, (tuple, list)):
        return [t for item in state for t in _tensors(item)]
    return []


def _binary_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(output.float(), y)
