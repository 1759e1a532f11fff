"""Real data, read from disk, never downloaded: sequential digits and the seed's IMDB task."""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqbench.core import schema
from seqbench.core.errors import ConfigError
from seqbench.tasks.base import Batch

# Held-out examples scored after training, at most: enough for a stable accuracy, few
# enough that scoring stays a small part of a cell.
EVAL_CAP = 2000


class _Classification:
    """A fixed train/eval split of labelled sequences, scored by accuracy."""

    metric = "accuracy"
    higher_is_better = schema.higher_is_better(metric)
    readout = "summary"
    min_seq_len = 1

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(0, len(self.y_train), (batch_size,), generator=generator)
        return Batch(self.x_train[idx], self.y_train[idx])

    def eval_set(self) -> Batch:
        return Batch(self.x_eval, self.y_eval)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.outputs == 1:
            return F.binary_cross_entropy_with_logits(output.float().squeeze(1), y.float())
        return F.cross_entropy(output.float(), y)

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        if self.outputs == 1:
            return (output.squeeze(1) > 0).long()
        return output.argmax(dim=1)

    def evaluate(self, output: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predictions(output) == y).float().mean())

    def chance(self) -> float:
        """Always answering the most frequent class of the evaluation set."""
        counts = torch.bincount(self.y_eval)
        return float(counts.max()) / len(self.y_eval)

    def chance_theory(self) -> float:
        """One class in `outputs` (two for a binary task): the guess on balanced classes."""
        return 1.0 / max(2, self.outputs)


class DigitsTask(_Classification):
    """Sequential digits: scikit-learn's bundled 8×8 handwritten digits (1,797 images, inside
    the package), read one pixel per step: 64 steps of one feature, 10 classes. The small
    cousin of sequential MNIST; 20% of the images, chosen by the seed, are held out."""

    name = "digits"
    summary = "sequential 8x8 digits, one pixel per step (accuracy; scikit-learn's bundled data)"
    inputs = "dense"
    channels = 1
    outputs = 10
    optimizer = "adam"
    fixed_seq_len = 64
    # At 1e-3 and 200 steps the LSTM and GRU sat near 0.5; at 3e-3 and 2,000, 0.86-0.89
    # (benchmarks/tune_defaults.py; README, "How the defaults were chosen").
    default_lr = 3e-3
    default_steps = 2000

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ConfigError(
                "the digits task needs scikit-learn: pip install 'seqbench[tasks]'"
            ) from None
        digits = load_digits()
        x = torch.tensor(digits.data / 16.0, dtype=torch.float32).unsqueeze(-1)  # (N, 64, 1)
        y = torch.tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        cut = len(y) // 5
        self.x_eval, self.y_eval = x[order[:cut]], y[order[:cut]]
        self.x_train, self.y_train = x[order[cut:]], y[order[cut:]]


# Keras' conventions for imdb.load_data: 0 pads, 1 starts a review, 2 stands for a word
# outside the vocabulary, and word ranks are shifted by 3.
PAD, START, OOV, INDEX_FROM = 0, 1, 2, 3


def pad_sequences(seqs: list[list[int]], length: int) -> torch.Tensor:
    """Keras' defaults: pad and truncate at the front, so that the end of a review stays."""
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, seq in enumerate(seqs):
        tail = seq[-length:]
        if tail:
            out[i, length - len(tail) :] = torch.tensor(tail, dtype=torch.long)
    return out


def _from_ranks(reviews: np.ndarray, vocab: int) -> list[list[int]]:
    """Keras' imdb.npz holds word frequency ranks; map them as imdb.load_data does."""
    out = []
    for review in reviews:
        ids = [START] + [int(w) + INDEX_FROM for w in review]
        out.append([w if w < vocab else OOV for w in ids])
    return out


def read_imdb_npz(
    path: Path, vocab: int
) -> tuple[list[list[int]], np.ndarray, list[list[int]], np.ndarray]:
    """Keras' imdb.npz. Its reviews are object arrays, which numpy stores pickled: read only
    files you trust. Anything that is not a zip archive is refused before numpy sees it."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path}: cannot read as a Keras imdb.npz (not a zip archive)")
    names = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=True) as data:
            missing = [k for k in names if k not in data.files]
            if missing:
                raise ConfigError(f"{path}: not a Keras imdb.npz (missing array '{missing[0]}')")
            arrays = {k: data[k] for k in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(
            f"{path}: cannot read as a Keras imdb.npz ({type(exc).__name__})"
        ) from None
    try:
        x_train = _from_ranks(arrays["x_train"], vocab)
        x_test = _from_ranks(arrays["x_test"], vocab)
        y_train = np.asarray(arrays["y_train"], dtype=np.int64)
        y_test = np.asarray(arrays["y_test"], dtype=np.int64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{path}: not a Keras imdb.npz (reviews must be lists of word ranks)"
        ) from None
    if (
        len(x_train) != len(y_train)
        or len(x_test) != len(y_test)
        or not len(y_train)
        or not len(y_test)
    ):
        raise ConfigError(f"{path}: not a Keras imdb.npz (reviews and labels do not pair up)")
    if not set(np.unique(np.concatenate([y_train, y_test]))) <= {0, 1}:
        raise ConfigError(f"{path}: not a Keras imdb.npz (labels must be 0 or 1)")
    return x_train, y_train, x_test, y_test


_WORD = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.replace("<br />", " ").lower())


def read_acl_imdb(
    folder: Path, vocab: int
) -> tuple[list[list[int]], np.ndarray, list[list[int]], np.ndarray]:
    """The aclImdb folder (train|test)/(pos|neg)/*.txt; the vocabulary is the training set's
    `vocab - 3` most frequent words, numbered as in Keras' imdb.npz."""
    splits = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, sub in ((1, "pos"), (0, "neg")):
            directory = folder / split / sub
            if not directory.is_dir():
                raise ConfigError(f"{folder}: not an aclImdb folder (no {split}/{sub}/)")
            for file in sorted(directory.glob("*.txt")):
                texts.append(tokenize(file.read_text(encoding="utf-8", errors="replace")))
                labels.append(label)
        if not texts:
            raise ConfigError(f"{folder}: not an aclImdb folder ({split}/ holds no reviews)")
        splits[split] = (texts, np.asarray(labels, dtype=np.int64))
    counts = Counter(w for text in splits["train"][0] for w in text)
    ranks = {w: i + 1 for i, (w, _) in enumerate(counts.most_common())}

    def encode(texts: list[list[str]]) -> list[list[int]]:
        ids = []
        for text in texts:
            row = [START] + [ranks[w] + INDEX_FROM if w in ranks else OOV for w in text]
            ids.append([w if w < vocab else OOV for w in row])
        return ids

    return (
        encode(splits["train"][0]),
        splits["train"][1],
        encode(splits["test"][0]),
        splits["test"][1],
    )


class ImdbTask(_Classification):
    """The seed's sentiment task: IMDB reviews as token ids (vocabulary `--vocab`, padded or
    truncated to `--seq-len`), from a local Keras `imdb.npz` or an `aclImdb` folder given
    with `--data`. Binary cross-entropy, RMSprop, accuracy on (up to 2,000 of) the test set."""

    name = "imdb"
    summary = "IMDB sentiment from a local imdb.npz or aclImdb folder (--data; accuracy)"
    reads_data = True  # `data` is its dataset; no other task reads one
    inputs = "tokens"
    channels = 0
    outputs = 1
    optimizer = "rmsprop"
    fixed_seq_len = None

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        if not data:
            raise ConfigError(
                "the imdb task reads a local copy: give --data PATH (Keras' imdb.npz or the aclImdb folder); nothing is downloaded"
            )
        path = Path(data)
        if path.is_dir():
            x_train, y_train, x_test, y_test = read_acl_imdb(path, vocab)
        elif path.is_file():
            x_train, y_train, x_test, y_test = read_imdb_npz(path, vocab)
        else:
            raise ConfigError(f"{path}: no such file or folder (--data)")
        self.x_train, self.y_train = pad_sequences(x_train, seq_len), torch.from_numpy(y_train)
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(y_test), generator=gen)[:EVAL_CAP]
        self.x_eval, self.y_eval = (
            pad_sequences(x_test, seq_len)[pick],
            torch.from_numpy(y_test)[pick],
        )
