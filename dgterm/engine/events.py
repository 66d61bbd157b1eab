"""The contract between the tasks and any engine: the windows a task asks for, the
:class:`Run` an engine returns (a StepEvent per denoising step, then one RunResult) and the
seeds of its candidates. Every engine, local or remote, speaks these types.

Tensors are shared with the running loop, never written to after the event is
yielded, so producing an event costs no copy; consumers convert what they show.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import torch

from dgterm.engine.params import SamplerParams


@dataclass
class StepEvent:
    window: int  # index of the canvas (window) being denoised
    step: int  # 1-based step within this window
    max_steps: int
    canvas: torch.Tensor  # (B, C) ids the next step starts from (accepted + fresh noise)
    argmax: torch.Tensor  # (B, C) most likely ids: the draft
    accepted: torch.Tensor  # (B, C) bool, accepted this step (pinned positions included)
    entropy: torch.Tensor  # (B, C) per-position entropy, 0 at pinned positions
    pinned: torch.Tensor | None  # (B, C) bool, known positions, or None
    finished: torch.Tensor  # (B,) bool, candidate stopped denoising this window
    elapsed: float  # seconds since the run started
    tokens: int = 0  # free tokens decided so far in the run (all windows, first candidate)
    warmup: float = 0.0  # of ``elapsed``, the seconds spent compiling the step (``--compile``, once per shape)

    @property
    def rate(self) -> float:
        """Tokens a second of denoising (the compile warm-up left out)."""
        busy = self.elapsed - self.warmup
        return self.tokens / busy if busy > 0 else 0.0

    @property
    def free(self) -> torch.Tensor:
        return torch.ones_like(self.accepted) if self.pinned is None else ~self.pinned

    def accepted_free(self, candidate: int = 0) -> int:
        return int((self.accepted[candidate] & self.free[candidate]).sum())

    def mean_entropy(self, candidate: int = 0) -> float:
        free = self.free[candidate]
        return float(self.entropy[candidate][free].mean()) if free.any() else 0.0


@dataclass
class RunResult:
    canvases: list[torch.Tensor]  # per window: (B, C) final ids, pins imposed, pad after EOS
    steps: list[int]  # decoder forwards spent on each window
    forwards: torch.Tensor  # (B,) decoder forwards per candidate
    generated: torch.Tensor  # (B,) tokens produced per candidate (free, non-pad)
    elapsed: float
    cancelled: bool = False
    finished_at_eos: torch.Tensor | None = None  # (B,) bool
    windows: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # The encoder cache (a SharedPrefill) and its length when the last canvas was denoised:
    # scoring a one-window run reads it instead of encoding the prompt again; dropped after.
    context: tuple | None = None

    @property
    def tokens_per_forward(self) -> list[float]:
        f = self.forwards.clamp(min=1).to(torch.float32)
        return (self.generated.to(torch.float32) / f).tolist()

    @property
    def busy(self) -> float:
        """Seconds of the run less the compile warm-up: what the rates divide by."""
        return self.elapsed - self.timings.get("warm-up", 0.0)

    @property
    def tokens_per_second(self) -> float:
        return float(self.generated.sum()) / self.busy if self.busy > 0 else 0.0

    def row_rate(self, row: int) -> float:
        """Tokens per second of one candidate (what a front end that shows one draft reports)."""
        return int(self.generated[row]) / self.busy if self.busy > 0 else 0.0


@dataclass
class Window:
    prefix: list[int]  # tokens to encode before this canvas
    known: torch.Tensor | None = None  # (C,) ids of the pinned positions (others ignored)
    pinned: torch.Tensor | None = None  # (C,) bool
    start: torch.Tensor | None = None  # (C,) a seed canvas to start from instead of fresh noise
    allowed: dict[int, list[int]] = field(default_factory=dict)  # canvas position -> the only ids it may take

    def pins(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(pinned, known) of this canvas, or None when no position is pinned."""
        if self.pinned is None:
            return None
        assert self.known is not None, "a window that pins positions gives their ids"
        return self.pinned, self.known


class Run:
    """Iterate for StepEvents; ``result`` holds the RunResult once iteration ends."""

    def __init__(self, steps: Generator[StepEvent, None, RunResult]):
        self._steps = steps
        self.result: RunResult | None = None

    def __iter__(self) -> Iterator[StepEvent]:
        self.result = yield from self._steps

    def collect(self) -> RunResult:
        for _ in self:
            pass
        assert self.result is not None  # the steps return it when they end
        return self.result


def seeds_for(params: SamplerParams, candidates: int) -> list[int]:
    """The seed of each candidate (:func:`candidate_seed`); no seed: a fresh random one."""
    base = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
    return [candidate_seed(base, b) for b in range(candidates)]


def candidate_seed(seed: int, b: int) -> int:
    """Candidate b's seed: the seed itself for the first, a 31-bit hash of (seed, b) for the
    others, so the candidates of neighbouring seeds do not overlap (seed + b made seeds 1..5
    with 4 candidates 8 distinct draws of 20). Stable across runs and platforms; a candidate
    runs alone again from its own seed (it is the first candidate of that seed)."""
    if b == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}:{b}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
