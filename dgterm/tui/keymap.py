"""Every action of the editor, once: its binding id, default keys, and what it does.

The bindings, the help screen and the command palette are all built from ``ACTIONS``;
users remap keys by binding id in the ``[keymap]`` table of the config file.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
    id: str  # binding id, "dgterm.<name>"
    keys: str
    action: str
    title: str  # short, for the footer and the palette
    help: str  # one sentence, for the help screen, tooltips and the palette
    group: str
    footer: bool = False
    priority: bool = False  # mode keys (review, running) that must win over the editor's


ACTIONS: tuple[Action, ...] = (
    Action("dgterm.mask", "ctrl+t", "mask", "Mask", "Mask the selection as a span for the model, or unmask the span at the cursor.", "Masking", True),
    Action("dgterm.unmask_all", "f2", "unmask_all", "Unmask all", "Remove every masked span.", "Masking"),
    Action("dgterm.grow", "ctrl+up,f9", "grow", "Grow span", "Give the span at the cursor 4 more target tokens.", "Masking"),
    Action("dgterm.shrink", "ctrl+down,f8", "shrink", "Shrink span", "Give the span at the cursor 4 fewer target tokens.", "Masking"),
    Action("dgterm.infill", "ctrl+g", "infill", "Infill", "Rewrite all masked spans from both sides (infill).", "Model", True),
    Action("dgterm.search", "ctrl+o", "search", "Length search", "Infill one span at several lengths and offer them ranked.", "Model"),
    Action("dgterm.rewrite", "ctrl+r", "rewrite", "Rewrite", "Rewrite the selection following an instruction (chat models).", "Model", True),
    Action("dgterm.continue", "ctrl+n", "continue_text", "Continue", "Continue the text after the cursor.", "Model"),
    Action("dgterm.lens", "ctrl+l", "lens", "Lens", "Tint the visible text by how much the model would change each token; never edits.", "Model", True),
    Action("dgterm.cancel", "escape", "cancel", "Cancel", "Cancel the run (the document stays as it was), reject the drafts, or clear the lens.", "Run", True, True),
    Action("dgterm.accept", "enter", "accept", "Accept", "Accept the shown candidate as one undo step.", "Run", True, True),
    Action("dgterm.next_candidate", "tab", "next_candidate", "Next", "Show the next candidate of the run.", "Run", True, True),
    Action("dgterm.prev_candidate", "shift+tab", "prev_candidate", "Previous", "Show the previous candidate of the run.", "Run", False, True),
    Action("dgterm.step_back", "left", "step_back", "Step ◂", "Scrub the timeline of the run one step back.", "Run", True, True),
    Action("dgterm.step_forward", "right", "step_forward", "Step ▸", "Scrub the timeline of the run one step forward.", "Run", True, True),
    Action("dgterm.save", "ctrl+s", "save", "Save", "Save the file (atomically).", "File", True),
    Action("dgterm.save_as", "f12", "save_as", "Save as", "Save the document under another name.", "File"),
    Action("dgterm.reload", "f5", "reload", "Reload", "Read the file again from disk (undo brings your version back).", "File"),
    Action("dgterm.quit", "ctrl+q", "quit", "Quit", "Quit; asks first if there are unsaved changes or candidates not accepted.", "File", True),
    Action("dgterm.doc_start", "ctrl+home", "document_start", "Start of document", "Move the cursor to the start of the document.", "Go"),
    Action("dgterm.doc_end", "ctrl+end", "document_end", "End of document", "Move the cursor to the end of the document.", "Go"),
    Action("dgterm.goto_line", "ctrl+underscore,alt+g", "goto_line", "Go to line", "Move the cursor to a line by its number (ctrl+_ as in nano).", "Go"),
    Action("dgterm.canvas", "ctrl+b", "toggle_canvas", "Canvas", "Show or hide the canvas panel.", "View", True),
    Action("dgterm.theme", "f4", "next_theme", "Next theme", "Switch to the next colour theme.", "View"),
    Action("dgterm.wrap", "f3", "toggle_wrap", "Wrap", "Turn soft wrapping of long lines on or off.", "View"),
    Action("dgterm.help", "f1", "help", "Help", "Show every key binding.", "View", True),
)

BY_ACTION = {a.action: a for a in ACTIONS}


def bindings() -> list[Binding]:
    return [Binding(a.keys, a.action, a.title, show=a.footer, id=a.id, tooltip=a.help, priority=a.priority)
            for a in ACTIONS]


def keys_for(action: Action, keymap: dict) -> str:
    """The keys bound to ``action`` after the user's keymap."""
    return keymap.get(action.id, action.keys)
