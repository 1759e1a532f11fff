"""ListOps (Nangia & Bowman 2018, as generated for Long Range Arena, Tay et al. 2021):
nested lists of digits under MAX, MIN, MED and SM (sum modulo 10), the answer a digit.

    [MAX 2 9 [MIN 4 7 ] 0 ]  ->  9

Generated as LRA's `listops.py` generates it: a node is an operator with probability 0.25
(always a digit at the depth limit, 10), an operator takes 2 to 10 arguments, each drawn the
same way; an example is kept when its token count lies strictly between a quarter of
`--seq-len` and `--seq-len` (LRA: between 500 and 2,000). The tokens are those of LRA's
sequences without the parentheses its text form adds around every pair, as S4's and most
later loaders read them: 10 digits, 4 operators and the closing bracket, 15 symbols and a
padding token. Examples are padded at the front, so a causal core's last output has read
the whole expression. MED of an even count is the mean of the middle two, truncated (LRA's
int(np.median)).

A fixed training set (`examples`, 10,000 by default; LRA's has 96,000) and an evaluation set
of 1,000 (LRA's 2,000) are generated once from the seed, with no expression in both.
"""

from __future__ import annotations

import random

import torch

from seqbench.core.errors import ConfigError
from seqbench.tasks.base import set_sizes
from seqbench.tasks.real import _Classification

PAD = 0
DIGIT = 1  # digits 0..9 are tokens 1..10
OPERATOR = 11  # MIN, MAX, MED, SM are tokens 11..14
END = 15
OPERATOR_P = 0.25  # LRA's VALUE_P: a node below the depth limit is an operator this often
EVAL_SIZE = 1000
SEED_OFFSET = 1_000_033  # the generator's own stream, apart from the weights'
SYMBOLS = ["<pad>", *"0123456789", "[MIN", "[MAX", "[MED", "[SM", "]"]


def _median(values: list[int]) -> int:
    s, n = sorted(values), len(values)
    return s[n // 2] if n % 2 else int((s[n // 2 - 1] + s[n // 2]) / 2)


class _TooLong(Exception):
    """An expression grew past the longest length kept: abandoned before it is finished."""


def expression(
    rng: random.Random, depth: int, max_depth: int, max_args: int, out: list[int], limit: int
) -> int:
    """Append a random expression's tokens to `out` and return its value; raise _TooLong as
    soon as `out` reaches `limit` tokens (many trees of the unbounded process are huge:
    finishing them only to reject them made generating 9x slower at T = 64, 4x at 256 and
    1.3x at 1,024, measured on this project's loaded 2-core machine)."""
    if len(out) >= limit:
        raise _TooLong
    if depth >= max_depth or rng.random() > OPERATOR_P:
        value = rng.randrange(10)
        out.append(DIGIT + value)
        return value
    op = rng.randrange(4)
    out.append(OPERATOR + op)
    args = rng.randint(2, max_args)
    values = [expression(rng, depth + 1, max_depth, max_args, out, limit) for _ in range(args)]
    out.append(END)
    return (min(values), max(values), _median(values), sum(values) % 10)[op]


def evaluate_tokens(tokens: list[int]) -> int:
    """The value of a token sequence (padding skipped): an independent reading of the
    generator's output, by a stack, for the tests."""
    stack: list[list[int]] = [[]]
    for token in tokens:
        if token == PAD:
            continue
        if token >= OPERATOR and token != END:
            stack.append([token])
        elif token == END:
            op, *values = stack.pop()
            stack[-1].append(
                (min(values), max(values), _median(values), sum(values) % 10)[op - OPERATOR]
            )
        else:
            stack[-1].append(token - DIGIT)
    (value,) = stack[0]
    return value


class ListOpsTask(_Classification):
    name = "listops"
    summary = (
        "ListOps: the value of nested MAX/MIN/MED/SM lists of digits (accuracy; LRA's generator)"
    )
    inputs = "tokens"
    channels = 0
    outputs = 10
    optimizer = "adam"
    fixed_seq_len = None
    min_seq_len = 16
    vocab_size = len(SYMBOLS)
    default_lr = 1e-3
    default_steps = 2000
    settings = {"depth": 10, "args": 10, "examples": 10_000}

    def __init__(self, **values: int) -> None:
        set_sizes(self, values)
        if self.args < 2:
            raise ConfigError(f"listops: args must be at least 2, got {self.args}")

    def sample(self, rng: random.Random, n: int, seen: set[tuple[int, ...]]) -> tuple[list, list]:
        """`n` expressions whose length lies in (seq_len/4, seq_len), none already in `seen`."""
        shortest, tries, found, answers = self.seq_len // 4, 0, [], []
        while len(found) < n:
            tries += 1
            if tries >= 100_000 and len(found) * 1000 < tries:  # below 0.1% kept
                raise ConfigError(
                    f"listops: almost no expression of depth <= {self.depth} with <= "
                    f"{self.args} arguments is between {shortest} and {self.seq_len} tokens"
                )
            tokens: list[int] = []
            try:
                value = expression(rng, 1, self.depth, self.args, tokens, self.seq_len)
            except _TooLong:
                continue
            key = tuple(tokens)
            if shortest < len(tokens) < self.seq_len and key not in seen:
                seen.add(key)
                found.append(tokens)
                answers.append(value)
        return found, answers

    def _padded(self, expressions: list[list[int]], answers: list[int]):
        x = torch.full((len(expressions), self.seq_len), PAD, dtype=torch.long)
        for i, tokens in enumerate(expressions):
            x[i, self.seq_len - len(tokens) :] = torch.tensor(tokens)
        return x, torch.tensor(answers, dtype=torch.long)

    def prepare(self, seq_len: int, vocab: int, seed: int, data: str | None) -> None:
        if seq_len < self.min_seq_len:
            raise ConfigError(f"the listops task needs seq_len >= {self.min_seq_len}")
        self.seq_len = seq_len
        rng, seen = random.Random(seed + SEED_OFFSET), set()
        self.x_eval, self.y_eval = self._padded(*self.sample(rng, EVAL_SIZE, seen))
        self.x_train, self.y_train = self._padded(*self.sample(rng, self.examples, seen))
