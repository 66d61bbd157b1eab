"""Running the model: loading it, starting runs and the lens, and the handlers of the
worker's messages, which move the run lifecycle (``dgterm.tui.lifecycle``) and paint.
The worker code itself is in ``dgterm.tui.background``."""

from __future__ import annotations

import threading
import time

from textual import work
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from dgterm.editor import DocumentError, structure
from dgterm.engine.backend import Engine
from dgterm.engine.params import DEFAULT_INSERT_TOKENS, SamplerParams, search_lengths
from dgterm.errors import DgtermError
from dgterm.tui import background
from dgterm.tui import messages as m
from dgterm.tui.actions.reviewing import threshold
from dgterm.tui.host import Host
from dgterm.tui.job import Job
from dgterm.tui.keymap import Mode
from dgterm.tui.lifecycle import Reviewing, Running
from dgterm.tui.screens.prompt import PromptScreen

STEP_PAINT_INTERVAL = 1 / 15  # seconds: run steps repaint at most 15 times a second, like the REPL


class ModelActions(Host):
    _spinner: Timer | None = None  # turns the status line's spinner while the model loads
    _step_timer: Timer | None = None  # a paint of the newest step is due
    _painted_at = 0.0

    # ------------------------------------------------------------------ workers

    def load_model_worker(self) -> None:
        """Load in a daemon thread, not a Textual worker: quitting (ctrl+q) must not wait for
        a load that takes seconds, and a worker's thread is joined when the app ends."""
        self._spinner = self.set_interval(0.2, self.refresh_status)
        threading.Thread(target=background.load_model, args=(self.engine_args, self.post_message),
                         name="dgterm-load", daemon=True).start()

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def run_job_worker(self, job: Job, lm: Engine | None) -> None:
        """``job`` on ``lm``; without a model, the run of the trace being replayed."""
        if lm is None and self.replay_path is not None:
            background.replay(self.replay_path, job, self.post_message, self.replay_delay, self.replay_until)
        elif lm is None:
            self.post_message(m.RunFailed(job, "No model is loaded, so nothing ran; the document is unchanged."))
        elif job.kind == "lens":
            background.lens(lm, job, self.post_message)
        else:
            background.execute(lm, job, self.post_message)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"Internal error in {event.worker.name}: {event.worker.error}; the document is unchanged.",
                        severity="error", timeout=12)
            job = self.job
            if self.mode != Mode.EDIT and self.apply(self.lifecycle.fail):
                self.end_run(job, restore=True)

    # ------------------------------------------------------------------ the model

    def _loading_done(self) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def on_model_loaded(self, message: m.ModelLoaded) -> None:
        self._loading_done()
        if self.apply(self.lifecycle.loaded, message.lm):
            background.settle_heap()
            self.refresh_status()
            self.refresh_spans()

    def on_model_failed(self, message: m.ModelFailed) -> None:
        self._loading_done()
        self.apply(self.lifecycle.load_failed, message.reason)
        self.notify(message.reason, title="Model not loaded", severity="error", timeout=12)
        self.refresh_status()

    def sampler_params(self, lm: Engine) -> SamplerParams | None:
        try:
            return self.engine_args.sampler_params(lm)
        except DgtermError as e:
            self.notify(str(e), severity="error")
            return None

    # ------------------------------------------------------------------ starting runs

    def action_infill(self) -> None:
        spans = self.doc.spans
        if not spans:
            self.notify("No masked spans: select text and press ctrl+t (no selection marks an insertion point).")
            return
        if self.allowed(self.lifecycle.ready) is not None:
            self.start_job(Job("infill", self.doc.text, [(s.start, s.end, s.target_tokens) for s in spans],
                               [s.id for s in spans], candidates=self.candidates))

    def action_search(self) -> None:
        span = self.target_span()
        if span is None:
            self.notify("A length search works on one span: put the cursor in a masked span.")
            return
        lm = self.allowed(self.lifecycle.ready)
        if lm is None:
            return
        n = span.target_tokens or self.token_count(span) or DEFAULT_INSERT_TOKENS
        self.start_job(Job("search", self.doc.text, [(span.start, span.end, None)], [span.id],
                           lengths=search_lengths(n, lm.canvas_length)))

    def action_rewrite(self) -> None:
        lm = self.allowed(self.lifecycle.ready)
        if lm is None:
            return
        if not lm.has_chat_template:
            self.notify(f"{lm.name} has no chat template, so it cannot follow instructions; "
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
                self.start_job(Job("rewrite", self.doc.text, [(a, b, None)], [span.id] if span else [],
                                   instruction=instruction, candidates=self.candidates), create=span is None)

        self.push_screen(PromptScreen("Rewrite with an instruction", "What should the model do with the selection?",
                                      placeholder="e.g. make it shorter; fix the bug; translate to French"), go)

    def action_continue_text(self) -> None:
        if self.allowed(self.lifecycle.ready) is not None:
            at = self.editor.cursor_offset()
            self.start_job(Job("continue", self.doc.text, [(at, at, None)], [], candidates=self.candidates),
                           create=True)

    def action_lens(self) -> None:
        if isinstance(self.lifecycle, Reviewing):
            self.toggle_draft_lens(self.lifecycle)
            return
        if self.editor.lens_active:
            self.editor.clear_lens()
            self.apply(self.lifecycle.lens_off)
            self.canvas.show_stats("Lens off.")
            return
        top = self.editor.scroll_offset.y
        first = max(0, min(top, self.doc.line_count - 1))
        last = min(self.doc.line_count - 1, top + self.editor.size.height)
        start = self.doc.offset_of(first, 0)
        end = self.doc.offset_of(last, len(self.doc.line_text(last)))
        job = Job("lens", self.doc.text, [(start, end, None)], [])
        if self.apply(self.lifecycle.start_lens, job):
            self.canvas.show_stats("Lens: scoring the visible text… (escape cancels)")
            self.refresh_status()
            self.run_job_worker(job, self.lm)

    def start_replay(self, path: str) -> None:
        """Replay the run recorded in the trace at ``path`` on the text it was recorded on."""
        try:
            job, notice = background.replay_job(path)
        except DgtermError as e:
            self.notify(str(e), title="Cannot replay", severity="error", timeout=12)
            return
        if notice is not None:
            self.notify(notice, severity="warning", timeout=12)
        if self.doc.text != job.text:
            if self.doc.path is not None:  # never put the recorded text into someone's file
                self.notify(f"{self.file_name()} is not the text this trace was recorded on, so it is left as it "
                            f"is; replay the trace on its own: dgterm open --replay {path}",
                            title="Cannot replay", severity="error", timeout=12)
                return
            self.editor.read_only = False
            self.doc.replace(0, len(self.doc.text), job.text)
            self.editor.sync_from_doc()
        self.doc.clear_spans()
        job.span_ids = [self.doc.add_span(s, e, n).id for s, e, n in job.spans]
        self.start_job(job)

    def start_job(self, job: Job, create: bool = False) -> None:
        """Start ``job`` (a replay's too): the lifecycle says whether a run may start now."""
        if self.editor.head_only:
            self.notify("The file is still loading; run the model in a moment.", severity="warning")
            return
        running = self.allowed(self.lifecycle.start_run, job)
        if running is None:
            return
        lm = running.lm
        if job.params is None and lm is not None:
            job.params = self.sampler_params(lm)
            if job.params is None:
                return
        job.trace = self.trace_path
        if job.kind != "continue":
            job.check = structure.checker(self.doc.path)
            job.require_valid = self.settings.require_valid
            job.thinking = self.settings.thinking == "on"
        try:
            if create:
                a, b, _ = job.spans[0]
                span = self.doc.add_span(a, b)
                job.span_ids, job.created_span = [span.id], True
            self.doc.begin_rewrite(job.span_ids, {"kind": job.kind, "instruction": job.instruction})
        except DocumentError as e:
            self.notify(str(e), severity="error")
            return
        self.lifecycle = running
        if self.editor.lens_active:  # its tint would be of the text before this run
            self.editor.clear_lens()
        self.editor.read_only = True
        self.editor.restyle()
        self.canvas.clear_run(f"Starting {job.label}…")
        self.refresh_spans()
        self.refresh_status()
        self.run_job_worker(job, lm)

    # ------------------------------------------------------------------ run messages

    def on_run_started(self, message: m.RunStarted) -> None:
        if self.lifecycle.owns(message.job):
            self.apply(self.lifecycle.started, message.layout)

    def on_step_message(self, message: m.StepMessage) -> None:
        """Paint the newest step, at most once per STEP_PAINT_INTERVAL: a paint costs the UI
        thread ~10 ms on a small machine, and key presses must not queue behind paints."""
        if not self.lifecycle.owns(message.job) or not self.apply(self.lifecycle.step, message.frame):
            return
        if self._step_timer is None:
            wait = self._painted_at + STEP_PAINT_INTERVAL - time.monotonic()
            if wait > 0:
                self._step_timer = self.set_timer(wait, self.paint_step)
            else:
                self.paint_step()

    def paint_step(self) -> None:
        self._step_timer = None
        state = self.lifecycle
        if not isinstance(state, Running) or state.pending is None:
            return  # the run ended meanwhile
        frame, job = state.pending, state.job
        self.lifecycle = state.painted(frame)
        self._painted_at = time.monotonic()
        self.editor.show_preview(dict(zip(job.span_ids, frame.drafts[0])))
        done = job.frames
        at = next((i for i in range(len(done) - 1, -1, -1) if done[i] is frame), len(done) - 1)
        self.canvas.show_frame(frame, 0, frames=done[: at + 1], threshold=threshold(job), label=job.label)
        self.refresh_status()

    def on_run_finished(self, message: m.RunFinished) -> None:
        state, job = self.lifecycle, message.job
        if not state.owns(job):
            return
        if not message.choices:
            self.notify("The run produced no candidate; the document is unchanged.", severity="warning")
            if self.apply(state.fail):
                self.end_run(job, restore=True)
            return
        if not self.apply(state.finish, message.frames, message.choices, message.stats):
            return
        self.show_review()
        best = message.choices[0]
        if job.kind == "infill" and job.require_valid and job.check is not None and best.valid is False:
            self.notify(f"None of the {len(message.choices)} candidates leaves the file valid (the likeliest: "
                        f"{best.reason}); review them or escape.", severity="warning", timeout=10)
        self.post_message(m.ReviewReady())

    def on_run_cancelled(self, message: m.RunCancelled) -> None:
        if self.draft_lens_ended(message.job):
            return
        if self.lifecycle.owns(message.job) and self.apply(self.lifecycle.fail):
            self.end_run(message.job, restore=True)
            self.notify("Run cancelled; the document is as it was.")

    def on_run_failed(self, message: m.RunFailed) -> None:
        if self.draft_lens_ended(message.job):
            pass  # the review goes on
        elif self.lifecycle.owns(message.job) and self.apply(self.lifecycle.fail):
            self.end_run(message.job, restore=True)
            self.canvas.show_stats(message.reason)
        if message.notice:
            self.notify(message.reason)
        else:
            self.notify(message.reason, title="Run failed", severity="error", timeout=10)
