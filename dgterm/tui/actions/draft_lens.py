"""Where the model doubts a draft: the lens (ctrl+l) in review scores the shown candidate,
as the document would read with it taken (every open hunk), and shows each of its
tokens tinted by confidence in place of the hunks, the tokens under the doubt threshold
(alt+up / alt+down) marked. Showing another candidate, or taking or dropping a hunk,
scores the new draft; ctrl+l or escape goes back to the hunks."""

from __future__ import annotations

from dgterm.engine.output.frames import DraftToken
from dgterm.tui.host import Host
from dgterm.tui.job import Job
from dgterm.tui.lifecycle import Reviewing
from dgterm.tui.review import Review
from dgterm.tui.themes import lens_level


class DraftLensActions(Host):
    draft_scores: tuple[str, list] | None = None  # the draft the lens scored, its LensTokens

    def draft_text(self, rv: Review) -> tuple[str, list[tuple[int, int]]]:
        """The document as the shown candidate would leave it, and where each span's text is in it."""
        text, texts = self.doc.text, rv.take_all()
        pieces, ranges, at, shift = [], [], 0, 0
        for sid, new in zip(rv.job.span_ids, texts):
            span = self.doc.span(sid)
            assert span is not None  # a span under review stays marked
            pieces += [text[at : span.start], new]
            ranges.append((span.start + shift, span.start + shift + len(new)))
            shift += len(new) - (span.end - span.start)
            at = span.end
        return "".join(pieces) + text[at:], ranges

    def toggle_draft_lens(self, state: Reviewing) -> None:
        if state.lensing is None and not state.lens_shown:
            self.start_draft_lens(state.review)
            return
        self.draft_lens_off(state)
        self.canvas.show_stats("Lens off: the hunks of the shown candidate again.")

    def draft_lens_off(self, state: Reviewing) -> None:
        if state.lensing is not None:
            state.lensing.cancel.set()
        self.lifecycle, self.draft_scores = state.lens_off(), None
        self.show_review()

    def start_draft_lens(self, rv: Review) -> None:
        text, ranges = self.draft_text(rv)
        job = Job("lens", text, [(a, b, None) for a, b in ranges], [])
        old = self.lifecycle
        if self.apply(self.lifecycle.start_lens, job):
            if isinstance(old, Reviewing) and old.lensing is not None:
                old.lensing.cancel.set()  # scoring a draft no longer shown
            self.canvas.show_stats("Lens: scoring the shown candidate… (ctrl+l or escape: the hunks again)")
            self.refresh_status()
            self.run_job_worker(job, self.lm)

    def draft_lens_view(self, rv: Review) -> dict[int, list[DraftToken]] | None:
        """The shown candidate tinted by the lens (span id -> tokens), or None: show the hunks.
        A draft other than the one scored (another candidate, a hunk taken) is scored anew."""
        state = self.lifecycle
        if not isinstance(state, Reviewing) or not (state.lens_shown or state.lensing) or rv.step is not None:
            return None
        text, ranges = self.draft_text(rv)
        if self.draft_scores is None or self.draft_scores[0] != text:
            if state.lensing is None or state.lensing.text != text:
                self.start_draft_lens(rv)
            return None
        return {sid: self.lensed(text, a, b) for sid, (a, b) in zip(rv.job.span_ids, ranges)}

    def lensed(self, text: str, a: int, b: int) -> list[DraftToken]:
        """``text[a:b]`` as tokens tinted by the lens's scores, those under the threshold doubted."""
        assert self.draft_scores is not None
        out, at = [], a
        for t in self.draft_scores[1]:
            if not a <= t.start < b:
                continue
            if t.start > at:
                out.append(DraftToken(text[at : t.start], "lens0", 0.0))
            state = "doubted" if t.prob < self.doubt_below else f"lens{lens_level(t.prob, t.top_prob)}"
            out.append(DraftToken(text[t.start : t.end], state, 0.0))
            at = t.end
        if at < b:
            out.append(DraftToken(text[at:b], "lens0", 0.0))
        return out

    def draft_lens_ready(self, job: Job, scores: list) -> None:
        self.draft_scores = (job.text, scores)

    def draft_lens_scores(self) -> list:
        return self.draft_scores[1] if self.draft_scores else []

    def draft_lens_ended(self, job: Job) -> bool:
        """The lens of a draft failed or was cancelled: the review goes on, showing its hunks."""
        state = self.lifecycle
        if not isinstance(state, Reviewing) or job is not state.lensing:
            return False
        self.draft_lens_off(state)
        return True
