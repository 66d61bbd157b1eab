"""Refine: re-noise only the tokens of a span the model doubts and draw them again, with
every other token of the span and the text on both sides pinned.

The contract the front ends (editor, CLI, REPL, server clients) build on:

- :func:`plan_refine` ``(engine, text, start, end, below=DEFAULT_REFINE_BELOW, lens=None)`` ->
  :class:`RefinePlan`. ``text[start:end]`` (character offsets into ``text``, end exclusive, not
  empty) is tokenized on its own, as the lens tokenizes a region: these are the span's *canvas
  tokens*. A character split over several byte tokens is one :class:`RefineToken` (its pieces
  are kept or re-noised together, its ``prob`` the lowest of theirs), so a redraw never leaves
  half a character. ``lens``: what ``engine.confidence(text, start, end)`` returned, when the
  caller has it (the editor's doubt view); None, or a lens that does not line up with these
  tokens, makes the plan ask the engine. ``plan.tokens`` tiles the span in order (``start``,
  ``end`` into ``text``; ``renoise`` is ``prob < below``); ``plan.kept`` and ``plan.renoised``
  split them; ``plan.runs`` gives the (start, end) in ``text`` of each run of consecutive
  re-noised tokens.
- :func:`refine` ``(engine, text, start, end, params=None, *, below=..., lens=None, plan=None,
  candidates=1, cancel=None, check=None)`` -> a :class:`~dgterm.engine.tasks.task.Task`, run
  like an infill: iterate it for StepEvents (one per step on engines with ``live_steps``);
  ``task.layout`` is a ``spans`` layout whose spans are ``plan.runs`` in order, so
  ``Task.drafts``, traces and the editor's frames show each run's live draft; ``collect()`` gives
  ranked Candidates whose ``text`` is ``text`` with only the runs replaced (``spans[i]`` the new
  text of run i, ``lengths[i]`` its tokens). Every character outside the runs is the
  original's, byte for byte. Bytes that do not make whole characters are dropped from a run
  (:func:`~dgterm.engine.output.tokens.decode`, through a server too).
- Errors are :class:`~dgterm.errors.InputError` (one sentence): an empty or out-of-range span,
  a threshold outside 0..1 (:func:`check_threshold`), and :class:`NothingToRefine` when no
  token is under ``below``.
- ``plan.placed(candidate)``: the (start, end) of each run in that candidate's text.

Refining again (with a new lens of the new text) is a new plan; nothing is kept between them.
"""

from __future__ import annotations

import codecs
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dgterm.engine.output.tokens import decode, token_text
from dgterm.engine.params import CHARS_PER_TOKEN_BOUND, DEFAULT_REFINE_BELOW, SamplerParams
from dgterm.engine.tasks.infill import InfillPlan, check_spans, window_starts
from dgterm.engine.tasks.lens import LensToken
from dgterm.engine.tasks.task import Candidate, Check, SpanRequest, Task, around
from dgterm.errors import InputError

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine


class NothingToRefine(InputError):
    """No token of the span is under the threshold."""


@dataclass(frozen=True)
class RefineToken:
    start: int  # character offsets into the text, end exclusive
    end: int
    text: str
    prob: float  # the lens's probability that the model keeps it (lowest of its pieces)
    renoise: bool  # prob < the plan's threshold
    ids: tuple[int, ...]  # its canvas ids (more than one: a character split over byte tokens)


@dataclass
class RefinePlan:
    text: str
    start: int
    end: int
    below: float
    tokens: list[RefineToken]
    canvas: InfillPlan  # the layout: each run of re-noised tokens a span of free positions among pinned ones

    @property
    def kept(self) -> list[RefineToken]:
        return [t for t in self.tokens if not t.renoise]

    @property
    def renoised(self) -> list[RefineToken]:
        return [t for t in self.tokens if t.renoise]

    @property
    def runs(self) -> list[tuple[int, int]]:
        return [(s.start, s.end) for s in self.canvas.spans]

    def placed(self, candidate: Candidate) -> list[tuple[int, int]]:
        """Where each run landed in ``candidate.text``."""
        out, shift = [], 0
        for (a, b), new in zip(self.runs, candidate.spans):
            out.append((a + shift, a + shift + len(new)))
            shift += len(new) - (b - a)
        return out


def plan_refine(lm: Engine, text: str, start: int, end: int, below: float = DEFAULT_REFINE_BELOW,
                lens: Sequence[LensToken] | None = None, max_context: int = 1024) -> RefinePlan:
    """Which tokens of ``text[start:end]`` are kept and which re-noised, and the canvases that do it."""
    below = check_threshold(below)
    check_spans(text, [SpanRequest(start, end)])
    if start == end:
        raise InputError("The span to refine is empty; mark the text to refine.")
    tok = lm.tokenizer
    enc = tok(text[start:end], add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [(start + a, start + b) for a, b in enc["offset_mapping"]]
    probs = _probs(lm, text, start, end, offsets, lens)
    tokens = []
    for (a, b), group in _characters(tok, text, start, end, ids, offsets):
        prob = min(probs[i] for i in group)
        tokens.append(RefineToken(a, b, text[a:b], prob, prob < below, tuple(ids[i] for i in group)))
    C = lm.canvas_length
    head_from = max(0, start - max_context * CHARS_PER_TOKEN_BOUND)
    seq = ([tok.bos_token_id] if head_from == 0 else []) + _ids(tok, text[head_from:start])
    free = [False] * len(seq)
    spans, slots = [], []
    for renoise, group in itertools.groupby(tokens, key=lambda t: t.renoise):
        run = list(group)
        n = sum(len(t.ids) for t in run)
        if renoise:
            spans.append(SpanRequest(run[0].start, run[-1].end, n))
            slots.append(list(range(len(seq), len(seq) + n)))
            seq += [lm.pad_id] * n
        else:
            seq += [i for t in run for i in t.ids]
        free += [renoise] * n
    tail_to = end + C * CHARS_PER_TOKEN_BOUND
    after = _ids(tok, text[end:tail_to])
    seq += after + (lm.eos_ids[:1] if tail_to >= len(text) else [])
    free += [False] * (len(seq) - len(free))
    starts = window_starts(tok, seq, free, C, min(16, C // 8))
    canvas = InfillPlan(text, spans, [s.length or 0 for s in spans], seq, free, slots, starts, C, lm.pad_id,
                        max_context, [""] * len(spans))
    return RefinePlan(text, start, end, below, tokens, canvas)


def check_threshold(below: float) -> float:
    """``below`` if it is a probability, else an InputError."""
    if isinstance(below, bool) or not isinstance(below, (int, float)) or not 0 <= below <= 1:
        raise InputError(f"The refine threshold must be a probability between 0 and 1, not {below!r}.")
    return float(below)


def refine(lm: Engine, text: str, start: int, end: int, params: SamplerParams | None = None, *,
           below: float = DEFAULT_REFINE_BELOW, lens: Sequence[LensToken] | None = None,
           plan: RefinePlan | None = None, candidates: int = 1, cancel: threading.Event | None = None,
           check: Check | None = None) -> Task:
    """Draw the doubted tokens of ``text[start:end]`` again (``plan``: one made already by
    :func:`plan_refine` for this text and span); ``check`` as for infill."""
    plan = plan or plan_refine(lm, text, start, end, below, lens)
    if not plan.canvas.spans:
        raise NothingToRefine(f"No token of the span is under the threshold {plan.below:g}; "
                              "raise it to refine more.")

    def finish(canvas: InfillPlan, canvases: list[torch.Tensor]) -> Candidate:
        pieces, new, cursor = [], [], 0
        for i, span in enumerate(canvas.spans):
            new.append(decode(lm.tokenizer, canvas.span_ids(canvases, i)))  # half a character is dropped
            pieces += [text[cursor : span.start], new[-1]]
            cursor = span.end
        pieces.append(text[cursor:])
        return Candidate(text="".join(pieces), spans=new, score=0.0, lengths=list(canvas.lengths), seed=0)

    return Task(lm, [plan.canvas], params or lm.defaults, candidates, cancel, False, finish,
                around(check, text, plan.canvas.spans))


def _ids(tok, s: str) -> list[int]:
    return tok(s, add_special_tokens=False)["input_ids"] if s else []


def _probs(lm: Engine, text: str, start: int, end: int, offsets: list[tuple[int, int]],
           lens: Sequence[LensToken] | None) -> list[float]:
    """Each canvas token's confidence: from ``lens`` when its tokens are these, else asked for."""
    if lens is not None:
        inside = [t for t in lens if start <= t.start and t.end <= end]
        if [(t.start, t.end) for t in inside] == offsets:
            return [t.prob for t in inside]
    fresh = lm.confidence(text, start, end)
    if len(fresh) != len(offsets):
        raise InputError("The confidence lens did not score every token of the span; refine again.")
    return [t.prob for t in fresh]


def _characters(tok, text: str, start: int, end: int, ids: list[int], offsets: list[tuple[int, int]]):
    """The canvas tokens grouped into whole characters: ((start, end), [token indices]) tiling
    ``text[start:end]``. From the tokens' bytes where they spell the span exactly, else from
    the tokenizer's offsets (a token that begins inside the previous one's characters joins it)."""
    raw = token_text(tok).raw
    groups: list[list[int]] = []
    if b"".join(raw(i) for i in ids) == text[start:end].encode("utf-8", "surrogatepass"):
        decoder, bounds, at = codecs.getincrementaldecoder("utf-8")(), [start], start
        current: list[int] = []
        for k, i in enumerate(ids):
            current.append(k)
            at += len(decoder.decode(raw(i)))
            if decoder.getstate()[0] == b"":  # no character left half done
                groups.append(current)
                bounds.append(at)
                current = []
        if current:
            groups.append(current)
            bounds.append(end)
    else:
        bounds, reach = [start], start
        for k, (a, b) in enumerate(offsets):
            if groups and (a < reach or a == b):
                groups[-1].append(k)
            else:
                groups.append([k])
                if len(groups) > 1:
                    bounds.append(max(a, bounds[-1]))
            reach = max(reach, b)
        bounds.append(end)
    return [((bounds[g], bounds[g + 1]), group) for g, group in enumerate(groups)]
