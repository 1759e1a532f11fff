"""Check seqbench's timing against an independent measurement of the same model.

For each cell, seqbench measures it end to end (`measure`: its own build, warm-up,
sampling and statistics), and `torch.utils.benchmark.Timer.blocked_autorange` times a
training or inference step written out by hand below, on a model built from the same
registry. The two alternate for a few rounds so that machine drift hits both alike; the
script prints the ratio of their medians. Run it on a quiet machine:

    python benchmarks/verify_timing.py --seq-len 128 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch
import torch.utils.benchmark as tbench
from torch import nn

from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings
from seqbench.machine.env import apply_process_settings
from seqbench.measure import measure
from seqbench.measure.workload import RMSPROP
from seqbench.models import build_model, normalize_cell


def hand_step(cell: Cell):
    """A step as the README's "How seqbench measures" describes it, written without
    seqbench's measurement code."""
    torch.manual_seed(0)
    model = build_model(cell)
    tokens = torch.randint(1, cell.vocab, (cell.batch_size, cell.seq_len))
    if cell.mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode():
                model(tokens)

        return step
    model.train()
    labels = torch.randint(0, 2, (cell.batch_size, 1)).float()
    opt = torch.optim.RMSprop(model.parameters(), **RMSPROP)
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(tokens), labels).backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()

    settings = apply_process_settings(args.threads, True)

    budget = MeasureSettings(min_time=args.min_time)
    base = Cell(
        "rnn",
        args.seq_len,
        args.batch_size,
        args.hidden,
        1,
        False,
        0.0,
        0.0,
        10_000,
        32,
        "cpu",
        "float32",
        "infer",
    )
    print(
        f"torch {torch.__version__}, threads {settings['threads']}, flush_denormal {settings['flush_denormal']}"
    )
    print(
        f"T={args.seq_len} B={args.batch_size} H={args.hidden}, {args.rounds} alternating rounds, medians of rounds"
    )
    print(f"{'cell':<16}{'seqbench':>12}{'Timer':>12}{'ratio':>9}")
    ratios = []
    for arch in ("rnn", "lstm", "gru", "conv1d"):
        for mode in ("infer", "train"):
            cell = normalize_cell(dataclasses.replace(base, arch=arch, mode=mode))
            ours, theirs = [], []
            step = hand_step(cell)
            timer = tbench.Timer(
                "step()", globals={"step": step}, num_threads=torch.get_num_threads()
            )
            for _ in range(args.rounds):
                row = measure(CellRequest(cell, measure=budget, memory=False)).row
                ours.append(row.median_s)
                theirs.append(timer.blocked_autorange(min_run_time=args.min_time).median)
            a, b = statistics.median(ours), statistics.median(theirs)
            ratios.append(a / b)
            print(f"{arch + ' ' + mode:<16}{a * 1e3:>10.3f}ms{b * 1e3:>10.3f}ms{a / b:>9.3f}")
    print(
        f"ratio range {min(ratios):.3f} .. {max(ratios):.3f}; median {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
