"""A task: the windows of one or more plans run as one batch of candidates, then finished,
scored, checked and ranked. The plans are :mod:`continuation`'s and :mod:`infill`'s; a plan
says which windows to run, where its drafts live (``layout``) and what it needs to fit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from dgterm.engine.events import RunResult, StepEvent, Window, seeds_for
from dgterm.engine.output.frames import DraftToken, Layout, build_frame, step_record
from dgterm.engine.output.tokens import token_text
from dgterm.engine.params import SamplerParams

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine


class Verdict(Protocol):
    """What a checker says of a text (:class:`dgterm.editor.structure.Verdict`)."""

    @property
    def valid(self) -> bool: ...

    @property
    def reason(self) -> str: ...


Check = Callable[[str], Verdict]  # the new text -> whether it parses
SpanCheck = Callable[[str, list[str]], Verdict]  # (the new text, each span's new text) -> valid or not
# Every run scores under the same noise draws, so the same text in the same context scores the
# same whatever the run's seed (common random numbers across runs as well as across candidates).
SCORE_SEED = 0
Finish = Callable[[Any, list[torch.Tensor]], "Candidate"]  # (plan, a row's final canvases) -> its candidate


class Plan(Protocol):
    """What a task needs from a plan (ContinuePlan, InfillPlan)."""

    @property
    def context_tokens(self) -> int:
        """Tokens the encoder holds before the first canvas (what memory must fit)."""

    def windows(self) -> Iterator[Window]: ...

    def check_fits(self, lm: Engine) -> None:
        """Raise an InputError when the model cannot take this plan."""

    def layout(self, plans: Sequence[Any], candidates: int) -> Layout:
        """Where the drafts of ``plans`` (this one and its length-search siblings, of its kind) live."""


@dataclass(frozen=True)
class SpanRequest:
    start: int  # character offsets into the text, end exclusive
    end: int
    length: int | None = None  # tokens wanted; None: as many as the span has now


@dataclass
class Candidate:
    text: str  # the whole new text (infill, rewrite) or the generated text (continue)
    spans: list[str]  # the new text of each span (infill), or [answer] (rewrite, continue)
    score: float  # the model's mean log-likelihood per generated token, both sides given (<= 0, higher is likelier)
    lengths: list[int]
    seed: int
    thinking: str | None = None
    entropy: float = 0.0  # mean entropy of the free positions at the last step (breaks ties: lower is surer)
    valid: bool | None = None  # the document with this candidate in it parses (None: no checker for its kind)
    reason: str = ""  # the parser's one line when not valid
    score_se: float = 0.0  # the score's standard error over its noise draws: closer than this is a tie
    row: int = 0  # its batch row in its round's run
    round: int = 0  # the round of drawing it came from (until_valid)


def around(check: Check | None, text: str, spans: Sequence[SpanRequest]) -> SpanCheck | None:
    """``check`` bound to the spans of ``text`` a task rewrites: a checker with ``around``
    (:class:`dgterm.editor.structure.Checker`) also asks each span to hold what it held
    (an expression, an element, a value); a plain one parses the whole new text."""
    if check is None:
        return None
    bind = getattr(check, "around", None)
    if bind is not None:
        return bind(text, [(s.start, s.end) for s in spans])
    return lambda new, _spans: check(new)


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: valid before invalid (unknown counts as valid), then likelier, then surer."""
    return sorted(candidates, key=lambda c: (c.valid is False, -c.score, c.entropy))


@dataclass
class TaskResult:
    candidates: list[Candidate]  # ranked, best first
    run: RunResult

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


class Task:
    """Iterate for StepEvents; then ``result`` holds the ranked candidates."""

    round = 0  # the round of drawing its events belong to: a task is one round (UntilValid counts them)

    def __init__(self, lm: Engine, plans: Sequence[Plan], params: SamplerParams, candidates: int,
                 cancel: threading.Event | None, stop_at_eos: bool, finish: Finish,
                 check: SpanCheck | None = None):
        self.lm, self.plans, self.params = lm, plans, params
        _check_size(lm, plans, candidates, params.mode)
        self.seeds = seeds_for(params, len(plans) * candidates)
        batch_plan = _batch_windows(plans, candidates)
        self._run = lm.denoise(batch_plan, params.replace(seed=self.seeds[0]), candidates=len(plans) * candidates,
                               cancel=cancel, stop_at_eos=stop_at_eos)
        self._finish = finish
        self._check = check
        self._stop_at_eos = stop_at_eos
        self._candidates = candidates
        self.result: TaskResult | None = None
        self.last: dict[int, StepEvent] = {}  # last event of each window
        self._finals: dict[int, Mapping[str, Any]] = {}  # step records of the windows before the current one

    def __iter__(self) -> Iterator[StepEvent]:
        for event in self._run:
            self.last[event.window] = event
            yield event
        run = self._run.result
        assert run is not None  # the steps return it when they end
        if run.cancelled:
            self.result = TaskResult([], run)
            return
        entropies = self._entropies(run)
        windows = list(_batch_windows(self.plans, self._candidates))
        scores = self.lm.score_run(windows, run, skip_pad=self._stop_at_eos, seed=SCORE_SEED)
        out = []
        for row, canvases in enumerate(_rows(run)):
            plan = self.plans[row // self._candidates]
            cand = self._finish(plan, canvases)
            cand.score, cand.entropy = float(scores[row]), entropies[row]
            cand.score_se = getattr(scores[row], "se", 0.0)  # a local Score carries it; a remote one may not
            cand.seed, cand.row, cand.round = self.seeds[row], row, self.round
            if self._check is not None:
                verdict = self._check(cand.text, cand.spans)
                cand.valid, cand.reason = verdict.valid, verdict.reason
            out.append(cand)
        self.result = TaskResult(rank(out), run)

    def collect(self) -> TaskResult:
        for _ in self:
            pass
        assert self.result is not None  # set when the run ends
        return self.result

    def _entropies(self, run: RunResult) -> list[float]:
        rows = run.forwards.shape[0]
        totals = torch.zeros(rows)
        for ev in self.last.values():
            free = ev.free.cpu()
            ent = ev.entropy.float().cpu()
            totals += (ent * free).sum(-1) / free.sum(-1).clamp(min=1)
        return (totals / max(len(self.last), 1)).tolist()

    @property
    def layout(self) -> Layout:
        """Where the drafts live in the canvases: the generated stream, or each span's slots."""
        return self.plans[0].layout(self.plans, self._candidates)

    def drafts(self, event: StepEvent, row: int = 0) -> list[list[DraftToken]]:
        """The live draft of each span (infill) or of the generated text, as coloured tokens
        (:mod:`dgterm.engine.output.frames` renders them). Safe to call from another thread than the
        one iterating (the dict copy is atomic)."""
        last = dict(self.last)
        for w in last.keys() - self._finals.keys():
            if w < event.window:  # a window's last event is final once a later one runs
                self._finals[w] = step_record(last[w])
        finals = {w: r for w, r in self._finals.items() if w < event.window}
        return build_frame(step_record(event), self.layout, finals, token_text(self.lm.tokenizer)).drafts[row]


def _check_size(lm: Engine, plans: Sequence[Plan], candidates: int, sampler: str) -> None:
    """A prompt the model cannot take, or more candidates than memory holds, is one sentence
    before anything is allocated."""
    plans[0].check_fits(lm)
    lm.check_run_fits(len(plans) * candidates, max(p.context_tokens for p in plans) + lm.canvas_length, sampler)


def _rows(run: RunResult) -> list[list[torch.Tensor]]:
    """Per batch row: the list of final canvases (one per window)."""
    return [[c[row] for c in run.canvases] for row in range(run.forwards.shape[0])]


def _batch_windows(plans: Sequence[Plan], candidates: int) -> Iterator[Window]:
    """Merge the windows of several plans (length search) into batched windows."""
    if len(plans) == 1:
        yield from plans[0].windows()
        return
    for group in zip(*(p.windows() for p in plans)):
        known = torch.stack([w.known for w in group for _ in range(candidates)])
        pinned = torch.stack([w.pinned for w in group for _ in range(candidates)])
        yield Window(group[0].prefix, known, pinned, allowed=group[0].allowed)  # same layout, same healed edges


