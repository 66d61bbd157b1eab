"""The seam between the front ends and whatever runs the model.

The TUI, the REPL, the CLI and the server's clients talk to an :class:`Engine`: tasks
(:mod:`dgterm.engine.tasks`) call ``engine.denoise`` and get the same StepEvents and
RunResult from every implementation. Two implementations:

- :class:`dgterm.engine.local.loading.LoadedModel`, the model in this process;
- :class:`dgterm.engine.remote.client.RemoteEngine`, `dgterm serve` or vLLM at a URL (live
  steps from `dgterm serve`, one frame per canvas from vLLM).

What differs between them is said by capability flags (``live_steps``, ``can_restrict``)
and by the methods themselves (vLLM scores 0, a remote engine leaves memory to its server),
never by asking which one it is.

``EngineArgs.load`` (:mod:`dgterm.engine.args`) picks one from the settings. This module
imports neither, so every engine may name the protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from dgterm.engine.events import Run, RunResult, Window
    from dgterm.engine.params import SamplerParams
    from dgterm.engine.tasks.lens import LensToken


@runtime_checkable
class Engine(Protocol):
    """What every engine offers the front ends. The data members are read-only properties:
    an engine may compute them (the local one reads its model's config) or set them once."""

    @property
    def name(self) -> str: ...  # the model

    @property
    def canvas_length(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_ids(self) -> list[int]: ...

    @property
    def pad_id(self) -> int: ...

    @property
    def max_positions(self) -> int: ...

    @property
    def has_chat_template(self) -> bool: ...

    @property
    def live_steps(self) -> bool: ...  # a frame per denoising step (else one per canvas)

    @property
    def can_restrict(self) -> bool: ...  # a canvas position can be held to given ids (token healing at span edges)

    @property
    def tokenizer(self) -> Any: ...  # what tasks call: __call__, decode, apply_chat_template, ...

    @property
    def defaults(self) -> SamplerParams: ...

    @property
    def device(self) -> str: ...  # where it runs: a torch device name, or "<server> at <host>"

    @property
    def dtype(self) -> torch.dtype | str: ...  # a torch dtype here, "remote" elsewhere

    @property
    def quant(self) -> str: ...

    @property
    def load_seconds(self) -> float: ...

    def describe(self) -> str:
        """One line for a status bar: which engine runs and what it can show."""

    def summary(self) -> str:
        """One line after loading: the model, its size and where it runs."""

    def parameters(self) -> int:
        """Weights of the model in this process (0 for one that runs elsewhere)."""

    def denoise(self, windows: Iterable[Window], params: SamplerParams, *, candidates: int = 1,
                cancel: threading.Event | None = None, stop_at_eos: bool = True) -> Run:
        """Run the windows; a :class:`dgterm.engine.events.Run` of StepEvents, then a RunResult."""

    def confidence(self, text: str, start: int = 0, end: int | None = None, *, stride: int = 8, batch: int = 8,
                   max_context: int = 512, seed: int = 0,
                   cancel: threading.Event | None = None) -> list[LensToken]:
        """The confidence lens: each token of ``text[start:end]`` with the probability the model keeps it."""

    def score_run(self, windows: list[Window], run: RunResult, *, skip_pad: bool, seed: int) -> list[float]:
        """Each row's mean log-likelihood per generated token, both sides given (0 where it cannot say)."""

    def check_run_fits(self, rows: int, tokens: int, sampler: str) -> None:
        """Raise OutOfMemory before a run of ``rows`` x ``tokens`` that cannot fit."""

    def close(self) -> None:
        """Let go of what the engine holds (a connection); it is not used again."""

