"""Reviewing a finished run hunk by hunk: go to the next or previous hunk of the shown
candidate, accept one (or only its next word), reject one. Each accept writes the
span's new text into the document as one undo step; the run stays under review, so
hunks of other candidates can be taken too. What is never accepted keeps its bytes."""

from __future__ import annotations

from dgterm.editor import DocumentError
from dgterm.tui.host import Host
from dgterm.tui.review import Review


class HunkActions(Host):
    def _hunks(self) -> Review | None:
        rv = self.allowed(self.lifecycle.browsed)
        if rv is not None and rv.step is not None:
            rv.step = None  # hunks are of the finished text, not of a scrubbed step
        return rv

    def action_next_hunk(self) -> None:
        self._move_hunk(1)

    def action_prev_hunk(self) -> None:
        self._move_hunk(-1)

    def _move_hunk(self, delta: int) -> None:
        rv = self._hunks()
        if rv is not None:
            rv.move_hunk(delta)
            self.show_review()
            self.show_hunk(rv)

    def action_accept_hunk(self) -> None:
        self._take(word=False)

    def action_accept_word(self) -> None:
        self._take(word=True)

    def _take(self, word: bool) -> None:
        rv = self._hunks()
        if rv is None:
            return
        taken = rv.take(word)
        if taken is None:
            self.notify("The shown candidate has no hunk left: tab shows another, escape ends the review.")
            return
        if self.write_span(rv, *taken):
            self.show_review()
            self.show_hunk(rv)
            self.refresh_file()

    def action_reject_hunk(self) -> None:
        rv = self._hunks()
        if rv is None:
            return
        if not rv.drop():
            self.notify("The shown candidate has no hunk left: tab shows another, escape ends the review.")
            return
        self.show_review()
        self.show_hunk(rv)

    def write_span(self, rv: Review, i: int, text: str) -> bool:
        """Put span ``i``'s new text into the document as one undo step; the span stays
        marked over it. The span a rewrite or a continuation marked for itself becomes
        part of this first step (undo takes both away, as after a whole accept)."""
        job, doc = rv.job, self.doc
        try:
            first = job.created_span
            if first:
                doc.undo()
                self._write_first(rv, text, keep=True)
            else:
                doc.apply_rewrite({job.span_ids[i]: text}, keep_spans=True)
            doc.begin_rewrite(job.span_ids, {"kind": job.kind, "instruction": job.instruction})
        except DocumentError as e:
            self.notify(str(e), severity="error")
            return False
        rv.last_write = (i, text, first)
        return True

    def _write_first(self, rv: Review, text: str, keep: bool) -> None:
        """The run's own span marked again over its text as it was, and ``text`` written in, one step."""
        job, doc = rv.job, self.doc
        a = job.spans[0][0]
        with doc.group():
            span = doc.add_span(a, a + len(rv.merges[0].original))
            doc.apply_rewrite({span: text}, keep_spans=keep)
        job.span_ids[0], job.created_span = span.id, False

    def unmark_own_span(self, rv: Review) -> None:
        """Leaving a review after taking hunks of a continuation or of a selection's rewrite:
        the span the run marked for itself is unmarked, within the last hunk's own undo step,
        as after a whole accept. Spans the user marked (and a refine's) stay marked."""
        if not rv.own_span or rv.job.kind == "refine" or rv.last_write is None:
            return
        i, text, first = rv.last_write
        doc = self.doc
        doc.end_rewrite()
        doc.undo()  # the last hunk's step, written again without the mark
        if first:
            self._write_first(rv, text, keep=False)
        else:
            doc.apply_rewrite({rv.job.span_ids[i]: text})

    def show_hunk(self, rv: Review) -> None:
        """Scroll the current hunk into view (at its line in the document)."""
        got = rv.current_hunk()
        span = self.doc.span(rv.job.span_ids[got[0]]) if got is not None else None
        if got is None or span is None:
            return
        line, _ = self.doc.location_of(span.start + rv.merges[got[0]].where(got[1])[0])
        self.editor.scroll_to(y=max(0, line - 3), animate=False)
