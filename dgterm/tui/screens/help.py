"""The help screen: every binding, grouped, with the keys in force (after the keymap)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from dgterm.tui.keymap import ACTIONS, shown_keys

INTRO = ("Select text (shift+arrows or the mouse) and mask it; the model rewrites masked spans "
         "from both sides, live, in place. While a run goes, escape cancels it. When it ends, "
         "enter accepts, escape rejects, tab (alt+]) shows the next candidate and left/right scrub the "
         "steps; ] and [ move between its hunks, y takes one, n drops one, w takes its next word.")


def bindings_table(keymap: dict) -> Table:
    table = Table(box=None, expand=True, show_header=False, padding=(0, 1))
    table.add_column("keys", style="bold", no_wrap=True)
    table.add_column("action")
    group = None
    for a in ACTIONS:
        if a.group != group:
            group = a.group
            table.add_row(Text(group, style="underline"), "")
        table.add_row(shown_keys(a, keymap).replace(",", " / "), f"{a.title} — {a.help}")
    table.add_row(Text("Editor", style="underline"), "")
    for keys, what in (("ctrl+z / ctrl+y", "Undo / redo (a whole accepted rewrite is one step)"),
                       ("ctrl+p", "Command palette: every action by name"),
                       ("shift+arrows, mouse drag", "Select text"),
                       ("ctrl+c / ctrl+x / ctrl+v", "Copy / cut / paste")):
        table.add_row(keys, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="dgterm.help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 110; height: 90%; border: round $primary;
                                  background: $surface; padding: 0 1; }
    HelpScreen #help-intro { color: $text-muted; margin-bottom: 1; }
    """

    def __init__(self, keymap: dict) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "dgterm — keys (escape closes)"
            yield Static(INTRO, id="help-intro")
            yield Static(bindings_table(self.keymap), id="help-table")
