"""The seam between the front ends and whatever runs the model.

The TUI, the REPL and the CLI talk to an :class:`Engine`: tasks (:mod:`dgterm.engine.tasks`,
:mod:`dgterm.engine.chat`) call ``engine.denoise`` and get the same StepEvents and
RunResult from every implementation; the lens calls ``engine.confidence`` on a remote
one. Two implementations:

- :class:`dgterm.engine.loading.LoadedModel`, the model in this process;
- :class:`dgterm.engine.remote.RemoteEngine`, `dgterm serve` or vLLM at a URL (live
  steps from `dgterm serve`, one frame per canvas from vLLM).

:func:`open_engine` picks one from the settings: ``server`` (``--server``,
``DGTERM_SERVER``, ``server =`` in the config) selects the remote one, with the key
from ``DGTERM_API_KEY`` or ``api_key =`` in the config.
"""

from __future__ import annotations

from typing import Protocol


class Engine(Protocol):
    kind: str  # "local", "dgterm serve", "vLLM"
    name: str  # the model
    canvas_length: int
    vocab_size: int
    eos_ids: list[int]
    pad_id: int
    max_positions: int
    has_chat_template: bool
    live_steps: bool  # a frame per denoising step (else one per canvas)
    has_lens: bool
    tokenizer: object  # what tasks call: __call__, decode, apply_chat_template, ...
    defaults: object  # SamplerParams

    def describe(self) -> str:
        """One line for a status bar: which engine runs and what it can show."""

    def denoise(self, windows, params, *, candidates: int = 1, cancel=None, stop_at_eos: bool = True):
        """Run the windows; a :class:`dgterm.engine.denoise.Run` of StepEvents, then a RunResult."""


def open_engine(settings, download: bool = False) -> Engine:
    """The engine the settings ask for: the remote one at ``settings.server``, else the model loaded here."""
    if settings.server:
        from dgterm.engine.remote import RemoteEngine

        return RemoteEngine(settings.server, settings.api_key or None)
    from dgterm.engine import loading

    return loading.load(settings.model, device=settings.device, dtype=settings.dtype, quant=settings.quant,
                        download=download, allow_offload=settings.allow_offload)
