"""Reviewing a finished run (accept, reject, next candidate, scrub the timeline) and
leaving a run: escape and what ending a run does to the document and the view."""

from __future__ import annotations

from dgterm.editor import DocumentError
from dgterm.tui.host import Host
from dgterm.tui.job import Job
from dgterm.tui.lifecycle import Lensing, Reviewing, Running


def threshold(job: Job) -> float:
    """The confidence the canvas panel marks: the run's stop threshold."""
    return job.params.confidence if job.params is not None else 0.0


class ReviewActions(Host):
    def show_review(self) -> None:
        rv = self.review
        if rv is None:
            return
        lensed = self.draft_lens_view(rv)
        self.editor.highlight_cursor_line = lensed is None  # else it hides the tint of the cursor's line
        self.editor.show_preview(lensed or rv.drafts())
        frame = rv.frame()
        if frame is not None:
            upto = rv.frames[: (rv.step if rv.step is not None else len(rv.frames) - 1) + 1]
            self.canvas.show_frame(frame, rv.row, frames=upto, threshold=threshold(rv.job),
                                   label=f"{rv.job.label} · {rv.stats.get('tokens_per_second', 0):.1f} tok/s overall")
        label = rv.position_label() if rv.step is not None else f"{rv.hunk_label()} · {rv.position_label()}"
        self.canvas.show_choices(rv.choices, rv.choice, label, [rv.changes(c) for c in range(len(rv.choices))])
        self.refresh_status()

    def action_accept(self) -> None:
        if self.accept_shown(keep_spans=False):
            self.notify("Accepted; ctrl+z undoes the whole rewrite.")

    def accept_shown(self, keep_spans: bool) -> list[int]:
        """Take the shown candidate (the hunks taken, and what is left of it) as one undo step;
        the ids of the spans it filled, left marked if ``keep_spans`` (always after a refine, to
        be refined again), or [] when it could not be taken."""
        state, doc = self.lifecycle, self.doc
        if not self.apply(state.accept):
            return []
        assert isinstance(state, Reviewing)  # the one state that accepts
        rv = state.review
        job, texts = rv.job, rv.take_all()  # the hunks taken and the shown candidate's left (all: the candidate)
        keep = keep_spans or job.kind == "refine"
        try:
            if job.created_span:
                a, b, _ = job.spans[0]
                doc.undo()  # drop the span marked for this run: mark + rewrite become one undo step
                with doc.group():
                    span = doc.add_span(a, b)
                    doc.apply_rewrite({span: texts[0]}, keep_spans=keep)
                filled = [span.id]
            else:
                doc.apply_rewrite(dict(zip(job.span_ids, texts)), keep_spans=keep)
                filled = list(job.span_ids)
        except DocumentError as e:
            self.notify(str(e), severity="error")
            self.end_run(job, restore=True)
            return []
        self.end_run(job, restore=False)
        return filled

    def _browse(self, choice: int = 0, step: int = 0) -> None:
        rv = self.allowed(self.lifecycle.browsed)
        if rv is None:
            return
        if choice:
            rv.next_choice(choice)
        else:
            rv.scrub(step)
        self.show_review()

    def action_next_candidate(self) -> None:
        self._browse(choice=1)

    def action_prev_candidate(self) -> None:
        self._browse(choice=-1)

    def action_step_back(self) -> None:
        self._browse(step=-1)

    def action_step_forward(self) -> None:
        self._browse(step=1)

    def action_cancel(self) -> None:
        """Escape: cancel the run, reject the candidates, cancel or clear the lens (of a draft too)."""
        match self.lifecycle:
            case Running(job=job) as state:
                self.lifecycle = state.cancel()
                self.end_run(job, restore=True)
                self.canvas.show_stats("Cancelled; the document is as it was.")
                self.notify("Run cancelled; the document is as it was.")
            case Reviewing(lensing=None, lens_shown=False, review=rv) as state:
                self.lifecycle = state.reject()
                self.unmark_own_span(rv)
                self.end_run(rv.job, restore=True)
                self.notify(f"Kept the {rv.accepted} hunk(s) accepted; the rest is as it was." if rv.accepted
                            else "Rejected; the document is as it was.")
            case Reviewing() as state:  # the lens of the shown candidate: the hunks again
                self.toggle_draft_lens(state)
            case Lensing(job=job) as state:
                job.cancel.set()
                self.lifecycle = state.cancel()
                self.canvas.show_stats("Lens cancelled.")
                self.refresh_status()
            case _ if self.editor.lens_active:
                self.action_lens()

    def end_run(self, job: Job | None, restore: bool) -> None:
        """What leaving a run or its review does: the worker stops, the document is as it
        was (restore) or as accepted, the view shows the document again."""
        if job is not None:
            job.cancel.set()  # the worker stops before its next decoder forward
            if restore:
                self.doc.end_rewrite()
                if job.created_span and self.doc.can_undo():
                    self.doc.undo()
        self.editor.read_only = self.doc.read_only
        self.editor.highlight_cursor_line = True
        self.editor.sync_from_doc()
        self.editor.focus()
        self.canvas.show_choices([], 0)  # the candidates and the timeline are gone with the review
        self.canvas.clear_run("No run shown.")  # nor its canvas: after an undo it would not be what is on screen
        self.spans_changed()
        self.refresh_file()
