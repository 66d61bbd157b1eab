"""Where the model doubts, and drawing just that again.

The lens (ctrl+l) scores each visible token by how surely the model keeps it; the doubt
threshold (alt+up / alt+down) marks the tokens under it. A refine (alt+r) re-noises only
the doubted tokens of the span at the cursor (or of the selection) and denoises them
live in place, everything else pinned (``dgterm.engine.tasks.refine``); its candidates
are reviewed like any run's, hunk by hunk, and accepting one is one undo step that
leaves the span marked, so the lens and a refine can go again."""

from __future__ import annotations

from dgterm.editor import Span
from dgterm.engine.params import DEFAULT_REFINE_BELOW
from dgterm.tui import messages as m
from dgterm.tui.host import Host
from dgterm.tui.job import Job
from dgterm.tui.lifecycle import Idle, Reviewing

LADDER = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)  # the doubt thresholds the keys step through


class DoubtActions(Host):
    doubt_below: float = DEFAULT_REFINE_BELOW
    lens_scores: list | None = None  # the LensTokens the lens shows (dgterm.engine.tasks.lens)

    def on_lens_ready(self, message: m.LensReady) -> None:
        if not self.lifecycle.owns(message.job) or not self.apply(self.lifecycle.lens_ready):
            return
        if isinstance(self.lifecycle, Reviewing):  # a draft's lens (dgterm.tui.actions.draft_lens)
            self.draft_lens_ready(message.job, message.scores)
        else:
            self.lens_scores = message.scores
            self.editor.show_lens([(t.start, t.end, t.prob, t.top_prob) for t in message.scores])
        self.show_doubt()

    def show_doubt(self) -> None:
        below, review = self.doubt_below, self.review
        if review is not None:  # the shown candidate's tokens, tinted in place of its hunks
            scores = self.draft_lens_scores()
            self.show_review()
            doubted = sum(1 for t in scores if t.prob < below)
            refine = "; alt+r takes the candidate and redraws them."
        else:
            scores, doubted = self.lens_scores or [], self.editor.show_doubt(below)
            refine = ", alt+r draws the doubted tokens of the span at the cursor again."
        worst = sorted(scores, key=lambda t: t.prob / max(t.top_prob, 1e-12))[:8]
        changed = sum(1 for t in scores if t.top_prob > t.prob)
        lines = [f"Lens: {len(scores)} tokens scored, {changed} not the model's pick; escape or ctrl+l clears it.",
                 f"Doubted (kept with p < {below:g}): {doubted} — alt+up/alt+down move the threshold{refine}",
                 "Most likely to change (→ model's pick):"]
        lines += [f"  {t.token!r} → {t.top!r}  ({t.top_prob / max(t.prob, 1e-12):.0f}×)" for t in worst]
        self.canvas.show_stats("\n".join(lines))
        self.refresh_status()

    def lens_off_after_edit(self) -> None:
        """An edit took the lens's tint away: say so where its findings were."""
        state = self.lifecycle
        if isinstance(state, Idle) and state.lens_shown and not self.editor.lens_active:
            self.lifecycle = state.lens_off()
            self.canvas.show_stats("Lens off: the text changed.")

    def action_doubt_more(self) -> None:
        self._step_doubt(1)

    def action_doubt_less(self) -> None:
        self._step_doubt(-1)

    def _step_doubt(self, delta: int) -> None:
        at = min(range(len(LADDER)), key=lambda i: abs(LADDER[i] - self.doubt_below))
        self.doubt_below = LADDER[max(0, min(len(LADDER) - 1, at + delta))]
        self.show_doubt()

    def action_refine(self) -> None:
        if isinstance(self.lifecycle, Reviewing):  # a refine redraws text in the document: take the draft first
            filled = [s for s in map(self.doc.span, self.accept_shown(keep_spans=True)) if s is not None]
            if filled:  # its first span (the view's cursor is in the draft's hunks, not in the document)
                self._refine(filled[0])
            return
        if self.allowed(self.lifecycle.ready) is None:
            return
        a, b = self.editor.selected_range()
        span = self.span_at(a) if a == b else None
        if a == b and (span is None or span.start == span.end):
            self.notify("Put the cursor in a masked span (or select text) to refine it; ctrl+l shows where "
                        "the model doubts.")
            return
        self._refine(span, (a, b))

    def _refine(self, span: Span | None, selection: tuple[int, int] = (0, 0)) -> None:
        """Start the refine of ``span`` (a marked span), or of the ``selection`` when there is none."""
        a, b = (span.start, span.end) if span is not None else selection
        lens = self.lens_scores if self.editor.lens_active else None
        self.start_job(Job("refine", self.doc.text, [(a, b, None)], [span.id] if span else [],
                           candidates=self.candidates, below=self.doubt_below, lens=lens), create=span is None)
