"""What users ask for, turned into windows for the step loop: continue, infill, rewrite.

Infill keeps every character outside the spans byte for byte: the document is cut at
the span edges and each piece is tokenized on its own (so no token ever straddles an
edge), the spans become free canvas positions among pinned known tokens, and the
result is the original text with only the span ranges replaced by decoded drafts.

*Token healing* at each span's left edge: a piece of text cut at a span edge does not
tokenize as it would with words after it (``"\n    "`` is one whitespace token, where
``"\n    return"`` is ``"\n   "`` + ``" return"``), so the model saw such a context
almost never and answered with an extra space. The piece is tokenized with a probe
letter after it instead; the characters that went into the probe's token (the *healed
prefix*, typically that one space) leave the pinned context, and the span's first
position may only take tokens that start with them. The draft then carries those
characters first; they are taken off again, so the text outside the spans is the
original's.
"""

from __future__ import annotations

import bisect
import codecs
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from dgterm.engine import scoring
from dgterm.engine.denoise import Window, seeds_for
from dgterm.engine.events import RunResult, StepEvent
from dgterm.engine.params import SamplerParams
from dgterm.errors import InputError

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


def is_local(lm) -> bool:
    """The model runs in this process (scores and token healing need its forward)."""
    return getattr(lm, "kind", "local") == "local"


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


@dataclass
class DraftToken:
    text: str
    state: str  # "noise" | "tentative" | "accepted"
    entropy: float


class Task:
    """Iterate for StepEvents; then ``result`` holds the ranked candidates."""

    def __init__(self, lm, plans: list[InfillPlan | ContinuePlan], params: SamplerParams, candidates: int, cancel,
                 stop_at_eos: bool, finish, check=None):
        self.lm, self.plans, self.params = lm, plans, params
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
        scores = (scoring.loglik(self.lm, windows, run.canvases, skip_pad=self._stop_at_eos, seed=self.seeds[0])
                  if run.canvases and is_local(self.lm)  # nothing generated, or no model here: no score
                  else [0.0] * len(entropies))
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

    def drafts(self, event: StepEvent, row: int = 0) -> list[list[DraftToken]]:
        """The live draft of each span (infill) or of the generated text, as coloured tokens.
        Safe to call from another thread than the one iterating (the dict copy is atomic)."""
        plan = self.plans[row // self._candidates]
        return plan.drafts(self.lm.tokenizer, event, row, dict(self.last))


class UntilValid:
    """Rounds of a task, drawn until a candidate is valid or ``limit`` candidates have been
    drawn: ``start(params)`` makes one round's Task, and round k runs with seed
    ``seed + k * candidates`` (so every candidate has its own seed). Iterate for the
    StepEvents of every round in turn; ``result`` then ranks all candidates drawn, and
    ``found`` says whether one is valid. ``result.run`` is the last round's run."""

    def __init__(self, start, params: SamplerParams, candidates: int, limit: int):
        self.start, self.candidates, self.limit = start, candidates, max(limit, candidates)
        self.seed = seeds_for(params, 1)[0]
        self.params = params.replace(seed=self.seed)
        self.task = start(self.params)
        self.plans, self.seeds = self.task.plans, self.task.seeds
        self.result: TaskResult | None = None
        self.drawn = 0
        self.round = 0  # the round being drawn

    @property
    def found(self) -> bool:
        return bool(self.result and self.result.candidates and self.result.best.valid is not False)

    def __iter__(self) -> Iterator[StepEvent]:
        drawn: list[Candidate] = []
        while True:
            yield from self.task
            result = self.task.result
            drawn += result.candidates
            self.drawn = len(drawn)
            if result.run.cancelled or any(c.valid is not False for c in result.candidates) \
                    or self.drawn + self.candidates > self.limit:
                break
            self.task = self.start(self.params.replace(seed=self.seed + self.drawn))
            self.round += 1
        self.result = TaskResult(rank(drawn) if not result.run.cancelled else [], result.run)

    def collect(self) -> TaskResult:
        for _ in self:
            pass
        return self.result

    def drafts(self, event: StepEvent, row: int = 0):
        return self.task.drafts(event, row)


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


# ------------------------------------------------------------------ token text


class TokenText:
    """Decoded text of single ids, cached; special tokens read as empty."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        self.cache: dict[int, str] = {}
        self.raw_cache: dict[int, bytes] = {}
        self._by_bytes: list[tuple[bytes, int]] | None = None
        self._starting: dict[bytes, list[int]] = {}
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"

    def __call__(self, token: int) -> str:
        text = self.cache.get(token)
        if text is None:
            text = "" if token in self.special else self.tokenizer.decode([token])
            self.cache[token] = text
        return text

    def raw(self, token: int) -> bytes:
        """The bytes a token stands for: a byte-level token may hold part of a character."""
        data = self.raw_cache.get(token)
        if data is None:
            piece = "" if token in self.special else self.tokenizer.convert_ids_to_tokens(token)
            if self.byte_level and all(c in BYTE_LEVEL for c in piece):
                data = bytes(BYTE_LEVEL[c] for c in piece)
            elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):  # SentencePiece byte fallback
                data = bytes([int(piece[3:5], 16)])
            elif "\u2581" in piece:  # SentencePiece's word marker stands for a space
                data = piece.replace("\u2581", " ").encode("utf-8", "surrogatepass")
            else:
                data = self(token).encode("utf-8", "surrogatepass")
            self.raw_cache[token] = data
        return data

    def starting_with(self, prefix: bytes) -> list[int]:
        """Every (non-special) token whose bytes start with ``prefix``."""
        found = self._starting.get(prefix)
        if found is None:
            if self._by_bytes is None:
                vocab = len(self.tokenizer)
                self._by_bytes = sorted((self.raw(i), i) for i in range(vocab) if i not in self.special)
            found = []
            for data, i in self._by_bytes[bisect.bisect_left(self._by_bytes, (prefix, -1)):]:
                if not data.startswith(prefix):
                    break
                found.append(i)
            self._starting[prefix] = found
        return found

    def row(self, ids) -> list[str]:
        """The text of each of a run of ids, a character split across tokens shown whole on
        the token that ends it (and nothing on the ones before), so CJK text and emoji read
        right token by token instead of as U+FFFD."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return [decoder.decode(self.raw(int(i))) for i in ids]


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, char -> byte: printable bytes stand for themselves, the
    others for the characters from U+0100 on, in byte order."""
    keep = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    table, shifted = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


BYTE_LEVEL = _byte_level_alphabet()


def token_text(tokenizer) -> TokenText:
    cached = getattr(tokenizer, "_dgterm_token_text", None)
    if cached is None:
        cached = TokenText(tokenizer)
        tokenizer._dgterm_token_text = cached
    return cached


def decode(tokenizer, ids) -> str:
    """Decode draft ids: special tokens dropped, partial UTF-8 becomes U+FFFD, never raises."""
    ids = [int(i) for i in ids]
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _shown(event: StepEvent, row: int, positions: list[int], threshold: float) -> list[tuple[int, str, float]]:
    """(id shown, state, entropy) at ``positions`` of the current canvas: an undecided
    position over ``threshold`` shows its noise token, the others their argmax."""
    argmax, canvas = event.argmax[row].tolist(), event.canvas[row].tolist()
    accepted, entropy = event.accepted[row].tolist(), event.entropy[row].tolist()
    out = []
    for p in positions:
        state = "accepted" if accepted[p] else "tentative" if entropy[p] < threshold else "noise"
        out.append((canvas[p] if state == "noise" else argmax[p], state, entropy[p]))
    return out


def _tokens(tokenizer, shown: list[tuple[int, str, float]]) -> list[DraftToken]:
    """Draft tokens of a run of (id, state, entropy), decoded as one run: a character whose
    bytes are split over several tokens shows whole on the last of them, nothing before."""
    texts = token_text(tokenizer).row([i for i, _, _ in shown])
    return [DraftToken(t, state, e) for t, (_, state, e) in zip(texts, shown)]


NOISE_ENTROPY = 1.0  # nats: above this an undecided position shows its noise token


# ------------------------------------------------------------------ continue


@dataclass
class ContinuePlan:
    prompt: list[int]
    canvas_length: int
    canvases: int  # at most this many (the run also stops when every candidate hit EOS)

    def windows(self):
        yield Window(self.prompt)
        for _ in range(self.canvases - 1):
            yield Window([])

    def drafts(self, tokenizer, event, row, last):
        done = [(i, "accepted", 0.0) for w in sorted(last) if w < event.window for i in last[w].argmax[row].tolist()]
        return [_tokens(tokenizer, done + _shown(event, row, list(range(self.canvas_length)), NOISE_ENTROPY))]


def continue_text(lm, text: str, params: SamplerParams | None = None, *, candidates: int = 1,
                  cancel: threading.Event | None = None, chat: bool = False, post=None, check=None) -> Task:
    """Generate canvases after ``text`` (or, with ``chat``, answer it as a user turn).
    ``post`` may reshape each finished Candidate (rewrite uses it)."""
    tok = lm.tokenizer
    if chat:
        prompt = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                         tokenize=False)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    return continue_ids(lm, ids, params, candidates=candidates, cancel=cancel, chat=chat, post=post, check=check)


def continue_ids(lm, ids: list[int], params: SamplerParams | None = None, *, candidates: int = 1,
                 cancel: threading.Event | None = None, chat: bool = False, post=None, check=None) -> Task:
    """Generate canvases after the prompt ``ids``; with ``chat`` the answer is split from
    a thinking channel."""
    tok = lm.tokenizer

    def finish(plan, canvases):
        generated = [int(i) for c in canvases for i in c.tolist()]
        answer, thinking = split_thinking(tok, generated) if chat else (decode(tok, generated), None)
        cand = Candidate(text=answer, spans=[answer], score=0.0, lengths=[], seed=0, thinking=thinking)
        return post(cand) if post else cand

    params = params or lm.defaults
    plan = ContinuePlan(ids, lm.canvas_length, params.max_canvases(lm.canvas_length))
    return Task(lm, [plan], params, candidates, cancel, True, finish, check)


THINK_OPEN, THINK_CLOSE = "<|channel>", "<channel|>"


def split_thinking(tokenizer, ids: list[int]) -> tuple[str, str | None]:
    """(answer, thinking) of generated ids, for a Gemma 4 ``<|channel>thought ... <channel|>``.

    The channel markers are special tokens, so the split happens on ids: decoding with
    special tokens skipped would erase the markers first."""
    open_id, close_id = tokenizer.convert_tokens_to_ids([THINK_OPEN, THINK_CLOSE])
    if open_id in (None, tokenizer.unk_token_id) or open_id not in ids:
        return decode(tokenizer, ids).strip(), None
    start = ids.index(open_id)
    end = ids.index(close_id, start) if close_id in ids[start:] else len(ids)
    thought = decode(tokenizer, ids[start + 1 : end]).strip().removeprefix("thought").strip()
    return decode(tokenizer, ids[:start] + ids[end + 1 :]).strip(), thought


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

    def drafts(self, tokenizer, event, row, last):
        """Each span's draft: the windows before the current one as they ended, the current
        one as it stands, decoded as one run; the windows still to come are empty noise."""
        out = []
        for s, slots in enumerate(self.slots):
            where = [self.locate(i) for i in slots]
            here = iter(_shown(event, row, [p for w, p in where if w == event.window], NOISE_ENTROPY))
            shown = [next(here) if w == event.window else (int(last[w].argmax[row][p]), "accepted", 0.0)
                     for w, p in where if w == event.window or (w < event.window and w in last)]
            toks = _tokens(tokenizer, shown) + [DraftToken("", "noise", 99.0)] * (len(where) - len(shown))
            if toks and self.healed[s]:
                toks[0] = DraftToken(unheal(toks[0].text, self.healed[s]), toks[0].state, toks[0].entropy)
            out.append(toks)
        return out


def unheal(text: str, healed: str) -> str:
    """``text`` less the healed prefix it starts with (a draft that somehow does not start
    with it is kept whole: the context already holds those characters)."""
    return text[len(healed):] if healed and text.startswith(healed) else text


HEAL_PROBE = "a"  # a letter: words, numbers and punctuation all take a space before them into their token


def heal(tokenizer, piece: str) -> tuple[list[int], str]:
    """(ids, healed prefix) of the text ``piece`` that comes just before a span: the tokens of
    ``piece`` as they are with a word after it, and the characters at its end that would
    belong to that word's first token ("" when none do, or the tokenizer's offsets or bytes
    do not line up)."""
    enc = tokenizer(piece + HEAL_PROBE, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    plain = tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
    if not ids or offsets[-1][1] != len(piece) + len(HEAL_PROBE):
        return plain, ""
    start = offsets[-1][0]
    if start >= len(piece):
        return plain, ""
    raw = token_text(tokenizer).raw
    healed = piece[start:]
    if (b"".join(raw(i) for i in ids[:-1]) != piece[:start].encode("utf-8", "surrogatepass")
            or raw(ids[-1]) != (healed + HEAL_PROBE).encode("utf-8", "surrogatepass")):
        return plain, ""
    return ids[:-1], healed


def plan_infill(lm, text: str, spans: list[SpanRequest], max_context: int = 1024, margin: int | None = None,
                heal_edges: bool = True) -> InfillPlan:
    """Tokenize around the spans and lay the canvases out (healing the spans' left edges
    unless ``heal_edges`` is false)."""
    spans = check_spans(text, spans, lm.canvas_length)
    tok = lm.tokenizer
    heal_edges = heal_edges and is_local(lm)  # a remote engine cannot restrict a position's tokens
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
        piece = text[cursor : span.start]
        before, prefix = heal(tok, piece) if piece and n and heal_edges else (ids(piece), "")
        options = token_text(tok).starting_with(prefix.encode("utf-8", "surrogatepass")) if prefix else []
        if prefix and not options:
            before, prefix = ids(piece), ""
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
    if tail_to >= len(text):
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


# ------------------------------------------------------------------ rewrite


def rewrite(lm, text: str, span: SpanRequest, instruction: str, params: SamplerParams | None = None, *,
            candidates: int = 1, cancel: threading.Event | None = None, context_chars: int = 2000,
            check=None) -> Task:
    """Ask a chat checkpoint to rewrite one span following an instruction (``check`` as for infill)."""
    if not lm.has_chat_template:
        raise InputError(f"{lm.name} has no chat template, so it cannot follow instructions; use infill instead.")
    check_spans(text, [span], lm.canvas_length)
    before = text[max(0, span.start - context_chars) : span.start]
    after = text[span.end : span.end + context_chars]
    prompt = (
        f"{instruction.strip()}\n\nRewrite the part between [[ and ]] and reply with the new text only.\n\n"
        f"{before}[[{text[span.start:span.end]}]]{after}"
    )

    def post(cand: Candidate) -> Candidate:
        answer = cand.text.removeprefix("[[").removesuffix("]]")
        cand.spans = [answer]
        cand.text = text[: span.start] + answer + text[span.end :]
        return cand

    return continue_text(lm, prompt, params, candidates=candidates, cancel=cancel, chat=True, post=post,
                         check=check)
