"""Check seqbench's CUDA figures against an independent measurement, in one call.

1. Runs the GPU suite (benchmarks/gpu.toml: every seed architecture, T = 256, 1024, 4096,
   float32 and bfloat16, inference and training) through seqbench, saving it as a run.
2. For a handful of those cells, times the same model again by hand: a training step
   written out below, CUDA events around each of N steps after a long warm-up, and peak
   memory from the allocator around one step, net of what was allocated before the model.
3. Prints the seqbench/hand ratios of median time and of peak memory, and MFU for the
   largest cells. The target is every time ratio within ±5%.

    python benchmarks/gpu_check.py                    # on a machine with one GPU, < 5 minutes
    python benchmarks/gpu_check.py --device cpu --lengths 32,64 --min-time 0.05   # a dry run

Reference (by hand on an H200, torch 2.11, cuDNN 9.19, batch 64, training, RMSprop): cuDNN
LSTM hidden 1024, T=1024: 53 ms in fp32/TF32 and 24 ms in bf16.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from seqbench.core.devices import synchronize, unavailable_reason
from seqbench.core.schema import Cell, ResultRow
from seqbench.execute import CellFinished
from seqbench.execute.session import Session
from seqbench.measure.workload import DTYPES, RMSPROP
from seqbench.models import build_model
from seqbench.plan.suites import parse_list, resolve_config


def hand_time_and_memory(cell: Cell, steps: int, warmup: int) -> tuple[float, int]:
    """Median seconds per step (device clock) and peak bytes of one step, without seqbench's
    measurement code."""
    device = torch.device(cell.device)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    torch.manual_seed(0)
    model = build_model(cell).to(device)
    tokens = torch.randint(1, cell.vocab, (cell.batch_size, cell.seq_len), device=device)
    labels = torch.randint(0, 2, (cell.batch_size, 1), device=device).float()
    optimizer = torch.optim.RMSprop(model.parameters(), **RMSPROP)
    loss_fn = nn.BCEWithLogitsLoss()
    amp = cell.dtype != "float32"

    def step() -> None:
        if cell.mode == "infer":
            with (
                torch.inference_mode(),
                torch.autocast(device.type, DTYPES[cell.dtype], enabled=amp),
            ):
                model(tokens)
            return
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, DTYPES[cell.dtype], enabled=amp):
            loss = loss_fn(model(tokens).float(), labels)
        loss.backward()
        optimizer.step()

    model.train(cell.mode == "train")
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    peak = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    return statistics.median(times), peak


def pick_checks(rows: list[ResultRow], count: int) -> list[ResultRow]:
    """The longest cells of each architecture, in both dtypes and modes, up to `count`."""
    ok = [r for r in rows if r.status == "ok"]
    longest = max((r.seq_len for r in ok), default=0)
    chosen = [r for r in ok if r.seq_len == longest and r.mode == "train"]
    chosen += [r for r in ok if r.seq_len == longest and r.mode == "infer" and r.arch == "lstm"]
    return chosen[:count]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--lengths", default=None, help="override the suite's lengths, e.g. 256,1024,4096"
    )
    parser.add_argument("--min-time", type=float, default=None)
    parser.add_argument("--checks", type=int, default=10, help="cells to measure by hand")
    parser.add_argument("--steps", type=int, default=30, help="hand-timed steps per check")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()

    reason = unavailable_reason(args.device)
    if reason:
        print(f"gpu_check: {reason}; nothing was run", file=sys.stderr)
        return 2
    axes = {"device": parse_list(args.device, "device", "--device")}
    if args.lengths:
        axes["seq_len"] = parse_list(args.lengths, "seq_len", "--lengths")
    if args.device == "cpu":  # a dry run: bfloat16 autocast on the CPU is slow and beside the point
        axes.update(dtype=("float32",), hidden=(32,), embed=(32,), batch_size=(8,))
    settings = {} if args.min_time is None else {"min_time": args.min_time}
    settings["label"] = "gpu-check"
    config = resolve_config("gpu", axes=axes, settings=settings)
    started = time.perf_counter()
    session = Session.start(config, root=args.out)
    with session:
        for event in session.measure():
            if isinstance(event, CellFinished):
                row = event.measurement.row
                print(
                    f"[{event.index + 1}/{event.total}] {row.cell_id}: {row.status} {row.median_s or 0:.4g} s",
                    flush=True,
                )
    run, env = session.run, session.env
    print(
        f"suite: {len(run.rows)} cells in {time.perf_counter() - started:.0f} s, saved to {run.path}"
    )
    print(
        f"device: {env.get('gpu', {}).get('name', env['cpu'])}; torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}"
    )
    print(f"ceilings (TFLOP/s): {run.meta.ceilings}")

    header = f"{'cell':<44}{'seqbench':>11}{'hand':>11}{'ratio':>8}{'mem ratio':>11}{'mfu':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    ratios = []
    for row in pick_checks(run.rows, args.checks):
        hand_s, hand_peak = hand_time_and_memory(row.cell, args.steps, warmup=10)
        ratio = row.median_s / hand_s
        ratios.append(ratio)
        mem = f"{row.peak_mem_bytes / hand_peak:.3f}" if hand_peak and row.peak_mem_bytes else "-"
        mfu = f"{row.mfu:.1%}" if row.mfu is not None else "-"
        name = f"{row.arch} T{row.seq_len} {row.dtype} {row.mode}"
        print(
            f"{name:<44}{row.median_s * 1e3:>9.3f}ms{hand_s * 1e3:>9.3f}ms{ratio:>8.3f}{mem:>11}{mfu:>8}"
        )
    outside = [r for r in ratios if abs(r - 1) > 0.05]
    verdict = "all within ±5%" if not outside else f"{len(outside)} of {len(ratios)} outside ±5%"
    print(
        f"\ntime ratios {min(ratios):.3f} .. {max(ratios):.3f}: {verdict}"
        if ratios
        else "no cells to check"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
