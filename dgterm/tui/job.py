"""One run the user asked for: what the editor hands the model worker, and what the
review and the messages refer to. Its own module so that none of them imports another."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dgterm.engine.params import SamplerParams

LABELS = {"infill": "infill", "search": "length search", "rewrite": "rewrite", "continue": "continue",
          "lens": "lens", "refine": "refine"}  # what the status bar and the canvas panel call each kind of run


@dataclass(eq=False)
class Job:
    """One run the user asked for. ``spans`` are (start, end, target tokens) in document
    offsets, in document order, matching ``span_ids``."""

    kind: str  # infill | search | rewrite | continue | lens | refine
    text: str
    spans: list = field(default_factory=list)
    span_ids: list = field(default_factory=list)
    params: SamplerParams | None = None
    candidates: int = 1
    instruction: str = ""
    lengths: list | None = None
    trace: str | None = None
    created_span: bool = False  # the UI marked span_ids[0] for this run; unmark it if rejected
    check: Callable | None = None  # new document text -> structure.Verdict, for files of a known kind
    require_valid: int = 0  # infill: draw rounds of candidates until one is valid, at most this many
    thinking: bool = False  # rewrite: the chat template's enable_thinking (--thinking on)
    below: float = 0.0  # refine: the tokens of the span the lens gives less than this are drawn again
    lens: list | None = None  # refine: the lens's LensTokens of the text, when the doubt view has them
    cancel: threading.Event = field(default_factory=threading.Event)
    frames: list = field(default_factory=list)  # every Frame so far; appended by the worker only

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def stream(self) -> bool:
        return self.kind in ("rewrite", "continue")
