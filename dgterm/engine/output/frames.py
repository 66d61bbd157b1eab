"""What the front ends show of a run, as plain data: no torch, no UI library.

One step has one name per stage: the engine yields a ``StepEvent`` (tensors);
:func:`step_record` turns it into a *record* (plain lists, the shape of a trace's step
lines); :func:`build_frame` turns a record and a :class:`Layout` (where each masked span
sits in the canvases) into a :class:`Frame`: the coloured :class:`DraftToken`s of every
span (or of the generated stream) and of the whole canvas, for every batch row. This is
the one draft renderer: ``Task.drafts`` (the REPL, the benchmarks), the editor's live
worker and the trace replayer all go through it, so what a replay shows is what the live
run showed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

NOISE_ENTROPY = 1.0  # nats: an undecided position under this shows its argmax, above it its noise token
NOT_REACHED = 99.0  # the entropy shown for a span position in a window the run has not reached yet


@dataclass(frozen=True, slots=True)
class DraftToken:
    """One position of a draft as it is shown."""

    text: str
    state: str  # noise | tentative | accepted | pinned
    entropy: float


@dataclass(frozen=True)
class Layout:
    """Where the drafts live. ``kind`` is ``spans`` (infill: ``slots[plan][span]`` lists the
    (window, position) of each free token) or ``stream`` (continue, rewrite: the draft is
    every canvas in order). Batch row r belongs to plan ``r // candidates``. ``healed[plan][span]``
    is the healed prefix a span's first token starts with (engine.tasks: token healing), not shown."""

    kind: str
    canvas_length: int
    candidates: int = 1
    slots: list = field(default_factory=list)
    healed: list = field(default_factory=list)

    def rows(self) -> int:
        return self.candidates * max(1, len(self.slots))

    def to_json(self) -> dict:
        return {"kind": self.kind, "canvas_length": self.canvas_length, "candidates": self.candidates,
                "slots": self.slots, "healed": self.healed}

    @classmethod
    def from_json(cls, data: Mapping) -> Layout:
        slots = [[[tuple(p) for p in span] for span in plan] for plan in data.get("slots", [])]
        return cls(data["kind"], int(data["canvas_length"]), int(data.get("candidates", 1)), slots,
                   [list(map(str, plan)) for plan in data.get("healed", [])])


@dataclass(frozen=True, eq=False)
class Frame:
    """One denoising step as the UI paints it."""

    window: int
    step: int
    max_steps: int
    elapsed: float
    tokens: int  # free tokens decided so far (first row)
    drafts: list  # [row][span] -> list[DraftToken]  (stream: one "span")
    canvas: list  # [row] -> list[DraftToken], the whole current canvas
    accepted: list  # [row] free tokens accepted at this step
    entropy: list  # [row] mean entropy of the free positions
    finished: list  # [row] bool
    warmup: float = 0.0  # of ``elapsed``, the seconds spent compiling the step


@dataclass(frozen=True)
class Choice:
    """A finished candidate: the new text of each span, ranked as the engine ranks them (valid
    first, then by ``score``, the model's log-likelihood per token: higher is likelier)."""

    texts: list[str]
    score: float
    lengths: list[int]
    row: int
    thinking: str | None = None
    entropy: float = 0.0
    valid: bool | None = None  # None: no structure check for this kind of file
    reason: str = ""
    round: int = 0  # which round of drawing it came from (require_valid), each with its own timeline

    @classmethod
    def of(cls, candidate, base: int, rows: int) -> Choice:
        """A Candidate (dgterm.engine.tasks) of a run: see :meth:`from_record`."""
        return cls.from_record(dataclasses.asdict(candidate), base, rows)

    @classmethod
    def from_record(cls, record: Mapping, base: int, rows: int) -> Choice:
        """A trace's candidate record (or a Candidate's fields) of a run whose first seed was
        ``base``, with ``rows`` batch rows a round. The record names its batch row and round;
        a trace written before it did ran batch row r of round k with seed ``base + k * rows + r``."""
        if "row" in record:
            round_, row = record.get("round", 0), record["row"]
        else:
            round_, row = divmod(record["seed"] - base, rows)
        return cls(list(record["spans"]), record["score"], list(record["lengths"]), row, record.get("thinking"),
                   record.get("entropy", 0.0), record.get("valid"), record.get("reason", ""), round_)


def step_record(event) -> dict:
    """A StepEvent as plain lists (the shape of a trace's step line); reads the tensors'
    ``tolist`` without importing torch."""
    return {
        "window": event.window, "step": event.step, "max_steps": event.max_steps, "elapsed": event.elapsed,
        "warmup": event.warmup, "tokens": event.tokens, "canvas": event.canvas.tolist(),
        "argmax": event.argmax.tolist(),
        "accepted": event.accepted.int().tolist(), "entropy": event.entropy.float().tolist(),
        "pinned": None if event.pinned is None else event.pinned.int().tolist(),
        "finished": event.finished.int().tolist(),
    }


def _state(accepted: int, entropy: float) -> str:
    if accepted:
        return "accepted"
    return "tentative" if entropy < NOISE_ENTROPY else "noise"


def _runs(flags) -> list[tuple[int, int]]:
    """[start, end) of each run of equal values in ``flags``."""
    cuts = [0] + [i for i in range(1, len(flags)) if bool(flags[i]) != bool(flags[i - 1])] + [len(flags)]
    return list(zip(cuts, cuts[1:]))


def build_frame(record: Mapping, layout: Layout, last: dict[int, Mapping],
                text_of: Callable[[int], str]) -> Frame:
    """Turn a step record into a Frame. ``last`` maps each earlier window to its final
    record (the caller keeps it up to date); ``text_of`` decodes one token id, and its
    ``row`` method, where it has one, a run of ids (characters split across tokens)."""
    row_of = getattr(text_of, "row", None) or (lambda ids: [text_of(i) for i in ids])
    w = record["window"]
    rows = len(record["canvas"])
    drafts, canvas, acc, ent = [], [], [], []
    pinned_all = record.get("pinned")
    for r in range(rows):
        cv, am, ac, en = record["canvas"][r], record["argmax"][r], record["accepted"][r], record["entropy"][r]
        pinned = pinned_all[r] if pinned_all is not None else [0] * len(cv)
        states = ["pinned" if pinned[p] else _state(ac[p], en[p]) for p in range(len(cv))]
        shown = [cv[p] if s == "noise" else am[p] for p, s in enumerate(states)]
        texts = [t for a, b in _runs(pinned) for t in row_of(shown[a:b])]  # context and spans apart
        canvas.append([DraftToken(texts[p], s, 0.0 if s == "pinned" else float(en[p])) for p, s in enumerate(states)])
        free = [p for p in range(len(cv)) if not pinned[p]]
        acc.append(sum(1 for p in free if ac[p]))
        ent.append(sum(en[p] for p in free) / len(free) if free else 0.0)
        if layout.kind == "stream":  # the canvases before as they ended, then this one: one run of text
            done = [i for v in sorted(last) if v < w for i in last[v]["argmax"][r]]
            texts = row_of(done + shown)
            drafts.append([[DraftToken(t, "accepted", 0.0) for t in texts[: len(done)]]
                           + [DraftToken(t, c.state, c.entropy) for t, c in zip(texts[len(done):], canvas[r])]])
            continue
        p = min(r // layout.candidates, len(layout.slots) - 1)
        plan, healed = layout.slots[p], layout.healed[p] if p < len(layout.healed) else []
        spans = []
        for s, slots in enumerate(plan):
            # a span's text decodes on its own (apart from its neighbours), as one run over its windows
            reached = [(sw, p) for sw, p in slots if sw == w or (sw < w and sw in last)]
            texts = row_of([shown[p] if sw == w else last[sw]["argmax"][r][p] for sw, p in reached])
            toks = [DraftToken(t, canvas[r][p].state, canvas[r][p].entropy) if sw == w
                    else DraftToken(t, "accepted", 0.0) for t, (sw, p) in zip(texts, reached)]
            toks += [DraftToken("", "noise", NOT_REACHED)] * (len(slots) - len(reached))
            prefix = healed[s] if s < len(healed) else ""
            if toks and prefix and toks[0].text.startswith(prefix):  # token healing: not the span's own text
                toks[0] = DraftToken(toks[0].text[len(prefix):], toks[0].state, toks[0].entropy)
            spans.append(toks)
        drafts.append(spans)
    return Frame(window=w, step=record["step"], max_steps=record["max_steps"], elapsed=record["elapsed"],
                 tokens=record.get("tokens", 0), drafts=drafts, canvas=canvas, accepted=acc, entropy=ent,
                 finished=[bool(x) for x in record["finished"]], warmup=record.get("warmup", 0.0))


class FrameBuilder:
    """Feeds records in order and keeps ``last`` (final record of each window)."""

    def __init__(self, layout: Layout, text_of: Callable[[int], str]):
        self.layout, self.text_of = layout, text_of
        self.last: dict[int, Mapping] = {}
        self._current: Mapping | None = None

    def __call__(self, record: Mapping) -> Frame:
        cur = self._current
        if cur is not None and cur["window"] != record["window"]:
            self.last[cur["window"]] = cur
        self._current = record
        return build_frame(record, self.layout, self.last, self.text_of)


class Timeline:
    """The frames of a run in order, appended to ``frames``, drawn in rounds (until_valid):
    each round starts over at window 0 with a FrameBuilder of its own, and ``starts`` holds
    the index of each round's first frame. The live run and its replay both build here."""

    def __init__(self, layout: Layout, text_of: Callable[[int], str], frames: list[Frame]):
        self.layout, self.text_of, self.frames = layout, text_of, frames
        self.starts = [0]
        self._build = FrameBuilder(layout, text_of)

    def add(self, record: Mapping, round_: int = 0) -> Frame:
        """The Frame of the step ``record`` of round ``round_``, appended to ``frames``."""
        if round_ != len(self.starts) - 1:  # require_valid drew another round
            self._build = FrameBuilder(self.layout, self.text_of)
            self.starts.append(len(self.frames))
        frame = self._build(record)
        self.frames.append(frame)
        return frame


def display_text(tok: DraftToken) -> str:
    """What a token shows in the document: noise keeps one line (newlines and tabs as glyphs)."""
    if tok.state == "noise":
        return tok.text.replace("\r", "").replace("\n", "↵").replace("\t", "→")
    return tok.text
