"""A question with a few buttons (unsaved changes, recovery, overwrite)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[str]):
    """``choices``: (id, label) pairs; dismisses with the chosen id, or ``cancel`` on escape.
    ``focus`` names the choice that enter picks (the first one unless told)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dgterm.confirm.cancel")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 80%; max-width: 80; height: auto; border: round $warning;
                               background: $surface; padding: 0 1; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    ConfirmScreen Button { margin-left: 1; }
    """

    def __init__(self, title: str, question: str, choices: list[tuple[str, str]], cancel: str = "cancel",
                 focus: str | None = None) -> None:
        super().__init__()
        self.title_text, self.question, self.choices, self.cancel_id = title, question, choices, cancel
        self.focus_id = f"choice-{focus or choices[0][0]}"

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.question, markup=False)
            with Horizontal():
                for i, (cid, label) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{cid}", variant="primary" if i == 0 else "default")

    def on_mount(self) -> None:
        self.query_one(f"#{self.focus_id}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_id)
