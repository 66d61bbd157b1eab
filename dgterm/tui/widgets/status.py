"""The status bar: file, model, device, quantization and what the editor is doing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from dgterm.tui.keymap import Mode
from dgterm.tui.lifecycle import LoadFailed

if TYPE_CHECKING:
    from dgterm.config import Settings
    from dgterm.tui.lifecycle import State


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; }
    StatusBar Label { padding: 0 1; height: 1; }
    StatusBar #status-file { text-style: bold; max-width: 50%; }
    StatusBar #status-state { width: 1fr; color: $text-muted; }
    StatusBar #status-state.-busy { color: $warning; }
    StatusBar #status-state.-error { color: $error; }
    StatusBar #status-state.-review { color: $success; }
    StatusBar #status-model { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        # file names and model names are shown as they are, never read as markup
        yield Label("", id="status-file", markup=False)
        yield Label("", id="status-state", markup=False)
        yield Label("", id="status-model", markup=False)

    def set_file(self, text: str) -> None:
        self._set("#status-file", text, layout=True)

    def set_model(self, text: str) -> None:
        self._set("#status-model", text, layout=True)

    def show_model(self, state: State, settings: Settings, replay: str | None) -> None:
        """The model: what is loaded, or what is being loaded (or replayed) and how."""
        if state.lm is not None:
            self.set_model(state.lm.describe())
        elif replay is not None:
            self.set_model(f"replay {os.path.basename(replay)}")
        elif isinstance(state, LoadFailed):
            self.set_model(f"{settings.server or settings.model}: not loaded")
        elif settings.server:
            self.set_model(f"{settings.server} · connecting")
        else:
            self.set_model(f"{settings.model} · {settings.device} · quant {settings.quant}")

    def show_state(self, state: State, *, loading_chars: int | None, spans: int, narrow: bool) -> None:
        """What the editor is doing: the run's state first, then a file still loading
        (``loading_chars``: its size), then the model's state, else ready."""
        line = state.status() if state.mode != Mode.EDIT or loading_chars is None else None
        if line is not None:
            self.set_state(*line)
        elif loading_chars is not None:
            self.set_state(f"loading the rest of the file ({loading_chars / 1e6:.0f} M characters): read-only for "
                           "a moment", "busy")
        else:
            hidden = " · canvas hidden: narrow window (ctrl+b shows it)" if narrow else ""
            self.set_state((f"ready · {spans} masked span{'s' if spans != 1 else ''}" if spans else "ready") + hidden)

    def set_state(self, text: str, kind: str = "") -> None:
        label = self._set("#status-state", text, layout=False)  # 1fr wide: its size never depends on the text
        for k in ("busy", "error", "review"):
            label.set_class(k == kind, f"-{k}")

    def _set(self, selector: str, text: str, layout: bool) -> Label:
        """Update a label only when its text changes: a layout pass per run step would
        cost more than the step's repaint."""
        label = self.query_one(selector, Label)
        if label.content != text:
            label.update(text, layout=layout)
        return label
