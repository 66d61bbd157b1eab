"""Masking, running the model, reviewing a run, the lens: the app's model actions and
the handlers of the worker's messages. Mixed into the App; the worker code itself is
in ``dgterm.tui.workers``."""

from __future__ import annotations

import threading
import time

from textual import work

from dgterm.editor import DocumentError, structure
from dgterm.engine.params import DEFAULT_INSERT_TOKENS
from dgterm.errors import DgtermError
from dgterm.tui import messages as m
from dgterm.tui import workers
from dgterm.tui.keymap import Mode
from dgterm.tui.screens.prompt import PromptScreen
from dgterm.tui.review import Review

SPAN_STEP = 4  # tokens added or removed by grow / shrink
STEP_PAINT_INTERVAL = 1 / 15  # seconds: run steps repaint at most 15 times a second, like the REPL
LABELS = {"infill": "infill", "search": "length search", "rewrite": "rewrite", "continue": "continue",
          "lens": "lens"}


class ModelActions:
    """Needs from the app: doc, editor, canvas, lm, model_error, engine, mode, job, review."""

    _pending_frame = None  # the newest step not painted yet
    painted_frame = None  # the step on screen
    lens_shown = False  # the canvas panel shows the lens's findings
    _step_timer = None
    _painted_at = 0.0

    # ------------------------------------------------------------------ workers

    def load_model_worker(self) -> None:
        """Load in a daemon thread, not a Textual worker: quitting (ctrl+q) must not wait for
        a load that takes seconds, and a worker's thread is joined when the app ends."""
        threading.Thread(target=workers.load_model, args=(self.engine, self.post_message),
                         name="dgterm-load", daemon=True).start()

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def run_job_worker(self, job: workers.Job) -> None:
        if job.kind == "lens":
            workers.lens(self.lm, job, self.post_message)
        elif self.replay_path is not None and self.lm is None:
            workers.replay(self.replay_path, job, self.post_message, self.replay_delay, self.replay_until)
        else:
            workers.execute(self.lm, job, self.post_message)

    # ------------------------------------------------------------------ model messages

    def on_model_loaded(self, message: m.ModelLoaded) -> None:
        self.lm, self.model_error = message.lm, None
        workers.settle_heap()
        self.refresh_status()
        self.refresh_spans()

    def on_model_failed(self, message: m.ModelFailed) -> None:
        self.model_error = message.reason
        self.notify(message.reason, title="Model not loaded", severity="error", timeout=12)
        self.refresh_status()

    def require_model(self) -> bool:
        if self.lm is not None:
            return True
        if self.model_error:
            self.notify(f"No model: {self.model_error}", severity="error")
        else:
            self.notify("The model is still loading; editing works meanwhile, run it in a moment.")
        return False

    def sampler_params(self):
        try:
            return self.engine.sampler_params(self.lm)
        except DgtermError as e:
            self.notify(str(e), severity="error")
            return None

    # ------------------------------------------------------------------ masking

    def span_at(self, offset: int):
        return next((s for s in self.doc.spans if s.start <= offset <= s.end), None)

    def target_span(self):
        """The span under the cursor, else the only span there is. (An insertion point is
        an empty span: test it against None, not for truth.)"""
        span = self.span_at(self.editor.cursor_offset())
        if span is None and len(self.doc.spans) == 1:
            span = self.doc.spans[0]
        return span

    def action_mask(self) -> None:
        a, b = self.editor.selected_range()
        try:
            if a < b:
                self.doc.add_span(a, b)
            elif (span := self.span_at(a)) is not None:
                self.doc.remove_span(span)
            else:
                self.doc.add_span(a, a)  # an insertion point: the model writes new text here
        except DocumentError as e:
            self.notify(str(e), severity="error")
        self.spans_changed()

    def action_unmask_all(self) -> None:
        if self.doc.spans:
            self.doc.clear_spans()
            self.spans_changed()

    def action_grow(self) -> None:
        self._resize_span(SPAN_STEP)

    def action_shrink(self) -> None:
        self._resize_span(-SPAN_STEP)

    def _resize_span(self, delta: int) -> None:
        span = self.target_span()
        if span is None:
            self.notify("Put the cursor in a masked span to change its length.")
            return
        current = span.target_tokens if span.target_tokens is not None else self.token_count(span)
        limit = self.lm.canvas_length if self.lm else 4096
        n = max(1, min(limit, (current or 0) + delta))
        start, end = span.start, span.end
        with self.doc.group():
            self.doc.remove_span(span)
            self.doc.add_span(start, end, n)
        self.spans_changed()

    def token_count(self, span) -> int | None:
        if self.lm is None:
            return None
        if span.start == span.end:
            return DEFAULT_INSERT_TOKENS
        return len(self.lm.tokenizer(self.doc.text[span.start : span.end], add_special_tokens=False)["input_ids"])

    def spans_changed(self) -> None:
        self.editor.restyle()
        self.refresh_spans()
        self.refresh_status()

    def refresh_spans(self) -> None:
        rows = [(self.doc.text[s.start : s.end], s.target_tokens, self.token_count(s)) for s in self.doc.spans]
        self.canvas.show_spans(rows, self.lm.canvas_length if self.lm else None)

    # ------------------------------------------------------------------ starting runs

    def action_infill(self) -> None:
        spans = self.doc.spans
        if not spans:
            self.notify("No masked spans: select text and press ctrl+t (no selection marks an insertion point).")
            return
        if self.require_model():
            self.start_job(workers.Job("infill", self.doc.text, [(s.start, s.end, s.target_tokens) for s in spans],
                                       [s.id for s in spans], candidates=self.candidates))

    def action_search(self) -> None:
        span = self.target_span()
        if span is None:
            self.notify("A length search works on one span: put the cursor in a masked span.")
            return
        if not self.require_model():
            return
        n = span.target_tokens or self.token_count(span) or DEFAULT_INSERT_TOKENS
        lengths = sorted({max(1, min(self.lm.canvas_length // 2, k)) for k in (n // 2, n, n + n // 2, 2 * n)})
        self.start_job(workers.Job("search", self.doc.text, [(span.start, span.end, None)], [span.id],
                                   lengths=lengths))

    def action_rewrite(self) -> None:
        if not self.require_model():
            return
        if not self.lm.has_chat_template:
            self.notify(f"{self.lm.name} has no chat template, so it cannot follow instructions; "
                        "mask the text and infill it (ctrl+g) instead.", severity="warning")
            return
        a, b = self.editor.selected_range()
        span = None
        if a == b:
            span = self.span_at(a)
            if span is None or span.start == span.end:
                self.notify("Select the text to rewrite first (or put the cursor in a masked span).")
                return
            a, b = span.start, span.end

        def go(instruction: str | None) -> None:
            if instruction:
                self.start_job(workers.Job("rewrite", self.doc.text, [(a, b, None)], [span.id] if span else [],
                                           instruction=instruction, candidates=self.candidates),
                               create=span is None)

        self.push_screen(PromptScreen("Rewrite with an instruction", "What should the model do with the selection?",
                                      placeholder="e.g. make it shorter; fix the bug; translate to French"), go)

    def action_continue_text(self) -> None:
        if self.require_model():
            at = self.editor.cursor_offset()
            self.start_job(workers.Job("continue", self.doc.text, [(at, at, None)], [], candidates=self.candidates),
                           create=True)

    def action_lens(self) -> None:
        if self.editor.lens_active:
            self.editor.clear_lens()
            self.lens_shown = False
            self.canvas.show_stats("Lens off.")
            return
        if not self.require_model():
            return
        top = self.editor.scroll_offset.y
        first = max(0, min(top, self.doc.line_count - 1))
        last = min(self.doc.line_count - 1, top + self.editor.size.height)
        start = self.doc.offset_of(first, 0)
        end = self.doc.offset_of(last, len(self.doc.line_text(last)))
        job = workers.Job("lens", self.doc.text, [(start, end, None)], [])
        self.job, self.mode = job, Mode.LENS
        self.canvas.show_stats("Lens: scoring the visible text… (escape cancels)")
        self.refresh_status()
        self.run_job_worker(job)

    def start_job(self, job: workers.Job, create: bool = False) -> None:
        if self.editor.loading:
            self.notify("The file is still loading; run the model in a moment.", severity="warning")
            return
        if job.kind != "lens" and job.params is None:
            job.params = self.sampler_params() if self.lm is not None else job.params
            if job.params is None and self.lm is not None:
                return
        job.trace = self.trace_path
        if job.kind != "continue":
            job.check = structure.checker(self.doc.path)
            job.require_valid = self.settings.require_valid
        try:
            if create:
                a, b, _ = job.spans[0]
                span = self.doc.add_span(a, b)
                job.span_ids, job.created_span = [span.id], True
            self.doc.begin_rewrite(job.span_ids, {"kind": job.kind, "instruction": job.instruction})
        except DocumentError as e:
            self.notify(str(e), severity="error")
            return
        self.job, self.review, self.mode = job, None, Mode.RUNNING
        self.editor.read_only = True
        self.editor.restyle()
        self.canvas.clear_run(f"Starting {LABELS[job.kind]}…")
        self.refresh_spans()
        self.refresh_status()
        self.run_job_worker(job)

    # ------------------------------------------------------------------ run messages

    def on_run_started(self, message: m.RunStarted) -> None:
        if message.job is self.job:
            self.layout = message.layout

    def on_step_message(self, message: m.StepMessage) -> None:
        """Paint the newest step, at most once per STEP_PAINT_INTERVAL: a paint costs the UI
        thread ~10 ms on a small machine, and key presses must not queue behind paints."""
        if message.job is not self.job:
            return
        self._pending_frame = message.frame
        if self._step_timer is None:
            wait = self._painted_at + STEP_PAINT_INTERVAL - time.monotonic()
            if wait > 0:
                self._step_timer = self.set_timer(wait, self.paint_step)
            else:
                self.paint_step()

    def paint_step(self) -> None:
        self._step_timer = None
        frame, self._pending_frame = self._pending_frame, None
        job = self.job
        if frame is None or job is None or self.mode != Mode.RUNNING:
            return
        self._painted_at, self.painted_frame = time.monotonic(), frame
        self.editor.show_preview(dict(zip(job.span_ids, frame.drafts[0])))
        done = job.frames
        at = next((i for i in range(len(done) - 1, -1, -1) if done[i] is frame), len(done) - 1)
        frames = done[: at + 1]
        self.canvas.show_frame(frame, 0, frames=frames, threshold=self.threshold(job), label=LABELS[job.kind])
        rows = len(frame.drafts)
        shown = f" · showing draft 1 of {rows}" if rows > 1 else ""
        self.step_label = f"step {frame.step}/{frame.max_steps} · window {frame.window + 1}{shown}"
        self.refresh_status()

    def threshold(self, job) -> float:
        return getattr(job.params, "confidence", 0.0) or 0.0

    def on_run_finished(self, message: m.RunFinished) -> None:
        if message.job is not self.job:
            return
        if not message.choices:
            self.notify("The run produced no candidate; the document is unchanged.", severity="warning")
            self.end_run(restore=True)
            return
        self.review = Review(message.job, self.layout, message.frames, message.choices, message.stats)
        self.mode = Mode.REVIEW
        self.show_review()
        job, best = message.job, message.choices[0]
        if job.kind == "infill" and job.require_valid and job.check is not None and best.valid is False:
            self.notify(f"None of the {len(message.choices)} candidates leaves the file valid (the likeliest: "
                        f"{best.reason}); review them or escape.", severity="warning", timeout=10)
        self.post_message(m.ReviewReady())

    def on_run_cancelled(self, message: m.RunCancelled) -> None:
        if message.job is self.job:
            self.end_run(restore=True)
            self.notify("Run cancelled; the document is as it was.")

    def on_run_failed(self, message: m.RunFailed) -> None:
        if message.job is self.job:
            self.end_run(restore=True)
            self.canvas.show_stats(message.reason)
        self.notify(message.reason, title="Run failed", severity="error", timeout=10)

    def on_lens_ready(self, message: m.LensReady) -> None:
        if message.job is not self.job:
            return
        self.job, self.mode = None, Mode.EDIT
        scores = message.scores
        self.editor.show_lens([(t.start, t.end, t.prob, t.top_prob) for t in scores])
        worst = sorted(scores, key=lambda t: t.prob / max(t.top_prob, 1e-12))[:8]
        changed = sum(1 for t in scores if t.top_prob > t.prob)
        lines = [f"Lens: {len(scores)} tokens scored, {changed} not the model's pick; escape or ctrl+l clears it.",
                 "Most likely to change (→ model's pick):"]
        lines += [f"  {t.token!r} → {t.top!r}  ({t.top_prob / max(t.prob, 1e-12):.0f}×)" for t in worst]
        self.canvas.show_stats("\n".join(lines))
        self.lens_shown = True
        self.refresh_status()

    # ------------------------------------------------------------------ review

    def show_review(self) -> None:
        rv = self.review
        self.editor.show_preview(rv.drafts())
        frame = rv.frame()
        if frame is not None:
            upto = rv.frames[: (rv.step if rv.step is not None else len(rv.frames) - 1) + 1]
            self.canvas.show_frame(frame, rv.row, frames=upto, threshold=self.threshold(rv.job),
                                   label=f"{LABELS[rv.job.kind]} · {rv.stats.get('tokens_per_second', 0):.1f} tok/s overall")
        self.canvas.show_choices(rv.choices, rv.choice, rv.position_label())
        self.refresh_status()

    def action_accept(self) -> None:
        rv, doc = self.review, self.doc
        texts, job = rv.current.texts, rv.job
        try:
            if job.created_span:
                a, b, _ = job.spans[0]
                doc.undo()  # drop the span marked for this run: mark + rewrite become one undo step
                with doc.group():
                    span = doc.add_span(a, b)
                    doc.apply_rewrite({span: texts[0]})
            else:
                doc.apply_rewrite(dict(zip(job.span_ids, texts)))
        except DocumentError as e:
            self.notify(str(e), severity="error")
            self.end_run(restore=True)
            return
        self.end_run(restore=False)
        self.notify("Accepted; ctrl+z undoes the whole rewrite.")

    def action_next_candidate(self) -> None:
        self.review.next_choice(1)
        self.show_review()

    def action_prev_candidate(self) -> None:
        self.review.next_choice(-1)
        self.show_review()

    def action_step_back(self) -> None:
        self.review.scrub(-1)
        self.show_review()

    def action_step_forward(self) -> None:
        self.review.scrub(1)
        self.show_review()

    def action_cancel(self) -> None:
        if self.mode == Mode.RUNNING:
            self.job.cancel.set()  # the engine stops before its next decoder forward
            self.end_run(restore=True)
            self.canvas.show_stats("Cancelled; the document is as it was.")
            self.notify("Run cancelled; the document is as it was.")
        elif self.mode == Mode.REVIEW:
            self.end_run(restore=True)
            self.notify("Rejected; the document is as it was.")
        elif self.mode == Mode.LENS:
            self.job.cancel.set()
            self.job, self.mode = None, Mode.EDIT
            self.canvas.show_stats("Lens cancelled.")
            self.refresh_status()
        elif self.editor.lens_active:
            self.action_lens()

    def end_run(self, restore: bool) -> None:
        """Leave running/review: the document as it was (restore) or as accepted."""
        job, self.job, self.review = self.job, None, None
        if job is not None:
            job.cancel.set()
            if restore:
                self.doc.end_rewrite()
                if job.created_span and self.doc.can_undo():
                    self.doc.undo()
        self.mode = Mode.EDIT
        self.editor.read_only = self.doc.read_only
        self.editor.sync_from_doc()
        self.editor.focus()
        self.canvas.show_choices([], 0)  # the candidates and the timeline are gone with the review
        self.canvas.clear_run("No run shown.")  # nor its canvas: after an undo it would not be what is on screen
        self.spans_changed()
        self.refresh_file()
