"""Recall tasks: what a fixed-size state must choose to keep. Token ids in, generated from a
seed (nothing downloaded), scored by accuracy on the tokens that must be recalled.

- `mqar`, multi-query associative recall (Arora et al. 2023, "Zoology", §3 and its
  `multiquery_ar` generator): key-value pairs, then the keys again at power-law distances
  among filler tokens; at each repeated key the model must answer its value.
- `selective-copy`, selective copying (Gu & Dao 2023, "Mamba", §3.1 and appendix E.1): data
  tokens scattered at random among noise tokens, then as many cue tokens, at which the model
  must reproduce the data tokens in order.
- `induction`, induction heads (Olsson et al. 2022; Gu & Dao 2023, appendix E.1.2): random
  tokens with one trigger token followed by the answer token somewhere; the sequence ends
  with the trigger again, and the model must answer the token that followed it.

A variant sets a task's sizes as an architecture's are set: `mqar(pairs=16,vocab=256)`. The
targets of the tokens that are not scored are IGNORE, which the loss and the metric skip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqbench.core import schema
from seqbench.core.errors import ConfigError
from seqbench.tasks.base import Batch, set_sizes

EVAL_SIZE = 1000
EVAL_SEED_OFFSET = 1_000_003  # as the other generated tasks: a stream training never draws
IGNORE = -100  # a target that is not scored (PyTorch's cross-entropy default ignore_index)


def distinct(n: int, k: int, low: int, high: int, gen: torch.Generator) -> torch.Tensor:
    """(n, k) integers from [low, high), distinct within each row, in random order."""
    return torch.rand(n, high - low, generator=gen).argsort(dim=1)[:, :k] + low


class _Recall:
    """Token ids in, accuracy on the scored targets out; what every recall task shares."""

    inputs = "tokens"
    channels = 0
    metric = "accuracy"
    higher_is_better = schema.higher_is_better(metric)
    optimizer = "adam"
    fixed_seq_len = None
    default_lr = 1e-3
    default_steps = 2000
    # The task's sizes, each a whole number above 0 that a variant may set (`mqar(pairs=16)`).
    settings: dict[str, int] = {}

    vocab: int
    vocab_size: int
    outputs: int
    readout: str

    def __init__(self, **values: int) -> None:
        set_sizes(self, values)
        if self.vocab < 3:
            raise ConfigError(f"{self.name}: vocab must be at least 3, got {self.vocab}")
        # the model reads the task's own tokens and answers one of them
        self.vocab_size = self.outputs = self.vocab

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        if seq_len < self.min_seq_len:
            raise ConfigError(f"the {self.name} task needs seq_len >= {self.min_seq_len}")
        self.seq_len = seq_len
        self._eval = self.generate(
            EVAL_SIZE, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
        )

    def generate(self, n: int, gen: torch.Generator) -> Batch:
        raise NotImplementedError

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.generate(batch_size, generator)

    def eval_set(self) -> Batch:
        return self._eval

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # (B, T, V) and (B, T) per step, or (B, V) and (B,) for one answer per sequence
        return F.cross_entropy(output.float().flatten(0, -2), y.flatten(), ignore_index=IGNORE)

    def evaluate(self, output: torch.Tensor, y: torch.Tensor) -> float:
        scored = y != IGNORE
        return float((output.argmax(dim=-1)[scored] == y[scored]).float().mean())

    def chance(self) -> float:
        """Always answering the token most often right on the evaluation set."""
        targets = self._eval.y[self._eval.y != IGNORE]
        return float(torch.bincount(targets).max()) / len(targets)

    @property
    def min_seq_len(self) -> int:
        raise NotImplementedError


class MqarTask(_Recall):
    """Multi-query associative recall. `pairs` keys from [1, V/2) and values from [V/2, V),
    each example's keys distinct, laid out k v k v ...; the rest of the sequence holds every
    key once more, at even offsets drawn without replacement with weights i^(a-1), a = 0.01
    (Zoology's power law: most queries come soon after the pairs, some far), and random tokens
    elsewhere. The target at a repeated key is its value. The best guess that ignores the
    input answers one value: 2/V in expectation."""

    name = "mqar"
    summary = "multi-query associative recall: answer each repeated key's value (accuracy)"
    readout = "sequence"
    settings = {"pairs": 8, "vocab": 8192}
    POWER = 0.01
    pairs: int

    def __init__(self, **values: int) -> None:
        super().__init__(**values)
        if self.vocab < 2 * self.pairs + 2:
            raise ConfigError(
                f"mqar: vocab {self.vocab} leaves too few keys and values for {self.pairs} "
                f"pairs (it needs vocab >= {2 * self.pairs + 2})"
            )

    @property
    def min_seq_len(self) -> int:
        return 4 * self.pairs  # the pairs, then room for every query at an even offset

    def generate(self, n: int, gen: torch.Generator) -> Batch:
        t, p, half = self.seq_len, self.pairs, self.vocab // 2
        keys = distinct(n, p, 1, half, gen)
        values = distinct(n, p, half, self.vocab, gen)
        x = torch.randint(0, self.vocab, (n, t), generator=gen)
        y = torch.full((n, t), IGNORE, dtype=torch.long)
        x[:, 0 : 2 * p : 2], x[:, 1 : 2 * p : 2] = keys, values
        slots = (t - 2 * p) // 2  # even offsets after the pairs
        weights = torch.arange(1, slots + 1, dtype=torch.float64) ** (self.POWER - 1)
        gaps = torch.multinomial(weights.expand(n, -1), p, replacement=False, generator=gen)
        where = 2 * p + 2 * gaps
        x.scatter_(1, where, keys)
        y.scatter_(1, where, values)
        return Batch(x, y)

    def chance_theory(self) -> float:
        return 1.0 / (self.vocab - self.vocab // 2)


class SelectiveCopyTask(_Recall):
    """Selective copying. Token 0 is noise, token 1 the cue, tokens 2..V-1 data. The first
    T - K positions hold K data tokens at distinct random positions (in order) and noise
    elsewhere; the last K are cues, at which the model must give the data tokens in order.
    Mamba's setting is T = 4096, V = 16, K = 16. The best guess that ignores the input
    answers one data token: 1/(V-2) in expectation."""

    name = "selective-copy"
    summary = "selective copying: repeat the data tokens scattered among noise, in order (accuracy)"
    readout = "sequence"
    settings = {"tokens": 16, "vocab": 16}
    NOISE, CUE = 0, 1
    tokens: int

    @property
    def min_seq_len(self) -> int:
        return 2 * self.tokens

    def generate(self, n: int, gen: torch.Generator) -> Batch:
        t, k = self.seq_len, self.tokens
        data = torch.randint(2, self.vocab, (n, k), generator=gen)
        where = distinct(n, k, 0, t - k, gen).sort(dim=1).values
        x = torch.full((n, t), self.NOISE, dtype=torch.long)
        x.scatter_(1, where, data)
        x[:, t - k :] = self.CUE
        y = torch.full((n, t), IGNORE, dtype=torch.long)
        y[:, t - k :] = data
        return Batch(x, y)

    def chance_theory(self) -> float:
        return 1.0 / (self.vocab - 2)


class InductionTask(_Recall):
    """Induction heads. Token 0 is the trigger, tokens 1..V-1 the others. Random tokens, the
    trigger once at a random position in the first half followed by the answer token, and
    the trigger again at the last position; the model answers from its last output. Mamba's
    setting is V = 16, trained at T = 256 and scored at longer lengths (here 2T, 4T, ... up
    to `extrapolate`·T, on evaluation sets generated at those lengths from the same seed).
    The best guess that ignores the input answers one token: 1/(V-1) in expectation."""

    name = "induction"
    summary = "induction heads: after the trigger's second appearance, give what followed its first"
    readout = "summary"
    # `extrapolate`: scored also at 2, 4, ... up to this many times the training length
    settings = {"vocab": 16, "extrapolate": 16}
    TRIGGER = 0
    extrapolate: int

    def longer_lengths(self, seq_len: int) -> list[int]:
        """The lengths beyond training at which the trained model is scored too."""
        return [seq_len * 2**k for k in range(1, self.extrapolate.bit_length())]

    @property
    def min_seq_len(self) -> int:
        return 4

    def generate(self, n: int, gen: torch.Generator) -> Batch:
        t = self.seq_len
        x = torch.randint(1, self.vocab, (n, t), generator=gen)
        first = torch.randint(0, max(1, (t - 2) // 2), (n,), generator=gen)
        rows = torch.arange(n)
        x[rows, first] = self.TRIGGER
        x[:, -1] = self.TRIGGER
        return Batch(x, x[rows, first + 1].clone())

    def chance_theory(self) -> float:
        return 1.0 / (self.vocab - 1)
