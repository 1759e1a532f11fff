"""MNIST-1D (Greydanus 2020, "Scaling Down Deep Learning"): ten 1-D digit templates, padded,
translated, scaled, sheared and noised into 40-step signals, 4,000 for training and 1,000 for
testing. The `mnist1d` package generates them procedurally from templates it carries; its
`make_dataset` never touches the network (only its `get_dataset` may download, and is not
used). The data are the paper's: the package's default arguments, its seed 42 included, so
scores stand beside the paper's table; seqbench's --seed sets the weights and batch order.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import torch

from seqbench.core.errors import ConfigError
from seqbench.tasks.real import _Classification


@lru_cache(maxsize=1)
def generate() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train (4000, 40, 1), y_train, x_test (1000, 40, 1), y_test), once per process.

    `make_dataset` seeds numpy's and Python's global generators; their states are put back,
    so generating the data changes nothing else in the process."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ConfigError(
            "the mnist1d task needs the mnist1d package: pip install 'seqbench[tasks]'"
        ) from None
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)

    def signals(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.float32).unsqueeze(-1)  # (N, 40, 1)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.tensor(y, dtype=torch.long)

    return signals(data["x"]), labels(data["y"]), signals(data["x_test"]), labels(data["y_test"])


class Mnist1dTask(_Classification):
    """MNIST-1D, one value per step: 40 steps of one feature, 10 classes; trained on the
    4,000 training signals, scored on the 1,000 test signals."""

    name = "mnist1d"
    summary = "MNIST-1D: 40-step 1-D digit signals, 10 classes (accuracy; generated offline)"
    inputs = "dense"
    channels = 1
    outputs = 10
    optimizer = "adam"
    fixed_seq_len = 40

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        self.x_train, self.y_train, self.x_eval, self.y_eval = generate()
