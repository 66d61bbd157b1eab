"""The status bar: file, model, device, quantization and what the editor is doing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label


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
