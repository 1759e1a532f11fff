"""How each task's default learning rate and budget were chosen: train a few architectures
at a few rates and seeds, and print every validation and test score with the rate the
seeds-and-validation rule picks (see seqbench.judge.accuracy).

    PYTHONPATH=src python benchmarks/tune_defaults.py --task adding --seq-len 50 \\
        --arch lstm,gru --lr 1e-3,2e-3 --seeds 2 --steps 1500

Scores are on the task's validation split (every --eval-every steps: the step at which
--target was first met) and on its test set at the end. Timing is skipped (one sample).
The figures depend on the threads and on nothing else but the seed (see the README).
"""

from __future__ import annotations

import argparse
import statistics
import time

from seqbench.judge.accuracy import summarize_accuracy
from seqbench.machine.env import apply_process_settings
from seqbench.measure import measure
from seqbench.plan.cells import plan
from seqbench.plan.suites import resolve_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="adding")
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--arch", default="lstm,gru")
    parser.add_argument("--lr", default="1e-3,2e-3")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--target", type=float, default=None, help="default: a tenth of chance")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from seqbench.tasks import prepared

    task = prepared(args.task, args.seq_len, 0, 0, None)
    target = task.chance() / 10 if args.target is None else args.target
    axes = {
        "arch": tuple(args.arch.split(",")),
        "seq_len": (args.seq_len,),
        "task": (args.task,),
        "mode": ("train",),
        "hidden": (args.hidden,),
        "batch_size": (args.batch_size,),
        "seed": tuple(range(args.seeds)),
        "lr": tuple(float(x) for x in args.lr.split(",")),
    }
    settings = {
        "train_steps": args.steps, "eval_every": args.eval_every, "target": target,
        "min_time": 0.0, "min_repeats": 1, "max_repeats": 1, "warmup_time": 0.0,
        "threads": args.threads,
    }  # fmt: skip
    config = resolve_config(axes=axes, settings=settings)
    apply_process_settings(args.threads, True, True)
    rows = []
    print(f"{args.task} T={args.seq_len} hidden={args.hidden} batch={args.batch_size} "
          f"steps={args.steps} threads={args.threads}")  # fmt: skip
    print(
        f"{'arch':6} {'lr':>7} {'seed':>4} {'validation':>11} {'test':>9} {'to target':>9} {'s':>6}"
    )
    for cell in plan(config):
        start = time.perf_counter()
        row = measure(config.request(cell)).row
        rows.append(row)
        print(
            f"{cell.arch:6} {cell.lr:7g} {cell.seed:4d} {row.validation_value or float('nan'):11.4g} "
            f"{row.metric_value or float('nan'):9.4g} {row.steps_to_target or '-':>9} "
            f"{time.perf_counter() - start:6.0f}  {row.message}",
            flush=True,
        )
    print(f"\nchosen on validation (target {target:.4g}, {task.metric}):")
    for group in summarize_accuracy(rows):
        spread = group.test
        steps = [r.steps_to_target for r in group.rows if r.steps_to_target]
        print(
            f"{group.cell.arch:6} lr {group.lr:g}: test {spread.mean:.4g} "
            f"[{spread.low if spread.low is None else f'{spread.low:.4g}'}, "
            f"{spread.high if spread.high is None else f'{spread.high:.4g}'}] n={spread.n}; "
            f"seeds at target: {len(steps)}/{spread.n}"
            + (f", median steps {statistics.median(steps):g}" if steps else "")
        )


if __name__ == "__main__":
    main()
