"""How much does the memory horizon's cut-off move it, under the old and the new definition?

For each architecture and seed, the input-gradient profile of an untrained model on the
adding problem (or with --train-steps, after that much training), and its horizon at three
cut-offs:

- new: the task's loss over --batch-size held-out sequences; the fewest steps back from the
  end that hold all but c of the gradient's mass (what `memory_horizon` and `seqbench
  gradflow` report);
- old: the summed last output of 64 sequences, relative to the profile's peak (seqbench's
  definition before schema 9).

A geometric decay a^d moves the horizon by ln c' / ln c between cut-offs c and c' (1.5 from
1e-2 to 1e-3, 1.33 from 1e-3 to 1e-4); anything much beyond that says the definition, not
the decay, decides the number.

    python benchmarks/horizon_cutoffs.py --arch rnn,lstm,gru --seq-len 200 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from seqbench.core.schema import Cell
from seqbench.core.settings import TrainSettings
from seqbench.measure.gradflow import gradient_probe, input_gradient_norms, memory_horizon
from seqbench.measure.training import train_on_task
from seqbench.measure.workload import build_workload
from seqbench.models import normalize_cell
from seqbench.tasks import prepared

CUTOFFS = (1e-2, 1e-3, 1e-4)


def old_horizon(norms: np.ndarray, cutoff: float) -> int:
    """The definition before schema 9: relative to the peak, counted from the end."""
    peak = float(np.max(norms))
    from_end = norms[::-1] >= cutoff * peak
    below = np.flatnonzero(~from_end)
    return int(below[0]) if below.size else len(from_end)


def profiles(arch: str, args: argparse.Namespace, seed: int) -> tuple[np.ndarray, np.ndarray]:
    cell = normalize_cell(
        Cell(
            arch,
            args.seq_len,
            args.batch_size,
            args.hidden,
            1,
            False,
            0.0,
            0.0,
            0,
            2,
            "cpu",
            "float32",
            "train",
            task="adding",
        )  # fmt: skip
    )
    train = TrainSettings(train_steps=args.train_steps or 1, lr=args.lr)
    task = prepared("adding", cell.seq_len, 0, seed, None)
    work = build_workload(cell, seed, train, task)
    if args.train_steps:
        train_on_task(work, task, train, seed)
        work.model.zero_grad(set_to_none=True)
    x, y = gradient_probe(work, task)
    new = input_gradient_norms(work.model, x, y, task)
    old = input_gradient_norms(work.model, task.eval_set().x[:64])
    return new, old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", default="rnn,lstm,gru,tcn-paper", help="architectures, comma-separated"
    )
    parser.add_argument("--seq-len", type=int, default=200, help="sequence length")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units")
    parser.add_argument("--batch-size", type=int, default=32, help="held-out sequences")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument("--train-steps", type=int, default=0, help="train first (0: untrained)")
    parser.add_argument("--lr", type=float, default=2e-3, help="learning rate when training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    cut = " ".join(f"{c:>6g}" for c in CUTOFFS)
    print(f"T={args.seq_len}, hidden {args.hidden}, train steps {args.train_steps}")
    print(f"{'arch':<10} {'seed':>4}   new: {cut}   old: {cut}")
    for arch in args.arch.split(","):
        news = []
        for seed in seeds:
            new, old = profiles(arch, args, seed)
            n = [memory_horizon(new, c) for c in CUTOFFS]
            o = [old_horizon(old, c) for c in CUTOFFS]
            news.append(n)
            print(
                f"{arch:<10} {seed:>4}   new: {' '.join(f'{v:>6}' for v in n)}"
                f"   old: {' '.join(f'{v:>6}' for v in o)}"
            )
        medians = [statistics.median(col) for col in zip(*news, strict=True)]
        ratios = [b / a for a, b in zip(medians, medians[1:], strict=False) if a]
        print(
            f"{arch:<10} {'med':>4}   new: {' '.join(f'{v:>6g}' for v in medians)}"
            f"   ratios between cut-offs: {', '.join(f'{r:.2f}' for r in ratios)}"
        )


if __name__ == "__main__":
    main()
