"""minGRU's log-space-scan training step against PyTorch's fused GRU, on this machine.

Feng et al. 2024 report minGRU trained with a parallel scan far faster than cuDNN's GRU at
long lengths (on an H200 here: 6.8× at T = 1024). This measures the same question with
seqbench's own `measure`: one training step (zero-grad, forward, loss, backward,
RMSprop) of the registry's `gru` (cuDNN on CUDA, ATen's step loop on the CPU) and `mingru`
(the log-space scan), one layer, I = H, float32, median of repeats. Longer lengths that
would not finish within `--budget` seconds (estimated from the previous length) are skipped.

    python benchmarks/mingru_vs_cudnn.py                         # CPU, H 256, B 64, T 256 1024 4096
    python benchmarks/mingru_vs_cudnn.py --device cuda --seq-len 1024,4096,16384
"""

from __future__ import annotations

import argparse

import torch

from seqbench.core.request import CellRequest
from seqbench.core.schema import Cell
from seqbench.core.settings import MeasureSettings
from seqbench.machine.env import apply_process_settings
from seqbench.measure import measure
from seqbench.models import normalize_cell
from seqbench.output.text import format_median

ARCHS = ("gru", "mingru")


def cell(arch: str, seq_len: int, args: argparse.Namespace) -> Cell:
    return normalize_cell(
        Cell(
            arch=arch,
            seq_len=seq_len,
            batch_size=args.batch_size,
            hidden=args.hidden,
            layers=1,
            bidirectional=False,
            dropout=0.0,
            recurrent_dropout=0.0,
            vocab=1_000,  # the embedding is a lookup; keep its optimiser update small
            embed=args.hidden,
            device=args.device,
            dtype="float32",
            mode="train",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq-len", default="256,1024,4096", help="comma-separated lengths")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    parser.add_argument("--hidden", type=int, default=256, help="H, and the input width I")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per cell, at least")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per length, at most")
    args = parser.parse_args()

    env = apply_process_settings(args.threads, flush_denormal=True)
    settings = MeasureSettings(
        min_time=0.0,
        min_repeats=args.repeats,
        max_repeats=args.repeats,
        warmup_time=0.0,
        warmup_steps=1,
        min_sample_s=0.0,
    )
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"{device}, torch {torch.__version__}, threads {env['threads']}, float32, train step")
    print(f"H={args.hidden} B={args.batch_size}, median of {args.repeats} steps after 1 warm-up")
    print(f"{'T':>6}  {'gru':>20}  {'mingru':>20}  {'gru / mingru':>12}  kernels")
    per_step: dict[str, float] = {}
    previous = None
    for seq_len in (int(t) for t in args.seq_len.split(",")):
        if previous is not None:
            # Both cost at least linearly in T; (repeats + 1 warm-up) steps each.
            factor = seq_len / previous
            estimate = sum(per_step.values()) * factor * (args.repeats + 1)
            if estimate > args.budget:
                print(f"{seq_len:>6}  skipped: about {estimate:.0f} s > --budget {args.budget:g} s")
                continue
        rows = {
            arch: measure(CellRequest(cell(arch, seq_len, args), settings, memory=False)).row
            for arch in ARCHS
        }
        for arch, row in rows.items():
            if row.status != "ok":
                raise SystemExit(f"{arch} T={seq_len}: {row.status}: {row.message}")
            per_step[arch] = row.median_s
        previous = seq_len
        text = {arch: format_median(row) for arch, row in rows.items()}
        ratio = rows["gru"].median_s / rows["mingru"].median_s
        kernels = ", ".join(rows[a].kernel for a in ARCHS)
        print(f"{seq_len:>6}  {text['gru']:>20}  {text['mingru']:>20}  {ratio:>11.2f}×  {kernels}")
    print("gru / mingru > 1: the scan is faster by that factor")


if __name__ == "__main__":
    main()
