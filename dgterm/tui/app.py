"""The dgterm editor: the App, its layout and mode, and ``make_app`` (shared by the CLI,
the tests and the screenshot script). Actions live in ``dgterm.tui.actions``."""

from __future__ import annotations

import gc
import os
import time

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Footer

from dgterm.config import Settings, config_dir
from dgterm.engine.args import EngineArgs
from dgterm.engine.backend import Engine
from dgterm.editor import Document, DocumentError
from dgterm.tui import keymap
from dgterm.tui.keymap import Mode
from dgterm.tui.actions.files import FileActions
from dgterm.tui.actions.model import LABELS, ModelActions
from dgterm.tui.palette import EditorCommands
from dgterm.tui.screens.help import HelpScreen
from dgterm.tui.screens.prompt import PromptScreen
from dgterm.tui import themes
from dgterm.tui.widgets.canvas import CanvasPanel
from dgterm.tui.widgets.editor import EditorView
from dgterm.tui.widgets.status import StatusBar
from dgterm.tui.workers import settle_heap

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
EDITOR_MIN, PANEL_MIN, PANEL_MAX = 86, 30, 56  # columns: the editor keeps room for 80 columns of code
REVIEW_KEYS = {"accept", "next_candidate", "prev_candidate", "step_back", "step_forward"}
EDIT_KEYS = {"mask", "unmask_all", "grow", "shrink", "infill", "search", "rewrite", "continue_text", "lens", "save",
             "save_as", "reload"}


class DgtermApp(FileActions, ModelActions, App[None]):
    CSS_PATH = "styles.tcss"
    TITLE = "dgterm"
    BINDINGS = keymap.bindings()
    COMMANDS = App.COMMANDS | {EditorCommands}

    mode: reactive[Mode] = reactive(Mode.EDIT)

    def __init__(self, doc: Document, *, engine: EngineArgs, lm=None, load: bool = True,
                 trace: str | None = None, replay: str | None = None, replay_delay: float = 0.05,
                 replay_until: int | None = None, notice: str | None = None) -> None:
        """``engine``: the model and sampler settings (the one way in, dgterm.engine.args)."""
        super().__init__()
        self.doc, self.engine, self.settings = doc, engine, engine.settings
        self.lm: Engine | None = lm  # the engine, once loaded (here or at --server)
        self.load_on_start = load and lm is None and replay is None
        self.candidates, self.trace_path = max(1, engine.candidates), trace
        self.replay_path, self.replay_delay, self.replay_until = replay, replay_delay, replay_until
        self.notice = notice
        self.keymap_overrides = dict(engine.settings.keymap)
        self.model_error: str | None = None
        self.job = self.review = self.layout = None
        self.step_label = ""
        self.loading_since = time.monotonic() if self.load_on_start else None  # the first status says loading
        self.disk_warned = self.quit_after_save = False
        self._last_note: tuple = (None, 0.0)
        self.theme_stamp: tuple = ()  # of the theme files, see check_themes
        self.canvas_wanted: bool | None = None  # ctrl+b's choice; None: shown when the terminal is wide enough

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

    def install_themes(self) -> tuple[dict, list[str]]:
        """Register every theme file (built in, then the user's); the problems as sentences."""
        folder = config_dir() / "themes"
        self.theme_stamp = themes.stamp(folder)
        found, problems = themes.load_themes(folder)
        for theme in found.values():
            self.register_theme(theme)
        return found, problems

    def check_themes(self) -> None:
        """Timer: a theme file was edited, added or removed; apply it live."""
        if themes.stamp(config_dir() / "themes") == self.theme_stamp:
            return
        found, problems = self.install_themes()
        for problem in problems:
            self.notify(problem, title="Theme", severity="warning", timeout=10)
        if self.theme in found:
            self.refresh_css(animate=False)
            self.repaint()

    def on_mount(self) -> None:
        found, problems = self.install_themes()
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            problems.append(f"Theme '{self.settings.theme}' was not found; using dgterm-dark. "
                            f"Available: {', '.join(sorted(found))}.")
            self.theme = "dgterm-dark" if "dgterm-dark" in found else "textual-dark"
        self.theme_changed_signal.subscribe(self, lambda _theme: self.repaint())
        known = {a.id for a in keymap.ACTIONS}
        unknown = sorted(set(self.keymap_overrides) - known)
        if unknown:
            problems.append(f"Unknown binding id(s) in [keymap]: {', '.join(unknown)}; see the help screen (F1).")
        self.set_keymap({k: v for k, v in self.keymap_overrides.items() if k in known})
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
        if self.load_on_start:
            self._spinner = self.set_interval(0.2, self.refresh_status)
            self.load_model_worker()
        if self.editor.loading:  # the status says so first, then the UI is busy for a moment
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
            self.start_replay()

    def start_replay(self) -> None:
        from dgterm.engine.params import SamplerParams
        from dgterm.errors import DgtermError
        from dgterm.tui.job import Job
        from dgterm.tui.workers import read_replay

        try:
            trace = read_replay(self.replay_path)
        except DgtermError as e:
            self.notify(str(e), title="Cannot replay", severity="error", timeout=12)
            return
        meta, header = trace.header["dgterm"], trace.header
        if self.doc.text != meta["text"]:
            if self.doc.path is not None:  # never put the recorded text into someone's file
                self.notify(f"{self.file_name()} is not the text this trace was recorded on, so it is left as it "
                            f"is; replay the trace on its own: dgterm open --replay {self.replay_path}",
                            title="Cannot replay", severity="error", timeout=12)
                return
            self.editor.read_only = False
            self.doc.replace(0, len(self.doc.text), meta["text"])
            self.editor.sync_from_doc()
        self.doc.clear_spans()
        ids = [self.doc.add_span(s, e, n).id for s, e, n in meta["spans"]]
        try:
            params = SamplerParams(**header.get("params", {}))
        except (TypeError, ValueError):
            params = SamplerParams()
        kind = header.get("task", "infill")
        job = Job(kind if kind in LABELS else "infill", self.doc.text, [tuple(s) for s in meta["spans"]], ids,
                  params=params, instruction=meta.get("instruction", ""))
        self.start_job(job)

    def on_unmount(self) -> None:
        gc.unfreeze()  # let the interpreter's exit clean up what settle_heap set aside
        if self.job is not None:
            self.job.cancel.set()  # let a worker thread that is mid-run stop at its next step
            self.job = None  # and ignore what it still posts

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages carry file names, model output and error text: show them literally (a
        path like ``notes[1].md`` is not markup). A message still on screen is not repeated."""
        now, timeout = time.monotonic(), self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        if self._last_note[0] == (message, title, severity) and now < self._last_note[1]:
            return
        self._last_note = ((message, title, severity), now + timeout)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def get_system_commands(self, screen):
        """Textual's own commands, less its Quit: the editor's Quit (which asks about unsaved
        changes) is in the palette already."""
        return (c for c in super().get_system_commands(screen) if c.title != "Quit")

    def repaint(self) -> None:
        self.editor.restyle()
        if self.review is not None:
            self.show_review()

    # ------------------------------------------------------------------ mode and status

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The keymap says in which modes each key works (keymap.enabled)."""
        return keymap.enabled(action, self.mode, isinstance(self.screen, ModalScreen), self.editor.lens_active)

    def watch_mode(self, _old: Mode, _new: Mode) -> None:
        self.refresh_bindings()
        self.refresh_status()

    def refresh_file(self) -> None:
        doc = self.doc
        flags = (" ●" if doc.dirty else "") + (" [read-only]" if doc.read_only else "") + \
            (" [new]" if doc.is_new and doc.path else "")
        self.query_one(StatusBar).set_file(self.file_name() + flags)
        self.sub_title = self.file_name()

    def refresh_status(self) -> None:
        bar = self.query_one(StatusBar)
        lm = self.lm
        if lm is not None:
            bar.set_model(lm.describe())
        elif self.replay_path is not None:
            bar.set_model(f"replay {os.path.basename(self.replay_path)}")
        elif self.model_error:
            bar.set_model(f"{self.settings.server or self.settings.model}: not loaded")
        elif self.settings.server:
            bar.set_model(f"{self.settings.server} · connecting")
        else:
            bar.set_model(f"{self.settings.model} · {self.settings.device} · quant {self.settings.quant}")
        if lm is not None or self.model_error:
            spinner = getattr(self, "_spinner", None)
            if spinner is not None:
                spinner.stop()
                self._spinner = None
        mode = self.mode
        if mode == Mode.RUNNING and self.job is not None:
            bar.set_state(f"{LABELS[self.job.kind]} · {self.step_label or 'starting'} · escape cancels", "busy")
        elif mode == Mode.LENS:
            bar.set_state("lens · scoring the visible text · escape cancels", "busy")
        elif mode == Mode.REVIEW and self.review is not None:
            rv = self.review
            drawn = f" (draft {rv.row + 1} of the run)" if len(rv.choices) > 1 else ""
            bar.set_state(f"candidate {rv.choice + 1}/{len(rv.choices)}{drawn} · enter accept · escape reject · "
                          "tab next · ←/→ steps", "review")
        elif self.editor.loading:
            size = len(self.doc.text) / 1e6
            bar.set_state(f"loading the rest of the file ({size:.0f} M characters): read-only for a moment", "busy")
        elif self.model_error and lm is None and self.replay_path is None:
            bar.set_state("model unavailable: editing only", "error")
        elif lm is None and self.loading_since is not None:
            spin = SPINNER[int(time.monotonic() * 5) % len(SPINNER)]
            bar.set_state(f"{spin} loading model… {time.monotonic() - self.loading_since:.1f}s (editing works)",
                          "busy")
        else:
            n = len(self.doc.spans)
            hidden = " · canvas hidden: narrow window (ctrl+b shows it)" if self.canvas.has_class("-narrow") else ""
            bar.set_state((f"ready · {n} masked span{'s' if n != 1 else ''}" if n else "ready") + hidden)

    # ------------------------------------------------------------------ view actions

    def on_editor_view_edited(self, _message: EditorView.Edited) -> None:
        self.refresh_file()
        self.refresh_spans()  # undo and redo bring spans back or take them away
        self.refresh_status()
        notice = self.doc.pop_notice()  # e.g. the journal failed at this edit's write
        if notice:
            self.notify(notice, severity="warning", timeout=12)
        if self.lens_shown and not self.editor.lens_active:
            self.lens_shown = False
            self.canvas.show_stats("Lens off: the text changed.")

    def on_editor_view_refused(self, message: EditorView.Refused) -> None:
        self.notify(message.reason, severity="error")

    def action_document_start(self) -> None:
        self.editor.move_cursor((0, 0), center=True)

    def action_document_end(self) -> None:
        self.editor.move_cursor(self.editor.document.end, center=True)

    def action_goto_line(self) -> None:
        last = self.editor.document.line_count

        def go(answer: str | None) -> None:
            if answer is None or not answer.strip():
                return
            try:
                line = int(answer.strip())
            except ValueError:
                self.notify(f"'{answer.strip()}' is not a line number; give a whole number from 1 to {last}.",
                            severity="error")
                return
            line = min(max(line, 1), last)
            self.editor.move_cursor((line - 1, 0), center=True)

        row = self.editor.cursor_location[0] + 1
        self.push_screen(PromptScreen("Go to line", f"A line number from 1 to {last} (now {row}).",
                                      placeholder=str(row)), go)

    def on_resize(self, event) -> None:
        self.fit_canvas(event.size.width)

    def fit_canvas(self, width: int) -> None:
        """The canvas panel takes what the editor does not need, up to PANEL_MAX columns; below
        PANEL_MIN it is hidden (unless ctrl+b asked for it) and the status bar says so."""
        room = width - EDITOR_MIN
        canvas = self.canvas
        canvas.styles.width = max(PANEL_MIN, min(PANEL_MAX, room))
        canvas.set_class(self.canvas_wanted is None and room < PANEL_MIN, "-narrow")
        canvas.set_class(self.canvas_wanted is False, "-hidden")
        self.refresh_status()

    def action_toggle_canvas(self) -> None:
        canvas = self.canvas
        self.canvas_wanted = canvas.has_class("-narrow") or canvas.has_class("-hidden")  # shown now if it was not
        self.fit_canvas(self.size.width)

    def action_toggle_wrap(self) -> None:
        self.editor.soft_wrap = not self.editor.soft_wrap

    def action_next_theme(self) -> None:
        names = sorted(n for n in self.available_themes if n.startswith("dgterm")) or sorted(self.available_themes)
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"Theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.keymap_overrides))

    def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.state == WorkerState.ERROR:
            self.notify(f"Internal error in {event.worker.name}: {event.worker.error}; the document is unchanged.",
                        severity="error", timeout=12)
            if self.mode != Mode.EDIT:
                self.end_run(restore=True)


# Textual's TextArea spends ~60 ms per million characters of the cursor's line on every key
# (tab expansion and cell widths over the whole line; docs/reliability.md).
LONGEST_LINE = 1_000_000


def open_document(path: str | None) -> tuple[Document, str | None]:
    """The document for ``path``; a scratch buffer and the reason if it cannot be opened."""
    if path is None:
        return Document.from_text(""), None
    try:
        doc = Document.open(path)
    except DocumentError as e:
        return Document.from_text(""), str(e)
    longest = max(map(len, doc.text.split("\n")))
    if longest > LONGEST_LINE:
        doc.close()
        return Document.from_text(""), (
            f"{path} has a line of {longest:,} characters, more than the {LONGEST_LINE:,} the editor takes (each key "
            f"would take seconds); break the line, or rewrite parts of it with `dgterm infill {path} --span START:END`.")
    return doc, None


def make_app(path: str | None = None, *, engine: EngineArgs | None = None, settings: Settings | None = None,
             sampler: dict | None = None, candidates: int = 2, download: bool = False, doc: Document | None = None,
             **options) -> DgtermApp:
    """The editor for ``path`` (or ``doc``), for ``engine`` or else the engine of ``settings``,
    ``sampler``, ``candidates`` and ``download``. ``options``: lm, load, trace, replay,
    replay_delay, replay_until (see DgtermApp)."""
    notice = None
    if doc is None:
        doc, notice = open_document(path)
    engine = engine or EngineArgs.from_settings(settings, sampler=sampler, candidates=candidates, download=download)
    return DgtermApp(doc, engine=engine, notice=notice, **options)
