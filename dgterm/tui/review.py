"""The state of a finished run under review: candidates, their hunks and the step
timeline. Plain Python: the app asks it what to show and what to write, and does that.

Each candidate is cut into hunks against the text the run saw (``dgterm.editor.hunks``);
hunks of any candidate are accepted into the spans one by one (``merges``), and what
is not accepted keeps its bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dgterm.editor.hunks import Hunk, Merge, diff, next_word
from dgterm.engine.output.frames import Choice, DraftToken, Frame, Layout

if TYPE_CHECKING:
    from dgterm.tui.job import Job


@dataclass
class Review:
    job: Job
    layout: Layout | None  # None: the run never reported one
    all_frames: list[Frame]  # every step of every round
    choices: list[Choice]
    stats: dict = field(default_factory=dict)  # stats["rounds"]: where each round starts in all_frames
    choice: int = 0
    step: int | None = None  # index into frames; None: the finished text
    hunk: int = 0  # the current hunk, an index into open_hunks()
    accepted: int = 0  # hunks accepted so far (each one undo step)
    last_write: tuple[int, str, bool] | None = None  # the latest hunk written: span, its text, the run's first write
    own_span: bool = field(init=False)  # the run marked its span itself (a continuation, a selection's rewrite)
    merges: list[Merge] = field(init=False)  # each span: its text as the run saw it and the hunks taken
    _pending: dict[int, list[list[Hunk]]] = field(init=False, default_factory=dict)  # choice -> span -> hunks

    def __post_init__(self) -> None:
        self.merges = [Merge(self.job.text[a:b]) for a, b, _ in self.job.spans]
        self.own_span = self.job.created_span

    @property
    def frames(self) -> list[Frame]:
        """The timeline of the shown candidate (its round's steps)."""
        starts = list(self.stats.get("rounds", [0])) + [len(self.all_frames)]
        r = min(self.choices[self.choice].round if self.choices else 0, len(starts) - 2)
        return self.all_frames[starts[r] : starts[r + 1]]

    @property
    def row(self) -> int:
        return self.choices[self.choice].row if self.choices else 0

    @property
    def current(self) -> Choice:
        return self.choices[self.choice]

    def next_choice(self, delta: int = 1) -> None:
        self.choice = (self.choice + delta) % len(self.choices)
        self.hunk = 0
        if self.step is not None:
            self.step = min(self.step, len(self.frames) - 1)  # another round's timeline may be shorter

    def scrub(self, delta: int) -> None:
        """Move along the timeline; past the last step is the finished text."""
        last = len(self.frames)  # == "final"
        pos = last if self.step is None else self.step
        pos = max(0, min(last, pos + delta))
        self.step = None if pos == last else pos

    def frame(self) -> Frame | None:
        if not self.frames:
            return None
        return self.frames[-1] if self.step is None else self.frames[self.step]

    def drafts(self) -> dict[int, list[DraftToken]]:
        """What each span shows now: the shown candidate's open hunks over the span's text
        (old text struck out, the current hunk marked), or the draft at the scrubbed step."""
        ids = self.job.span_ids
        if self.step is None:
            return {sid: self._diff_tokens(i) for i, sid in enumerate(ids)}
        spans = self.frames[self.step].drafts[self.row]
        return dict(zip(ids, spans))

    # ------------------------------------------------------------------ hunks

    def hunks_of(self, choice: int) -> list[list[Hunk]]:
        """The hunks of candidate ``choice`` not yet accepted or rejected, per span."""
        if choice not in self._pending:
            texts = self.choices[choice].texts
            self._pending[choice] = [diff(m.original, t) for m, t in zip(self.merges, texts)]
        return self._pending[choice]

    def open_hunks(self, choice: int | None = None) -> list[tuple[int, Hunk]]:
        """(span index, hunk) of each hunk of ``choice`` (the shown one) that can still be
        accepted: not taken, not rejected, not over text another candidate's hunk changed."""
        c = self.choice if choice is None else choice
        return [(i, h) for i, hunks in enumerate(self.hunks_of(c)) for h in hunks
                if not self.merges[i].clashes(c, h)]

    def current_hunk(self) -> tuple[int, Hunk] | None:
        hunks = self.open_hunks()
        if not hunks:
            return None
        self.hunk = min(self.hunk, len(hunks) - 1)
        return hunks[self.hunk]

    def move_hunk(self, delta: int) -> None:
        n = len(self.open_hunks())
        self.hunk = (self.hunk + delta) % n if n else 0

    def take(self, word: bool = False) -> tuple[int, str] | None:
        """Accept the current hunk (``word``: only its next word); returns the span index
        and its new text for the document, None if no hunk is open."""
        got = self.current_hunk()
        if got is None:
            return None
        i, hunk = got
        first, rest = next_word(hunk) if word else (hunk, None)
        text = self.merges[i].with_hunk(first)
        self.merges[i].accept(self.choice, first)
        pending = self.hunks_of(self.choice)[i]
        pending[pending.index(hunk) : pending.index(hunk) + 1] = [rest] if rest is not None else []
        self.accepted += 1
        return i, text

    def drop(self) -> bool:
        """Reject the current hunk: its text stays as it is. False if no hunk is open."""
        got = self.current_hunk()
        if got is None:
            return False
        i, hunk = got
        self.hunks_of(self.choice)[i].remove(hunk)
        return True

    def take_all(self) -> list[str]:
        """Each span's text with every open hunk of the shown candidate accepted too."""
        out = []
        for i, m in enumerate(self.merges):
            merged = Merge(m.original, list(m.applied))
            for j, h in self.open_hunks():
                if j == i:
                    merged.accept(self.choice, h)
            out.append(merged.text())
        return out

    def changes(self, choice: int) -> list[tuple[str, str]]:
        """(old text, new text) of each open hunk of candidate ``choice``."""
        out = []
        for i, h in self.open_hunks(choice):
            a, b = self.merges[i].where(h)
            out.append((self.merges[i].text()[a:b], h.new))
        return out

    def _diff_tokens(self, i: int) -> list[DraftToken]:
        merge, text, at, out = self.merges[i], self.merges[i].text(), 0, []
        current = self.current_hunk()
        for j, h in self.open_hunks():
            if j != i:
                continue
            a, b = merge.where(h)
            here = "-here" if current == (j, h) else ""
            out += [DraftToken(text[at:a], "kept", 0.0), DraftToken(text[a:b], "deleted" + here, 0.0),
                    DraftToken(h.new, "inserted" + here, 0.0)]
            at = b
        out.append(DraftToken(text[at:], "kept", 0.0))
        return [t for t in out if t.text]

    def hunk_label(self) -> str:
        n = len(self.open_hunks())
        return f"hunk {min(self.hunk, n - 1) + 1}/{n}" if n else "no hunks left"

    def position_label(self) -> str:
        if self.step is None:
            return f"final text · {len(self.frames)} steps (←/→ to scrub)"
        f = self.frames[self.step]
        return f"step {self.step + 1}/{len(self.frames)} · window {f.window + 1} step {f.step}"
