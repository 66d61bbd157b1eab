"""Infill: rewrite spans of a text from both sides.

Every character outside the spans is kept byte for byte: the document is cut at the span
edges and each piece is tokenized on its own (so no token ever straddles an edge), the spans
become free canvas positions among pinned known tokens, and the result is the original text
with only the span ranges replaced by decoded drafts. Each span's left edge is *token
healed* (:mod:`dgterm.engine.tasks.healing`) where the engine can restrict a position's ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from dgterm.engine.events import Window
from dgterm.engine.output.frames import Layout
from dgterm.engine.output.tokens import decode, token_text
from dgterm.engine.params import CHARS_PER_TOKEN_BOUND, DEFAULT_INSERT_TOKENS, SamplerParams
from dgterm.engine.tasks.healing import heal_edge, unheal
from dgterm.engine.tasks.task import Candidate, Check, SpanRequest, Task, around
from dgterm.errors import InputError

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine


@dataclass
class InfillPlan:
    text: str
    spans: list[SpanRequest]
    lengths: list[int]
    seq: list[int]  # token ids of the region, free slots hold pad
    free: list[bool]
    slots: list[list[int]]  # per span: indices into seq
    starts: list[int]  # start index (into seq) of each window
    canvas_length: int
    pad_id: int
    max_context: int
    healed: list[str] = field(default_factory=list)  # per span: the healed prefix its first token starts with
    allowed: dict[int, list[int]] = field(default_factory=dict)  # seq index -> the only ids it may take
    _windows: list[Window] = field(default_factory=list)

    @property
    def context_tokens(self) -> int:
        return self.max_context

    def check_fits(self, lm: Engine) -> None:
        """Every window was laid out for the model's canvas; the context is cut to fit."""

    def layout(self, plans: Sequence[InfillPlan], candidates: int) -> Layout:
        slots = [[[plan.locate(i) for i in span] for span in plan.slots] for plan in plans]
        return Layout("spans", self.canvas_length, candidates, slots, [plan.healed for plan in plans])

    def windows(self) -> Iterator[Window]:
        if not self._windows:
            self._windows = list(self._build_windows())
        return iter(self._windows)

    def _build_windows(self):
        C, prev_end = self.canvas_length, 0
        for i, ws in enumerate(self.starts):
            prefix = self.seq[prev_end:ws]
            if i == 0:
                prefix = prefix[-self.max_context:]
            ids = self.seq[ws : ws + C]
            free = self.free[ws : ws + C]
            pad = C - len(ids)
            known = torch.tensor(ids + [self.pad_id] * pad)
            pinned = ~torch.tensor(free + [False] * pad)
            allowed = {i - ws: a for i, a in self.allowed.items() if ws <= i < ws + C}
            yield Window(prefix, known, pinned, allowed=allowed)
            prev_end = ws + C

    def locate(self, index: int) -> tuple[int, int]:
        """(window, canvas position) of a seq index."""
        for w in range(len(self.starts) - 1, -1, -1):
            if index >= self.starts[w]:
                return w, index - self.starts[w]
        raise IndexError(index)

    def span_ids(self, canvases, span: int) -> list[int]:
        return [int(canvases[w][p]) for w, p in map(self.locate, self.slots[span])]

    def span_text(self, tokenizer, canvases, span: int) -> str:
        """The new text of a span: its decoded draft, less the healed prefix."""
        return unheal(decode(tokenizer, self.span_ids(canvases, span)), self.healed[span])


def plan_infill(lm: Engine, text: str, spans: list[SpanRequest], max_context: int = 1024, margin: int | None = None,
                heal_edges: bool = True) -> InfillPlan:
    """Tokenize around the spans and lay the canvases out (healing the spans' left edges
    unless ``heal_edges`` is false)."""
    spans = check_spans(text, spans, lm.canvas_length)
    tok = lm.tokenizer
    heal_edges = heal_edges and lm.can_restrict
    C = lm.canvas_length
    margin = min(16, C // 8) if margin is None else margin

    def ids(s: str) -> list[int]:
        return tok(s, add_special_tokens=False)["input_ids"] if s else []

    first, last = spans[0], spans[-1]
    head_from = max(0, first.start - max_context * CHARS_PER_TOKEN_BOUND)
    tail_to = last.end + C * CHARS_PER_TOKEN_BOUND
    seq, free, slots, lengths, healed, allowed = [], [], [], [], [], {}
    if head_from == 0:
        seq.append(tok.bos_token_id)
        free.append(False)
    cursor = head_from
    for span in spans:
        n = span.length if span.length is not None else (len(ids(text[span.start : span.end])) or DEFAULT_INSERT_TOKENS)
        if n > C:
            raise InputError(f"A span of {n} tokens does not fit the model's {C}-token canvas; mark a shorter span.")
        before, prefix, options = heal_edge(tok, text[cursor : span.start], heal_edges and n > 0)
        seq += before
        free += [False] * len(before)
        if prefix:
            allowed[len(seq)] = options
        healed.append(prefix)
        slots.append(list(range(len(seq), len(seq) + n)))
        lengths.append(n)
        seq += [lm.pad_id] * n
        free += [True] * n
        cursor = span.end
    after = ids(text[cursor:tail_to])
    seq += after
    free += [False] * len(after)
    if tail_to >= len(text) and lm.eos_ids:
        seq.append(lm.eos_ids[0])
        free.append(False)
    starts = window_starts(tok, seq, free, C, margin)
    return InfillPlan(text, spans, lengths, seq, free, slots, starts, C, lm.pad_id, max_context, healed, allowed)


def window_starts(tok, seq: list[int], free: list[bool], canvas_length: int, margin: int) -> list[int]:
    """Where each canvas starts in ``seq``: ``margin`` known tokens before the first free
    position it has not yet covered, on a whole character, at least one token (BOS) left to
    the encoder."""
    starts, end = [], 1
    raw = token_text(tok).raw
    for i in (i for i, f in enumerate(free) if f):
        if i >= end:
            ws = max(end, i - margin)
            while ws > end and raw(seq[ws])[:1] and raw(seq[ws])[0] & 0xC0 == 0x80:
                ws -= 1  # a canvas starts on a whole character, not on the rest of one split over tokens
            starts.append(ws)
            end = ws + canvas_length
    return starts


def check_spans(text: str, spans: list[SpanRequest], canvas_length: int | None = None) -> list[SpanRequest]:
    """Sort spans; refuse empty text, out-of-range or overlapping spans (and, given the
    canvas length, lengths that do not fit it)."""
    if not spans:
        raise InputError("No span given; mark at least one span (START:END character offsets).")
    spans = sorted(spans, key=lambda s: (s.start, s.end))
    for s in spans:
        if s.start > s.end:
            raise InputError(f"Span {s.start}:{s.end} ends before it starts; give START:END with START <= END.")
        if not 0 <= s.start <= s.end <= len(text):
            raise InputError(f"Span {s.start}:{s.end} is outside the text (0:{len(text)}); give offsets inside it.")
        if s.length is not None and s.length < 0:
            raise InputError(f"Span length {s.length} is negative; give a number of tokens, 0 or more.")
        if s.length is not None and canvas_length is not None and s.length > canvas_length:
            raise InputError(f"Span length {s.length} must be between 0 and the canvas length {canvas_length}.")
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end:
            raise InputError(f"Spans {a.start}:{a.end} and {b.start}:{b.end} overlap; give disjoint spans.")
    return spans


def infill(lm: Engine, text: str, spans: list[SpanRequest], params: SamplerParams | None = None, *,
           candidates: int = 1, lengths: list[int] | None = None, cancel: threading.Event | None = None,
           max_context: int = 1024, heal_edges: bool = True, check: Check | None = None) -> Task:
    """Rewrite the spans of ``text`` from both sides. ``lengths`` (one span only) runs a
    length search: one plan per length in one batch. ``check`` (the new text ->
    ``structure.Verdict``; a ``structure.Checker`` also asks each span to hold what it held) marks each
    candidate valid or not, and valid ones rank first.
    ``heal_edges`` false turns token healing off (to measure it)."""
    params = params or lm.defaults
    if lengths:
        if len(spans) != 1:
            raise InputError("A length search works on one span; mark a single span.")
        plans = [plan_infill(lm, text, [SpanRequest(spans[0].start, spans[0].end, n)], max_context,
                             heal_edges=heal_edges)
                 for n in lengths]
        if len({len(p.starts) for p in plans}) != 1 or len({tuple(p.windows().__next__().prefix) for p in plans}) != 1:
            raise InputError("These lengths lay the canvas out differently; search fewer or shorter lengths.")
        if len(plans[0].starts) != 1:
            raise InputError("A length search needs the span to fit one canvas; mark a shorter span.")
    else:
        plans = [plan_infill(lm, text, spans, max_context, heal_edges=heal_edges)]
    tok = lm.tokenizer

    def finish(plan: InfillPlan, canvases: list[torch.Tensor]) -> Candidate:
        pieces, new, cursor = [], [], 0
        for i, span in enumerate(plan.spans):
            draft = plan.span_text(tok, canvases, i)
            new.append(draft)
            pieces += [text[cursor : span.start], draft]
            cursor = span.end
        pieces.append(text[cursor:])
        return Candidate(text="".join(pieces), spans=new, score=0.0, lengths=list(plan.lengths), seed=0)

    return Task(lm, plans, params, candidates, cancel, False, finish, around(check, text, spans))
