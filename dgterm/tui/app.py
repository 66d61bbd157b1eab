"""The dgterm editor: the App (its layout, the run lifecycle it holds, the status bar) and
``make_app`` (shared by the CLI, the tests and the screenshot script). The actions live in
``dgterm.tui.actions``, the run lifecycle in ``dgterm.tui.lifecycle``."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from typing import ClassVar, ParamSpec, TypeVar

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.reactive import var
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer

from dgterm.config import Settings
from dgterm.editor import Document
from dgterm.engine.args import EngineArgs
from dgterm.engine.backend import Engine
from dgterm.engine.output.frames import Frame
from dgterm.tui import keymap
from dgterm.tui.actions.doubt import DoubtActions
from dgterm.tui.actions.draft_lens import DraftLensActions
from dgterm.tui.actions.files import LONGEST_LINE, FileActions, open_document
from dgterm.tui.actions.hunks import HunkActions
from dgterm.tui.actions.masking import MaskActions
from dgterm.tui.actions.model import ModelActions
from dgterm.tui.actions.reviewing import ReviewActions
from dgterm.tui.actions.view import ViewActions
from dgterm.tui.background import settle_heap
from dgterm.tui.job import Job
from dgterm.tui.keymap import Mode
from dgterm.tui.lifecycle import Busy, Idle, LoadFailed, Loading, Refused, Reviewing, Running, State, first_state
from dgterm.tui.palette import EditorCommands
from dgterm.tui.review import Review
from dgterm.tui.widgets.canvas import CanvasPanel
from dgterm.tui.widgets.editor import EditorView
from dgterm.tui.widgets.status import StatusBar

__all__ = ["LONGEST_LINE", "DgtermApp", "make_app"]
P = ParamSpec("P")
T = TypeVar("T")


class DgtermApp(FileActions, MaskActions, ModelActions, ReviewActions, HunkActions, DoubtActions, DraftLensActions,
                ViewActions, App[None]):
    CSS_PATH = "styles.tcss"
    TITLE = "dgterm"
    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings()
    COMMANDS = App.COMMANDS | {EditorCommands}

    lifecycle: var[State] = var[State](Idle())  # where the editor is in a run: the one run state

    def __init__(self, doc: Document, *, engine_args: EngineArgs, lm: Engine | None = None, load: bool = True,
                 trace: str | None = None, replay: str | None = None, replay_delay: float = 0.05,
                 replay_until: int | None = None, notice: str | None = None) -> None:
        """``engine_args``: the model and sampler settings (the one way in, dgterm.engine.args)."""
        super().__init__()
        self.doc, self.engine_args, self.settings = doc, engine_args, engine_args.settings
        self.candidates, self.trace_path = max(1, engine_args.candidates), trace
        self.replay_path, self.replay_delay, self.replay_until = replay, replay_delay, replay_until
        self.notice = notice
        self.keymap_overrides = dict(engine_args.settings.keymap)
        # the first status already says loading; the model (here or at --server) loads after the first paint
        self.set_reactive(DgtermApp.lifecycle, first_state(lm, load and lm is None and replay is None))
        self._last_note: tuple = (None, 0.0)

    # ------------------------------------------------------------------ the run lifecycle

    @property
    def mode(self) -> Mode:
        return self.lifecycle.mode

    @property
    def lm(self) -> Engine | None:
        return self.lifecycle.lm

    @property
    def model_error(self) -> str | None:
        return self.lifecycle.reason if isinstance(self.lifecycle, LoadFailed) else None

    @property
    def job(self) -> Job | None:
        """The run going or under review."""
        state = self.lifecycle
        return state.job if isinstance(state, Busy) else state.review.job if isinstance(state, Reviewing) else None

    @property
    def review(self) -> Review | None:
        return self.lifecycle.review if isinstance(self.lifecycle, Reviewing) else None

    @property
    def painted_frame(self) -> Frame | None:
        """The step of the run on screen."""
        return self.lifecycle.shown if isinstance(self.lifecycle, Running) else None

    def allowed(self, ask: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``ask(...)``, or None after showing the sentence with which the state refuses it."""
        try:
            return ask(*args, **kwargs)
        except Refused as no:
            self.notify(no.notice, severity=no.severity)
            return None

    def apply(self, transition: Callable[P, State], *args: P.args, **kwargs: P.kwargs) -> bool:
        """Move the lifecycle by ``transition`` of the current state, if the state allows it."""
        state = self.allowed(transition, *args, **kwargs)
        if state is not None:
            self.lifecycle = state
        return state is not None

    def watch_lifecycle(self, old: State, new: State) -> None:
        if old.mode != new.mode:  # the keymap says in which modes each key works
            self.refresh_bindings()
            self.refresh_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.lifecycle
        lens = self.editor.lens_active or isinstance(state, Reviewing) and state.lens_shown
        return keymap.enabled(action, self.mode, isinstance(self.screen, ModalScreen), lens)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield EditorView(self.doc, id="editor")
            yield CanvasPanel(id="canvas")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def editor(self) -> EditorView:
        return self.query_one(EditorView)

    @property
    def canvas(self) -> CanvasPanel:
        return self.query_one(CanvasPanel)

    def on_mount(self) -> None:
        problems = self.set_theme_and_keys()
        for problem in problems + ([self.notice] if self.notice else []):
            self.notify(problem, severity="error", timeout=12)
        self.doc.pop_notice()  # shown right here as the warning
        if self.doc.warning:
            self.notify(self.doc.warning, severity="warning", timeout=12)
        self.editor.focus()
        self.fit_canvas(self.size.width)
        self.refresh_file()
        self.refresh_spans()
        self.refresh_status()
        self.set_interval(2.0, self.check_disk)
        self.set_interval(1.0, self.check_themes)
        self.call_after_refresh(self.startup)

    def startup(self) -> None:
        """After the first paint: load the model, the rest of a large file, offer recovery,
        start a replay."""
        if self.lm is not None:
            settle_heap()
        if isinstance(self.lifecycle, Loading):
            self.load_model_worker()
        if self.editor.head_only:  # the status says so first, then the UI is busy for a moment
            self.set_timer(0.05, self.finish_loading)
            return
        self.after_loading()

    def finish_loading(self) -> None:
        self.editor.finish_loading()
        self.editor.focus()  # Textual moves the focus off a TextArea whose document is replaced
        self.refresh_spans()
        self.refresh_status()
        self.after_loading()

    def after_loading(self) -> None:
        self.offer_recovery()
        if self.replay_path is not None:
            self.start_replay(self.replay_path)

    def on_unmount(self) -> None:
        gc.unfreeze()  # let the interpreter's exit clean up what settle_heap set aside
        if self.job is not None:
            self.job.cancel.set()  # let a worker thread that is mid-run stop at its next step
            self.set_reactive(DgtermApp.lifecycle, Idle(lm=self.lm))  # and ignore what it still posts

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages carry file names, model output and error text: show them literally (a
        path like ``notes[1].md`` is not markup). A message still on screen is not repeated."""
        now, timeout = time.monotonic(), self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        if self._last_note[0] == (message, title, severity) and now < self._last_note[1]:
            return
        self._last_note = ((message, title, severity), now + timeout)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands, less its Quit: the editor's Quit (which asks about unsaved
        changes) is in the palette already."""
        return (c for c in super().get_system_commands(screen) if c.title != "Quit")

    def repaint(self) -> None:
        self.editor.restyle()
        if self.review is not None:
            self.show_review()

    # ------------------------------------------------------------------ status

    def refresh_status(self) -> None:
        bar, state = self.query_one(StatusBar), self.lifecycle
        bar.show_model(state, self.settings, self.replay_path)
        bar.show_state(state, loading_chars=len(self.doc.text) if self.editor.head_only else None,
                       spans=len(self.doc.spans), narrow=self.canvas.has_class("-narrow"))

    # ------------------------------------------------------------------ editor and worker events

    def on_editor_view_edited(self, _message: EditorView.Edited) -> None:
        self.refresh_file()
        self.refresh_spans()  # undo and redo bring spans back or take them away
        self.refresh_status()
        notice = self.doc.pop_notice()  # e.g. the journal failed at this edit's write
        if notice:
            self.notify(notice, severity="warning", timeout=12)
        self.lens_off_after_edit()

    def on_editor_view_refused(self, message: EditorView.Refused) -> None:
        self.notify(message.reason, severity="error")


def make_app(path: str | None = None, *, engine_args: EngineArgs | None = None, settings: Settings | None = None,
             sampler: dict | None = None, candidates: int = 2, download: bool = False, doc: Document | None = None,
             **options) -> DgtermApp:
    """The editor for ``path`` (or ``doc``), for ``engine_args`` or else the engine of ``settings``,
    ``sampler``, ``candidates`` and ``download``. ``options``: lm, load, trace, replay,
    replay_delay, replay_until (see DgtermApp)."""
    notice = None
    if doc is None:
        doc, notice = open_document(path)
    engine_args = engine_args or EngineArgs.from_settings(settings, sampler=sampler, candidates=candidates,
                                                          download=download)
    return DgtermApp(doc, engine_args=engine_args, notice=notice, **options)
