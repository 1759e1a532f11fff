"""The README's table of the 2026 contest, from one saved run of the `modern` suite.

    seqbench run --suite modern
    python benchmarks/modern_table.py latest [--root results]

One row per core: the width `--match-params` gave it, the kernel form, the time of one
inference pass at each length, a training step and a streamed token at the longest, the
state a sequence carries while streaming and the training step's peak memory there, and
where it overtakes causal attention in inference: the first measured length from which it
is faster at every longer one, with the ratio at the longest (attention / it).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from seqbench.output.text import format_bytes, format_seconds
from seqbench.storage import load_run

ATTENTION = "transformer-causal"


def run_argument(doc: str, argv: list[str] | None = None, *, several: bool = False):
    """The saved run a table script is given (`RUN [--root ROOT]`, latest by default), or
    with `several`, the runs (`RUN [RUN ...]`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("run", nargs="*" if several else "?", default="latest")
    parser.add_argument("--root", default="results")
    args = parser.parse_args(argv)
    if several:
        return [load_run(ref, args.root) for ref in (args.run or ["latest"])]
    return load_run(args.run, args.root)


def main(argv: list[str] | None = None) -> None:
    run = run_argument(__doc__, argv)
    cells: dict[tuple[str, str], dict[int, object]] = defaultdict(dict)
    for row in run.rows:
        if row.status == "ok":
            cells[(row.arch, row.mode)][row.seq_len] = row
    lengths = sorted({row.seq_len for row in run.rows})
    longest = lengths[-1]
    archs = list(dict.fromkeys(row.arch for row in run.rows))

    def time(arch: str, mode: str, length: int) -> str:
        row = cells[(arch, mode)].get(length)
        return format_seconds(row.median_s) if row else "-"

    def overtakes(arch: str) -> str:
        mine, theirs = cells[(arch, "infer")], cells[(ATTENTION, "infer")]
        shared = [t for t in lengths if t in mine and t in theirs]
        if arch == ATTENTION or not shared:
            return "-"
        faster = [mine[t].median_s < theirs[t].median_s for t in shared]
        if not faster[-1]:
            return "not by T = " + f"{shared[-1]:,}"
        start = len(faster)
        while start and faster[start - 1]:
            start -= 1
        ratio = theirs[shared[-1]].median_s / mine[shared[-1]].median_s
        return f"T = {shared[start]:,} ({ratio:.1f}× at {shared[-1]:,})"

    header = ["arch", "kernel", "H"] + [f"infer T={t:,}" for t in lengths]
    header += [f"train T={longest:,}", f"step T={longest:,}", "state/seq", "train peak mem"]
    header += ["faster than attention from"]
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 3) + ["---"]) + " |")
    for arch in archs:
        infer = cells[(arch, "infer")]
        any_row = next(iter(infer.values()), None)
        step = cells[(arch, "step")].get(longest)
        train = cells[(arch, "train")].get(longest)
        line = [
            f"`{arch}`",
            any_row.kernel if any_row else "-",
            str(any_row.hidden) if any_row else "-",
        ]
        line += [time(arch, "infer", t) for t in lengths]
        line += [time(arch, "train", longest), time(arch, "step", longest)]
        line += [format_bytes(step.state_bytes) if step else "-"]
        line += [format_bytes(train.peak_mem_bytes) if train else "-"]
        line += [overtakes(arch)]
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
