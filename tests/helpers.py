"""Small builders shared by the tests."""

from __future__ import annotations

import dataclasses

from seqbench.config import MeasureSettings
from seqbench.schema import Cell

# Settings that keep a real measurement to a fraction of a second.
FAST = MeasureSettings(
    min_time=0.0, min_repeats=3, max_repeats=3, warmup_time=0.0, warmup_steps=1, min_sample_s=0.0
)

# Flags for `seqbench run` that do the same from the command line.
FAST_FLAGS = [
    "--min-time",
    "0",
    "--min-repeats",
    "3",
    "--max-repeats",
    "3",
    "--warmup-time",
    "0",
    "--no-ceiling",
]


def make_cell(**overrides) -> Cell:
    base = Cell(
        arch="lstm",
        seq_len=16,
        batch_size=4,
        hidden=8,
        layers=1,
        bidirectional=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        vocab=50,
        embed=6,
        device="cpu",
        dtype="float32",
        mode="infer",
    )
    return dataclasses.replace(base, **overrides)
