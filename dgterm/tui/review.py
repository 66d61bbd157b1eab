"""The state of a finished run under review: candidates and the step timeline.
Plain Python: the app asks it what to show and paints that."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
        """What each span shows now: the candidate's text, or the draft at the scrubbed step."""
        ids = self.job.span_ids
        if self.step is None:
            return {sid: [DraftToken(text, "accepted", 0.0)] for sid, text in zip(ids, self.current.texts)}
        spans = self.frames[self.step].drafts[self.row]
        return dict(zip(ids, spans))

    def position_label(self) -> str:
        if self.step is None:
            return f"final text · {len(self.frames)} steps (←/→ to scrub)"
        f = self.frames[self.step]
        return f"step {self.step + 1}/{len(self.frames)} · window {f.window + 1} step {f.step}"
