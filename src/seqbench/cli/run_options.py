"""The options of `seqbench run`, declared as data (see options.py): each says whether it
is an axis of the matrix, a setting of the suite, or an option of the command. `ab` takes
most of them too."""

from __future__ import annotations

from pathlib import Path

from seqbench.cli.options import (
    AXIS,
    COMMAND,
    RESULTS_ROOT,
    SWITCH_AXIS,
    THREADS,
    Option,
)
from seqbench.plan.suites import suite_names

# What `run --format` prints on stdout: the Rich table, or an exporter's text.
RUN_FORMATS = ("table", "csv", "json", "markdown")

RUN_OPTIONS: tuple[Option, ...] = (
    Option(
        "suite",
        f"Suite file, or the name of one: {', '.join(suite_names())} (from ./benchmarks and "
        "seqbench's own). Default: quick.",
        kind=COMMAND,
        flags=("--suite", "-s"),
    ),
    # -- the matrix
    Option(
        "arch",
        "Architectures, comma-separated (see `seqbench archs`), or package.module:factory.",
        kind=AXIS,
    ),
    Option("seq_len", "Sequence lengths, comma-separated.", kind=AXIS),
    Option("batch_size", "Batch sizes, comma-separated.", kind=AXIS),
    Option("hidden", "Hidden units (filters for conv1d), comma-separated.", kind=AXIS),
    Option("layers", "Stacked recurrent layers, comma-separated.", kind=AXIS),
    Option(
        "bidirectional",
        "Bidirectional recurrent layers.",
        kind=SWITCH_AXIS,
        type=bool,
        switch=True,
    ),
    Option("dropout", "Input dropout rates in [0, 1), one mask per sequence.", kind=AXIS),
    Option(
        "recurrent_dropout",
        "Variational recurrent dropout rates in [0, 1) (training only; runs a per-step loop).",
        kind=AXIS,
    ),
    Option("vocab", "Vocabulary sizes of the token embedding.", kind=AXIS),
    Option("embed", "Embedding widths.", kind=AXIS),
    Option("device", "Devices: cpu, cuda, cuda:N, mps or auto, comma-separated.", kind=AXIS),
    Option("dtype", "float32, bfloat16 or float16 (autocast), comma-separated.", kind=AXIS),
    Option(
        "mode",
        "infer, train, step (one token of streaming inference, state carried), comma-separated.",
        kind=AXIS,
    ),
    Option(
        "match_params",
        "Choose each architecture's width so its core has about this many parameters (comma list; 0: off).",
        kind=AXIS,
    ),
    Option(
        "task",
        "Accuracy tasks, comma-separated: adding, copy, digits, imdb, or none (speed only, the default).",
        kind=AXIS,
    ),
    # -- training a task
    Option(
        "train_steps",
        "Training steps per task cell (default: the task's, e.g. 2000 for adding; none with only --train-time).",
        type=int,
    ),
    Option("train_time", "Seconds of training per task cell, at most.", type=float),
    Option(
        "target",
        "Record the training time and steps until the validation score first reaches this (time_to_target_s, steps_to_target).",
        type=float,
    ),
    Option(
        "eval_every",
        "Steps between validation scores: the learning curve's points and the --target checks (default 100).",
        type=int,
    ),
    Option(
        "optimizer",
        "adam (with gradient clipping) or rmsprop; default: the task's (adam for synthetic tasks, rmsprop for imdb).",
    ),
    Option(
        "lr",
        "Learning rates, comma-separated (default: the task's). With several, each model's rate is chosen by its mean validation score over the seeds; the table reports that rate's test score.",
        kind=AXIS,
    ),
    Option("clip", "Gradient-norm clipping with Adam (default 1.0; 0 turns it off).", type=float),
    Option(
        "forget_bias",
        "Initial LSTM forget-gate bias, e.g. 1.0 (default: PyTorch's uniform initialisation).",
        type=float,
    ),
    Option("data", "A local dataset: Keras' imdb.npz or the aclImdb folder (imdb task)."),
    Option(
        "grad_flow",
        "Also measure each cell's memory horizon (see `seqbench gradflow`).",
        type=bool,
        switch=True,
    ),
    # -- how the model runs
    Option(
        "compile",
        "Run the models through torch.compile (compile time is reported apart, never timed).",
        kind=SWITCH_AXIS,
        type=bool,
        switch=True,
    ),
    Option("compile_backend", "torch.compile backend (default inductor)."),
    Option(
        "tf32",
        "Let CUDA float32 matmuls and cuDNN use TensorFloat-32 (default on; recorded per row).",
        type=bool,
        switch=True,
    ),
    Option(
        "ceiling",
        "Measure each device's matmul FLOP/s once per run, for the mfu column (default on).",
        type=bool,
        switch=True,
    ),
    # -- how each cell is timed
    Option("min_time", "Seconds of timed steps per cell, at least (default 0.5).", type=float),
    Option("min_repeats", "Timing samples per cell, at least (default 5).", type=int),
    Option("max_repeats", "Timing samples per cell, at most (default 1000).", type=int),
    Option(
        "precision",
        "Stop a cell early once its median's 95% CI half-width is this fraction (0 = off).",
        type=float,
    ),
    Option(
        "warmup_time",
        "Seconds of untimed warm-up steps per cell, at least (default 0.1).",
        type=float,
    ),
    Option(
        "rounds",
        "Passes over the whole matrix; each cell's samples are pooled across them, so a burst of interference touches one pass (default 1).",
        type=int,
    ),
    # -- the process
    THREADS,
    Option(
        "seed",
        "Seeds for weights, batches and data splits, comma-separated (default 0); a task cell runs once per seed.",
        kind=AXIS,
    ),
    Option(
        "seeds",
        "Run task cells with seeds 0..N-1 (instead of --seed).",
        kind=COMMAND,
        type=int,
    ),
    Option(
        "flush_denormal",
        "Flush subnormal floats to zero on the CPU (default on, as in Keras).",
        type=bool,
        switch=True,
    ),
    # -- where cells run
    Option(
        "executor",
        "local (default), or ray: every cell a Ray task in a fresh worker, on any node of the cluster.",
    ),
    Option(
        "ray_address",
        "With --executor ray: 'auto' or an address joins that cluster; default: a local cluster.",
    ),
    Option(
        "cpu_cells_per_node",
        "With --executor ray: CPU cells that may run on one node at once, sharing its CPUs (default 1).",
        type=int,
    ),
    Option(
        "isolate",
        "Run each cell in a fresh process: a crash or leak costs one cell, and host memory is measured cleanly.",
        type=bool,
        switch=True,
    ),
    Option(
        "cell_timeout",
        "Seconds a cell may take before it is recorded as 'timeout' and the run goes on.",
        type=float,
    ),
    Option(
        "count_instructions",
        "Also count each CPU cell's instructions per step under callgrind (needs valgrind): a "
        "figure other processes cannot move, for gates on shared machines.",
        type=bool,
        switch=True,
    ),
    Option(
        "skip_larger",
        "After an OOM cell, skip larger cells of the same model on that device (default on).",
        type=bool,
        switch=True,
    ),
    # -- the run itself
    Option(
        "label",
        "A short name for the run (default: the suite's; without a suite, what the flags measure: 'lstm,gru T=64 infer').",
    ),
    Option(
        "resume",
        "Finish an interrupted run: its id, its folder, or 'latest'. Uses the run's saved configuration.",
        kind=COMMAND,
    ),
    Option(
        "retry_errors",
        "With --resume: measure the cells that ended in an error or a timeout again.",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--retry-errors",),
    ),
    RESULTS_ROOT,
    Option(
        "csv",
        "Also write the rows to this CSV (with .samples.csv and .meta.json beside it).",
        kind=COMMAND,
        type=Path,
    ),
    Option(
        "output_format",
        "What to print on stdout at the end: table, csv, json or markdown (progress and notes go to stderr).",
        kind=COMMAND,
        default="table",
        flags=("--format",),
    ),
    Option(
        "quiet",
        "No progress bar and nothing on stdout: only warnings and the final 'saved ...' line, on stderr.",
        kind=COMMAND,
        type=bool,
        default=False,
        flags=("--quiet", "-q"),
    ),
)
