"""Every action of the editor, once: its binding id, default keys, what it does, and in
which modes of the run lifecycle it works.

The bindings, the help screen, the command palette and the key gating (:func:`enabled`)
are all built from ``ACTIONS``; users remap keys by binding id in the ``[keymap]`` table
of the config file.
"""

# ruff: noqa: E501 - ACTIONS is a table, one action a line
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from textual.binding import Binding, BindingType


class Mode(StrEnum):
    """Where the editor is in a run's lifecycle: edit -> running -> review -> edit, or edit -> lens -> edit.
    Read off the lifecycle's state (``dgterm.tui.lifecycle.State.mode``), never set."""

    EDIT = "edit"  # the document is editable; the model actions start runs
    RUNNING = "running"  # a run is denoising: read-only, escape cancels
    REVIEW = "review"  # a finished run's candidates are shown: accept, reject, scrub
    LENS = "lens"  # the lens is scoring the visible text


EDIT, RUNNING, REVIEW, LENS = Mode
RUN = (RUNNING, REVIEW, LENS)  # while a run (or the lens) holds the document


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
    modes: tuple[Mode, ...] = tuple(Mode)  # the modes in which it works (in review: not under a dialog)


ACTIONS: tuple[Action, ...] = (
    Action("dgterm.mask", "ctrl+t", "mask", "Mask", "Mask the selection as a span for the model, or unmask the span at the cursor.", "Masking", True, modes=(EDIT,)),
    Action("dgterm.unmask_all", "f2", "unmask_all", "Unmask all", "Remove every masked span.", "Masking", modes=(EDIT,)),
    Action("dgterm.grow", "ctrl+up,f9", "grow", "Grow span", "Give the span at the cursor 4 more target tokens.", "Masking", modes=(EDIT,)),
    Action("dgterm.shrink", "ctrl+down,f8", "shrink", "Shrink span", "Give the span at the cursor 4 fewer target tokens.", "Masking", modes=(EDIT,)),
    Action("dgterm.infill", "ctrl+g", "infill", "Infill", "Rewrite all masked spans from both sides (infill).", "Model", True, modes=(EDIT,)),
    Action("dgterm.search", "ctrl+o", "search", "Length search", "Infill one span at several lengths and offer them ranked.", "Model", modes=(EDIT,)),
    Action("dgterm.rewrite", "ctrl+r", "rewrite", "Rewrite", "Rewrite the selection following an instruction (chat models).", "Model", True, modes=(EDIT,)),
    Action("dgterm.continue", "ctrl+n", "continue_text", "Continue", "Continue the text after the cursor.", "Model", modes=(EDIT,)),
    Action("dgterm.lens", "ctrl+l", "lens", "Lens", "Tint the visible text (in review: the shown candidate) by how much the model would change each token; never edits.", "Model", True, modes=(EDIT, REVIEW)),
    Action("dgterm.doubt_more", "alt+up", "doubt_more", "Doubt more", "With the lens shown: raise the doubt threshold, so more tokens are marked doubted.", "Model", modes=(EDIT, REVIEW)),
    Action("dgterm.doubt_less", "alt+down", "doubt_less", "Doubt less", "With the lens shown: lower the doubt threshold.", "Model", modes=(EDIT, REVIEW)),
    Action("dgterm.refine", "alt+r", "refine", "Refine", "Draw again only the doubted tokens of the span at the cursor (or the selection), everything else pinned; on a candidate, take it first.", "Model", priority=True, modes=(EDIT, REVIEW)),
    Action("dgterm.cancel", "escape", "cancel", "Cancel", "Cancel the run (the document stays as it was), reject the drafts, or clear the lens.", "Run", True, True, modes=RUN),
    Action("dgterm.accept", "enter", "accept", "Accept", "Accept the shown candidate (all its hunks left) as one undo step.", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.next_candidate", "tab,alt+right_square_bracket", "next_candidate", "Next", "Show the next candidate of the run (alt+] as in Copilot).", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.prev_candidate", "shift+tab,alt+left_square_bracket", "prev_candidate", "Previous", "Show the previous candidate of the run (alt+[).", "Run", False, True, modes=(REVIEW,)),
    Action("dgterm.next_hunk", "right_square_bracket", "next_hunk", "Hunk ▸", "Go to the next hunk of the shown candidate (] as ]x in avante.nvim).", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.prev_hunk", "left_square_bracket", "prev_hunk", "◂ Hunk", "Go to the previous hunk of the shown candidate.", "Run", False, True, modes=(REVIEW,)),
    Action("dgterm.accept_hunk", "y", "accept_hunk", "Take hunk", "Accept the current hunk into the document as one undo step.", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.reject_hunk", "n", "reject_hunk", "Drop hunk", "Reject the current hunk: its text stays exactly as it was.", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.accept_word", "w,ctrl+right", "accept_word", "Take word", "Accept the next word of the current hunk as one undo step (ctrl+right as in Copilot).", "Run", False, True, modes=(REVIEW,)),
    Action("dgterm.step_back", "left", "step_back", "Step ◂", "Scrub the timeline of the run one step back.", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.step_forward", "right", "step_forward", "Step ▸", "Scrub the timeline of the run one step forward.", "Run", True, True, modes=(REVIEW,)),
    Action("dgterm.save", "ctrl+s", "save", "Save", "Save the file (atomically).", "File", True, modes=(EDIT,)),
    Action("dgterm.save_as", "f12", "save_as", "Save as", "Save the document under another name.", "File", modes=(EDIT,)),
    Action("dgterm.reload", "f5", "reload", "Reload", "Read the file again from disk (undo brings your version back).", "File", modes=(EDIT,)),
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


def enabled(action: str, mode: Mode, modal: bool = False, lens_shown: bool = False) -> bool | None:
    """Whether the key of ``action`` works now: in the modes its Action names; the run keys
    not under a dialog; escape also in edit mode while the lens tints the text, the doubt
    threshold only then."""
    a = BY_ACTION.get(action)
    if a is None:
        return True  # Textual's own actions
    if a.action == "cancel":
        return not modal and (mode in a.modes or lens_shown)
    if a.action in ("doubt_more", "doubt_less"):  # they move what the lens marks
        return not modal and mode in a.modes and lens_shown
    if a.modes == (REVIEW,) and modal:
        return False
    return mode in a.modes


def bindings() -> list[BindingType]:
    return [Binding(a.keys, a.action, a.title, show=a.footer, id=a.id, tooltip=a.help, priority=a.priority)
            for a in ACTIONS]


def keys_for(action: Action, keymap: dict) -> str:
    """The keys bound to ``action`` after the user's keymap."""
    return keymap.get(action.id, action.keys)


GLYPHS = {"right_square_bracket": "]", "left_square_bracket": "["}  # Textual's key names, as users write them


def shown_keys(action: Action, keymap: dict) -> str:
    """``keys_for``, as the help screen and the palette show it ("alt+]", not Textual's name)."""
    keys = keys_for(action, keymap)
    for name, glyph in GLYPHS.items():
        keys = keys.replace(name, glyph)
    return keys
