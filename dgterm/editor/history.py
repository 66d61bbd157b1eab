"""Undo and redo.

A step is everything done between the outermost ``begin`` and ``end``: a list of
text edits plus the spans and selection before and after, so undo and redo bring the
marks back with the text. Single typed characters that continue each other are
merged into one step until a new word starts; ``seal`` stops that (e.g. at a save).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spans import SpanTuple


@dataclass(frozen=True)
class Edit:
    """[start, start + len(old)) held ``old`` and now holds ``new``.

    ``old_eol``/``new_eol`` are the line endings of the newlines in old/new text;
    None means all of them were ``newline``.
    """

    start: int
    old: str
    new: str
    old_eol: list[str] | None
    new_eol: list[str] | None
    newline: str


@dataclass(frozen=True)
class State:
    """What undo restores besides the text: content version, spans, selection."""

    version: int
    spans: tuple[SpanTuple, ...]
    selection: tuple[int, int]


@dataclass
class Step:
    before: State
    after: State | None = None
    edits: list[Edit] = field(default_factory=list)
    grouped: bool = False  # opened by an explicit group: never merged with typing


class History:
    def __init__(self) -> None:
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._pending: Step | None = None
        self._depth = 0
        self._mergeable = False

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def pending(self) -> Step | None:
        return self._pending

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def applied(self, step: Step) -> bool:
        """Whether ``step`` is done (on the undo stack), not undone or dropped."""
        return any(s is step for s in self._undo)

    @property
    def last(self) -> Step | None:
        """The step undo would revert next."""
        return self._undo[-1] if self._undo else None

    def begin(self, state: State, grouped: bool = False) -> None:
        if self._depth == 0:
            self._pending = Step(state, grouped=grouped)
        self._depth += 1

    def record(self, edit: Edit) -> None:
        if self._pending is not None:
            self._pending.edits.append(edit)

    def end(self, state: State) -> None:
        self._depth -= 1
        if self._depth:
            return
        step, self._pending = self._pending, None
        assert step is not None  # opened by the outermost begin
        step.after = state
        if not step.edits and step.before.spans == state.spans:
            return
        if self._merges(step):
            top = self._undo[-1]
            top.edits.extend(step.edits)
            top.after = state
        else:
            self._undo.append(step)
        self._redo.clear()
        self._mergeable = _is_typing(step)

    def abort(self) -> Step:
        """Drop the open step and return it so the caller can revert its edits."""
        step, self._pending, self._depth = self._pending, None, 0
        assert step is not None, "no step is open"
        return step

    def undo(self) -> Step | None:
        self._mergeable = False
        if not self._undo:
            return None
        step = self._undo.pop()
        self._redo.append(step)
        return step

    def redo(self) -> Step | None:
        self._mergeable = False
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step)
        return step

    def seal(self) -> None:
        self._mergeable = False

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._mergeable = False

    def _merges(self, step: Step) -> bool:
        if not (self._mergeable and self._undo and _is_typing(step)):
            return False
        last, new = self._undo[-1].edits[-1], step.edits[0]
        if new.start != last.start + len(last.new):
            return False
        return not (last.new.isspace() and not new.new.isspace())


def _is_typing(step: Step) -> bool:
    return (not step.grouped and len(step.edits) == 1 and step.edits[0].old == ""
            and len(step.edits[0].new) == 1)
