"""Do `seqbench.measure_module` and `seqbench run --arch package.module:factory` time the
same model alike? Measure it.

The model is what `seqbench run --arch tests.api_models:core` builds (an embedding, a GRU
core from the factory, a dense head). Each round measures it twice, in alternation: once
through `seqbench.run` (the CLI's path: seqbench builds the model from the factory) and once
through `seqbench.measure_module` on the same built model, with the same token inputs,
loss (binary cross-entropy) and optimiser (the seed's RMSprop). The script prints, per
cell, the median over rounds of each side's median step time and of their ratio
(API / CLI); 1.00 means they agree. Run it from the repository root:

    python benchmarks/api_agreement.py --rounds 5 --min-time 0.3
"""

from __future__ import annotations

import argparse
import statistics
import warnings

FACTORY = "tests.api_models:core"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the two paths")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds timed per cell")
    parser.add_argument("--seq-len", default="32,128", help="comma-separated lengths")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from torch import nn

    import seqbench
    from seqbench.models import build_model

    warnings.simplefilter("ignore", RuntimeWarning)  # the busy-machine note: see the noise column
    lengths = [int(t) for t in args.seq_len.split(",")]
    shape = {"hidden": 32, "layers": 1, "vocab": 1000, "embed": 32}
    settings = {"min_time": args.min_time, "threads": args.threads}
    ratios: dict[str, list[float]] = {}
    times: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(args.rounds):
        cli = seqbench.run(arch=FACTORY, seq_len=lengths, batch_size=args.batch_size,
                           mode=["infer", "train"], **shape, **settings)  # fmt: skip
        model = build_model(seqbench.core.schema.ResultRow.from_dict(cli.iloc[0].to_dict()).cell)
        api = seqbench.measure_module(
            model, lambda b, t: torch.randint(1, 1000, (b, t)), label=FACTORY, key=shape,
            target=lambda b, t: torch.randint(0, 2, (b, 1)).float(),
            loss=nn.functional.binary_cross_entropy_with_logits,
            optimizer=lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7),
            seq_len=lengths, batch_size=args.batch_size, mode=["infer", "train"], **settings,
        )  # fmt: skip
        assert list(api.cell_id) == list(cli.cell_id)
        for cell_id, a, c in zip(api.cell_id, api.median_s, cli.median_s, strict=True):
            ratios.setdefault(cell_id, []).append(a / c)
            times.setdefault(cell_id, ([], []))
            times[cell_id][0].append(c)
            times[cell_id][1].append(a)
    print(
        f"{'cell':<12} {'cli median':>12} {'api median':>12} {'api/cli':>8}   ({args.rounds} rounds)"
    )
    for cell_id, values in ratios.items():
        short = "-".join(p for p in cell_id.split("-") if p[0] in "T" or p in ("infer", "train"))
        cli_s, api_s = (statistics.median(v) for v in times[cell_id])
        print(
            f"{short:<12} {cli_s * 1e3:>10.3f}ms {api_s * 1e3:>10.3f}ms {statistics.median(values):>8.2f}"
        )


if __name__ == "__main__":
    main()
