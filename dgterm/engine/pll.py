"""The pseudo-log-likelihood's layout, one for every engine: which generated positions are
hidden together, how many noise draws, the noise itself (the same for every candidate of a
run: common random numbers) and how the draws make a :class:`Score`. The local engine
computes it with its model (:mod:`dgterm.engine.local.scoring`); a remote one reads the
same hidden positions under the same noise from its server, so both give the same score."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dgterm.engine.events import Window

STRIDE = 4  # every STRIDE-th generated position is hidden at once
DRAWS = 4  # at most; a long draft averages over more tokens and needs fewer (TOKEN_DRAWS)
TOKEN_DRAWS = 32  # draws x generated tokens: a standard error of about 0.1 nats on the bundled model


class Score(float):
    """A score (a float, as before) with ``se``: the standard error of its mean over the noise draws."""

    se: float

    def __new__(cls, value: float, se: float = 0.0) -> Score:
        score = super().__new__(cls, value)
        score.se = se
        return score


def draws_for(windows: Sequence[Window], canvas_length: int) -> int:
    """Noise draws for a draft of the windows' generated tokens: ``DRAWS`` for a short span, down
    to 2 (a standard error still needs two) once the tokens average the noise out themselves."""
    tokens = sum(canvas_length if w.pinned is None else int((~w.pinned).sum(-1).min()) for w in windows)
    return min(DRAWS, max(2, -(-TOKEN_DRAWS // max(tokens, 1))))


def free_positions(window: Window, canvas_length: int) -> torch.Tensor:
    """(C,) bool, or (B, C) for a batch whose rows pin different positions (a length search):
    the positions of the window's canvas the run generated."""
    return torch.ones(canvas_length, dtype=torch.bool) if window.pinned is None else ~window.pinned.cpu()


def hidden_groups(free: torch.Tensor, stride: int = STRIDE) -> list[torch.Tensor]:
    """For each offset, a mask like ``free`` of every ``stride``-th free position along the
    canvas (row by row): neighbours land in different groups."""
    rank = free.long().cumsum(-1) - 1
    return [free & (rank % stride == r) for r in range(stride)]


def noise(gen: torch.Generator, draws: int, vocab_size: int, canvas_length: int,
          stride: int = STRIDE) -> torch.Tensor:
    """(draws, stride, C) ids hiding the positions of each group, the same for every row."""
    return torch.randint(0, vocab_size, (draws, stride, canvas_length), generator=gen)


def scores(total: torch.Tensor, count: torch.Tensor) -> list[float]:
    """Each row's Score from ``total`` (draws, B) summed log-probabilities over ``count`` (B,) tokens."""
    draws, rows = total.shape
    means = total / count.clamp(min=1)
    spread = means.std(0) / math.sqrt(draws) if draws > 1 else torch.zeros(rows, dtype=torch.float64)
    return [Score(float(m), float(s)) for m, s in zip(means.mean(0), spread)]
