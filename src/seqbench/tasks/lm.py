"""Language modelling: predict each next token of text from a source whose entropy is known.

`lm` is the objective a language model trains on (next-token cross-entropy over the whole
vocabulary at every position, through a vocabulary-wide head), with text generated from a
seed: a Markov chain whose next token is one of `branches` fixed successors of the current
one, the k-th taken with probability proportional to 1/k (each successor map a random
permutation of the vocabulary, drawn from the task's seed and the same for every split).
A mixture of permutations leaves every token equally likely at every position, so

- the best guess that reads nothing scores ln V (what `chance` measures on the test set),
- the best model scores the chain's own entropy, `floor`: the mean over tokens of the
  entropy of their successors (those that coincide merged), about 1.2 nats for 4 branches.

A model reads the tokens up to t and is scored on token t + 1, so it must not read ahead:
a cell whose core's output moves with later inputs (a bidirectional core, a user's module
that looks ahead) is skipped with the position it read (`reads_ahead`).

A model with a language-model head of its own (`hf:` types that transformers can build for
causal language modelling) trains and is scored through that head and its own loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqbench.core import schema
from seqbench.core.errors import ConfigError
from seqbench.tasks.base import Batch, set_sizes

EVAL_SIZE = 1000
EVAL_SEED_OFFSET = 1_000_003  # as the other generated tasks: a stream training never draws
SOURCE_SEED_OFFSET = 3_000_017  # the chain itself: apart from every stream of examples


class LanguageModelTask:
    name = "lm"
    summary = "language modelling: next-token cross-entropy on a Markov source of known entropy"
    inputs = "tokens"
    channels = 0
    readout = "sequence"
    metric = "cross_entropy"
    higher_is_better = schema.higher_is_better(metric)
    optimizer = "adam"
    fixed_seq_len = None
    min_seq_len = 2
    default_lr = 3e-3
    default_steps = 600
    settings = {"vocab": 256, "branches": 4}
    language_model = True  # next-token prediction: causal cores only, own heads used

    vocab: int
    branches: int

    def __init__(self, **values: int) -> None:
        set_sizes(self, values)
        if self.vocab < 2:
            raise ConfigError(f"lm: vocab must be at least 2, got {self.vocab}")
        self.vocab_size = self.outputs = self.vocab
        self.weights = torch.tensor([1.0 / k for k in range(1, self.branches + 1)])
        self.weights /= self.weights.sum()

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        self.seq_len = seq_len
        source = torch.Generator().manual_seed(seed + SOURCE_SEED_OFFSET)
        # successors[a, k]: the k-th successor of token a
        self.successors = torch.stack(
            [torch.randperm(self.vocab, generator=source) for _ in range(self.branches)], dim=1
        )
        self.floor = self.entropy_floor()
        self._eval = self.generate(
            EVAL_SIZE, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
        )

    def transition(self) -> torch.Tensor:
        """(V, V) float64: the probability of each next token given the current one."""
        probs = torch.zeros(self.vocab, self.vocab, dtype=torch.float64)
        rows = torch.arange(self.vocab)[:, None].expand(-1, self.branches)
        probs.index_put_(
            (rows, self.successors), self.weights.double().expand(self.vocab, -1), accumulate=True
        )
        return probs

    def entropy_floor(self) -> float:
        """The chain's entropy rate in nats: the cross-entropy of the true next-token law."""
        return float(torch.special.entr(self.transition()).sum(dim=1).mean())

    def generate(self, n: int, gen: torch.Generator) -> Batch:
        """n sequences of T + 1 tokens: the first T in, the last T to predict."""
        tokens = torch.empty(n, self.seq_len + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, self.vocab, (n,), generator=gen)
        picks = torch.multinomial(self.weights, n * self.seq_len, replacement=True, generator=gen)
        picks = picks.view(n, self.seq_len)
        for t in range(self.seq_len):
            tokens[:, t + 1] = self.successors[tokens[:, t], picks[:, t]]
        return Batch(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous())

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.generate(batch_size, generator)

    def eval_set(self) -> Batch:
        return self._eval

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # (B, T, V), (B, T)
        return F.cross_entropy(output.float().flatten(0, 1), y.flatten())

    def evaluate(self, output: torch.Tensor, y: torch.Tensor) -> float:
        return float(self.loss(output, y))

    def chance(self) -> float:
        """The best guess that reads nothing: the test targets' own token frequencies."""
        counts = torch.bincount(self._eval.y.flatten(), minlength=self.vocab).double()
        return float(torch.special.entr(counts / counts.sum()).sum())

    def chance_theory(self) -> float:
        return math.log(self.vocab)
