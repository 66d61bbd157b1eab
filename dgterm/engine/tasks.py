"""What users ask for, turned into windows for the step loop: continue, infill, rewrite.

Infill keeps every character outside the spans byte for byte: the document is cut at
the span edges and each piece is tokenized on its own (so no token ever straddles an
edge), the spans become free canvas positions among pinned known tokens, and the
result is the original text with only the span ranges replaced by decoded drafts.

Each span's left edge is *token healed* (:mod:`dgterm.engine.healing`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from dgterm.engine import scoring
from dgterm.engine.denoise import Window, seeds_for
from dgterm.engine.drafts import DraftToken, Layout, build_frame, step_record
from dgterm.engine.events import RunResult, StepEvent
from dgterm.engine.healing import heal_edge, unheal
from dgterm.engine.params import SamplerParams
from dgterm.engine.tokens import decode, split_thinking, token_text
from dgterm.errors import DgtermError, InputError

DEFAULT_INSERT_TOKENS = 16
CHARS_PER_TOKEN_BOUND = 8  # generous: how many characters of context to tokenize per token wanted


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

    def __init__(self, lm, plans: list[InfillPlan | ContinuePlan], params: SamplerParams, candidates: int, cancel,
                 stop_at_eos: bool, finish, check=None):
        self.lm, self.plans, self.params = lm, plans, params
        _check_size(lm, plans, candidates, params.mode)
        self.seeds = seeds_for(params, candidates)
        batch_plan = _batch_windows(plans, candidates)
        self._run = lm.denoise(batch_plan, params.replace(seed=self.seeds[0]), candidates=len(plans) * candidates,
                               cancel=cancel, stop_at_eos=stop_at_eos)
        self._finish = finish
        self._check = check  # text -> structure.Verdict, or None
        self._stop_at_eos = stop_at_eos
        self._candidates = candidates
        self.result: TaskResult | None = None
        self.last: dict[int, StepEvent] = {}  # last event of each window
        self._finals: dict[int, dict] = {}  # step records of the windows before the current one

    def __iter__(self) -> Iterator[StepEvent]:
        for event in self._run:
            self.last[event.window] = event
            yield event
        run = self._run.result
        if run.cancelled:
            self.result = TaskResult([], run)
            return
        entropies = self._entropies(run)
        windows = list(_batch_windows(self.plans, self._candidates))
        scores = scoring.score_run(self.lm, windows, run, skip_pad=self._stop_at_eos, seed=self.seeds[0])
        out = []
        for row, canvases in enumerate(_rows(run)):
            plan = self.plans[row // self._candidates]
            cand = self._finish(plan, canvases)
            cand.score, cand.entropy = scores[row], entropies[row]
            cand.seed = self.seeds[0] + row
            if self._check is not None:
                verdict = self._check(cand.text)
                cand.valid, cand.reason = verdict.valid, verdict.reason
            out.append(cand)
        self.result = TaskResult(rank(out), run)

    def collect(self) -> TaskResult:
        for _ in self:
            pass
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
        if isinstance(self.plans[0], ContinuePlan):
            return Layout("stream", self.lm.canvas_length, self._candidates)
        slots = [[[plan.locate(i) for i in span] for span in plan.slots] for plan in self.plans]
        return Layout("spans", self.lm.canvas_length, self._candidates, slots, [plan.healed for plan in self.plans])

    def drafts(self, event: StepEvent, row: int = 0) -> list[list[DraftToken]]:
        """The live draft of each span (infill) or of the generated text, as coloured tokens
        (:mod:`dgterm.engine.drafts` renders them). Safe to call from another thread than the
        one iterating (the dict copy is atomic)."""
        last = dict(self.last)
        for w in last.keys() - self._finals.keys():
            if w < event.window:  # a window's last event is final once a later one runs
                self._finals[w] = step_record(last[w])
        finals = {w: r for w, r in self._finals.items() if w < event.window}
        return build_frame(step_record(event), self.layout, finals, token_text(self.lm.tokenizer)).drafts[row]


def _check_size(lm, plans, candidates: int, sampler: str) -> None:
    """A prompt the model cannot take, or more candidates than memory holds (an engine in this
    process), is one sentence before anything is allocated."""
    from dgterm.engine.quant import planner

    most = lm.max_positions
    first = [len(p.prompt) if isinstance(p, ContinuePlan) else p.max_context for p in plans]
    if isinstance(plans[0], ContinuePlan) and first[0] + lm.canvas_length > most:
        raise InputError(f"The prompt is too long ({first[0]} tokens, the model takes {most - lm.canvas_length} "
                         f"besides its {lm.canvas_length}-token canvas); shorten it.")
    if lm.kind == "local":  # a remote engine bounds its own memory
        planner.check_run_fits(lm, len(plans) * candidates, max(first) + lm.canvas_length, sampler)


def _rows(run: RunResult):
    """Per batch row: the list of final canvases (one per window)."""
    return [[c[row] for c in run.canvases] for row in range(run.forwards.shape[0])]


def _batch_windows(plans, candidates):
    """Merge the windows of several plans (length search) into batched windows."""
    if len(plans) == 1:
        yield from plans[0].windows()
        return
    for group in zip(*(p.windows() for p in plans)):
        known = torch.stack([w.known for w in group for _ in range(candidates)])
        pinned = torch.stack([w.pinned for w in group for _ in range(candidates)])
        yield Window(group[0].prefix, known, pinned, allowed=group[0].allowed)  # same layout, same healed edges


# ------------------------------------------------------------------ continue


@dataclass
class ContinuePlan:
    prompt: list[int]
    canvas_length: int
    canvases: int  # at most this many (the run also stops when every candidate hit EOS)

    def windows(self):
        if self.canvases < 1:  # max_length already reached by the prompt, as in generate
            return
        yield Window(self.prompt)
        for _ in range(self.canvases - 1):
            yield Window([])



def continue_text(lm, text: str, params: SamplerParams | None = None, *, candidates: int = 1,
                  cancel: threading.Event | None = None, chat: bool = False, post=None, check=None) -> Task:
    """Generate canvases after ``text`` (or, with ``chat``, answer it as a user turn).
    ``post`` may reshape each finished Candidate (rewrite uses it)."""
    tok = lm.tokenizer
    if chat:
        prompt = render_chat(tok, [{"role": "user", "content": text}])
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    return continue_ids(lm, ids, params, candidates=candidates, cancel=cancel, chat=chat, post=post, check=check)


def render_chat(tokenizer, messages: list[dict]) -> str:
    """The conversation through the checkpoint's chat template; a template that is broken
    or raises is one sentence."""
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except DgtermError:  # a remote engine's own sentence
        raise
    except Exception as e:  # noqa: BLE001 - jinja errors, raise_exception(), bad output types
        raise InputError(f"The model's chat template fails ({type(e).__name__}: {str(e)[:120]}); fix the template "
                         "or use plain mode.") from None


def continue_ids(lm, ids: list[int], params: SamplerParams | None = None, *, candidates: int = 1,
                 cancel: threading.Event | None = None, chat: bool = False, post=None, check=None) -> Task:
    """Generate canvases after the prompt ``ids``; with ``chat`` the answer is split from
    a thinking channel."""
    tok = lm.tokenizer

    def finish(plan, canvases):
        # canvases come whole; the tokens past --max-new-tokens are dropped so it holds exactly
        generated = [int(i) for c in canvases for i in c.tolist()][:params.max_new_tokens]
        answer, thinking = split_thinking(tok, generated) if chat else (decode(tok, generated), None)
        cand = Candidate(text=answer, spans=[answer], score=0.0, lengths=[], seed=0, thinking=thinking)
        return post(cand) if post else cand

    params = params or lm.defaults
    plan = ContinuePlan(ids, lm.canvas_length, params.max_canvases(lm.canvas_length, len(ids)))
    return Task(lm, [plan], params, candidates, cancel, True, finish, check)


# ------------------------------------------------------------------ infill


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

    def windows(self):
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


def plan_infill(lm, text: str, spans: list[SpanRequest], max_context: int = 1024, margin: int | None = None,
                heal_edges: bool = True) -> InfillPlan:
    """Tokenize around the spans and lay the canvases out (healing the spans' left edges
    unless ``heal_edges`` is false)."""
    spans = check_spans(text, spans, lm.canvas_length)
    tok = lm.tokenizer
    heal_edges = heal_edges and lm.kind == "local"  # a remote engine cannot restrict a position's tokens
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
    starts, end = [], 1  # at least one token (BOS) goes to the encoder
    free_at = [i for i, f in enumerate(free) if f]
    raw = token_text(tok).raw
    for i in free_at:
        if i >= end:
            ws = max(end, i - margin)
            while ws > end and raw(seq[ws])[:1] and raw(seq[ws])[0] & 0xC0 == 0x80:
                ws -= 1  # a canvas starts on a whole character, not on the rest of one split over tokens
            starts.append(ws)
            end = ws + C
    return InfillPlan(text, spans, lengths, seq, free, slots, starts, C, lm.pad_id, max_context, healed, allowed)


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


def infill(lm, text: str, spans: list[SpanRequest], params: SamplerParams | None = None, *,
           candidates: int = 1, lengths: list[int] | None = None, cancel: threading.Event | None = None,
           max_context: int = 1024, heal_edges: bool = True, check=None) -> Task:
    """Rewrite the spans of ``text`` from both sides. ``lengths`` (one span only) runs a
    length search: one plan per length in one batch. ``check`` (the new text ->
    ``structure.Verdict``) marks each candidate valid or not, and valid ones rank first.
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

    def finish(plan: InfillPlan, canvases):
        pieces, new, cursor = [], [], 0
        for i, span in enumerate(plan.spans):
            draft = plan.span_text(tok, canvases, i)
            new.append(draft)
            pieces += [text[cursor : span.start], draft]
            cursor = span.end
        pieces.append(text[cursor:])
        return Candidate(text="".join(pieces), spans=new, score=0.0, lengths=list(plan.lengths), seed=0)

    return Task(lm, plans, params, candidates, cancel, False, finish, check)
