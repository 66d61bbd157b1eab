"""The text being edited, in memory: no file, no journal.

A Buffer holds the characters (only "\\n"), the line ending each newline has in the
file, the line index, the masked spans, the selection and the undo history. Every
change of the text goes through ``_splice``, which moves the spans and the selection
with it and records it for undo. A Document is a Buffer tied to a file and a recovery
journal (it journals each splice); recovery replays a journal into a bare Buffer.

Underscored methods are for the editor package: they change the buffer without the
checks that the public ones make.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager

from . import fileio
from .errors import DocumentError
from .history import Edit, History, State, Step
from .spans import Span, SpanSet, moved
from .text import common_ends, line_starts, location, moved_line_starts

Pos = int | tuple[int, int]  # an offset, or a (line, column) pair; 0-based characters

_CRLF = re.compile("\r\n")


class Buffer:
    """Text with its line endings, line index, spans, selection and undo."""

    def __init__(self, text: str = "", *, newline: str = "\n", eol: list[str] | None = None) -> None:
        self._text = text
        self._newline = newline
        self._eol = eol  # the ending of each newline, or None: all are ``newline``
        self._lines: list[int] | None = None  # line_starts(text), built when first asked
        self._spans = SpanSet()
        self._sel = (0, 0)
        self._history = History()
        self._versions = itertools.count(1)
        self._version = 0  # of the content: each undo step that changes the text takes a new one

    # ---- text -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    def __len__(self) -> int:
        return len(self._text)

    @property
    def newline(self) -> str:
        """The file's dominant line ending, used for new lines."""
        return self._newline

    def file_text(self) -> str:
        """The text as the file holds it: its own line endings (CRLF is two characters), no BOM."""
        return fileio.restore_newlines(self._text, self._newline, self._eol)

    def from_file_offset(self, offset: int) -> int:
        """The offset into ``text`` of an offset into ``file_text()``; raises IndexError for one
        outside it or between the CR and LF of a line ending."""
        if type(offset) is not int or not 0 <= offset <= len(self.file_text()):
            raise IndexError(f"offset {offset!r} is outside the file (0..{len(self.file_text())})")
        raw = self.file_text()
        if "\r\n" not in raw:
            return offset
        pairs = [m.start() for m in _CRLF.finditer(raw)]
        k = bisect_right(pairs, offset - 2)  # pairs wholly before the offset
        if k < len(pairs) and pairs[k] == offset - 1:
            raise IndexError(f"offset {offset} falls between the CR and LF of a line ending")
        return offset - k

    def to_file_offset(self, offset: int) -> int:
        """The offset into ``file_text()`` of an offset into ``text`` (the inverse of
        ``from_file_offset``): each line ending before it counts its own characters."""
        if type(offset) is not int or not 0 <= offset <= len(self._text):
            raise IndexError(f"offset {offset!r} is outside the text (0..{len(self._text)})")
        return len(fileio.restore_newlines(self._text[:offset], self._newline, self._eol and
                                           self._eol[: self._text.count("\n", 0, offset)]))

    # ---- lines ------------------------------------------------------------------------

    def _line_starts(self) -> list[int]:
        if self._lines is None:
            self._lines = line_starts(self._text)
        return self._lines

    @property
    def line_count(self) -> int:
        return len(self._line_starts()) - 1

    def line_text(self, line: int) -> str:
        start = self.offset_of(line, 0)
        return self._text[start:self._line_starts()[line + 1] - 1]

    def offset_of(self, line: int, col: int) -> int:
        """The offset of (line, col); col may be the line's length (its end)."""
        starts = self._line_starts()
        if not 0 <= line < len(starts) - 1:
            raise IndexError(f"line {line} is out of range (0..{len(starts) - 2})")
        length = starts[line + 1] - 1 - starts[line]
        if not 0 <= col <= length:
            raise IndexError(f"column {col} is out of range for line {line} (0..{length})")
        return starts[line] + col

    def location_of(self, offset: int) -> tuple[int, int]:
        """The (line, col) of an offset."""
        self._check_offset(offset)
        return location(self._line_starts(), offset)

    # ---- text edits -------------------------------------------------------------------

    def insert(self, pos: Pos, text: str) -> None:
        p = self._offset(pos)
        self.replace(p, p, text)

    def delete(self, start: Pos, end: Pos) -> None:
        self.replace(start, end, "")

    def replace(self, start: Pos, end: Pos, text: str) -> None:
        """Replace [start, end) by ``text`` (any CRLF/CR in it becomes "\\n")."""
        start, end = self._range(start, end)
        self._check_writable()
        text = fileio.normalize(text)
        if self._text[start:end] == text:
            return
        with self._step():
            self._splice(start, end, text)

    @contextmanager
    def group(self) -> Iterator[None]:
        """Everything done inside is one undo step; if it raises, it is all reverted."""
        with self._step(grouped=True):
            yield

    def undo(self) -> bool:
        """Undo the last step, with its spans and selection; False if none."""
        self._check_not_grouping()
        self._check_writable()
        step = self._history.undo()
        if step is None:
            return False
        self._revert(step)
        return True

    def redo(self) -> bool:
        """Redo the last undone step exactly; False if none."""
        self._check_not_grouping()
        self._check_writable()
        step = self._history.redo()
        if step is None:
            return False
        for e in step.edits:
            self._splice(e.start, e.start + len(e.old), e.new, e.new_eol, e.newline, record=False)
        assert step.after is not None  # a step on the undo stack was ended
        self._set_state(step.after)
        return True

    def can_undo(self) -> bool:
        return self._history.can_undo()

    def can_redo(self) -> bool:
        return self._history.can_redo()

    # ---- spans and selection -------------------------------------------------------------

    @property
    def spans(self) -> list[Span]:
        """The masked spans, sorted, pairwise non-overlapping."""
        return self._spans.list()

    def span(self, span_id: int) -> Span | None:
        return self._spans.get(span_id)

    def add_span(self, start: Pos, end: Pos, target_tokens: int | None = None) -> Span:
        """Mark [start, end) for the model; start == end marks an insertion point.

        Spans it overlaps (sharing a character, or an insertion point strictly
        inside) are merged into one new span that covers the union and takes this
        ``target_tokens``. Adjacent spans stay separate. This is an undo step.
        """
        start, end = self._range(start, end)
        if target_tokens is not None and (type(target_tokens) is not int or target_tokens < 0):
            raise ValueError(f"target_tokens must be None or an int >= 0, not {target_tokens!r}")
        with self._step():
            span = self._spans.add(start, end, target_tokens)
        self._spans_changed()
        return span

    def remove_span(self, span: Span | int) -> None:
        with self._step():
            self._spans.remove(self._span_of(span).id)
        self._spans_changed()

    def clear_spans(self) -> None:
        with self._step():
            self._spans.clear()
        self._spans_changed()

    @property
    def selection(self) -> tuple[int, int]:
        """(start, end) with start <= end; it moves with edits like a span but never
        vanishes: when its text is deleted it becomes a caret."""
        return self._sel

    @selection.setter
    def selection(self, value: tuple[Pos, Pos]) -> None:
        start, end = sorted(map(self._offset, value))
        self._sel = self._range(start, end)

    # ---- what a Document adds ----------------------------------------------------------

    def _check_writable(self) -> None:
        """Raise DocumentError when edits are refused (a Document opened read-only)."""

    def _spans_changed(self) -> None:
        """Called after the spans changed outside a splice (a Document journals them)."""

    # ---- internals ------------------------------------------------------------------------

    def _splice(self, start: int, end: int, text: str, eol: list[str] | None = None,
                newline: str | None = None, record: bool = True) -> Edit:
        """Replace [start, end) by ``text`` whose newlines end with ``eol`` (None: all
        with ``newline``, by default the buffer's); ``record`` it for undo."""
        if eol is None and newline is not None and newline != self._newline:
            eol = [newline] * text.count("\n")
        if self._eol is None and eol is not None and any(x != self._newline for x in eol):
            self._eol = [self._newline] * self._text.count("\n")
        old = self._text[start:end]
        old_eol = None
        if self._eol is not None:
            k = self._text.count("\n", 0, start)
            m = old.count("\n")
            old_eol = self._eol[k:k + m]
            self._eol[k:k + m] = eol if eol is not None else [self._newline] * text.count("\n")
        self._text = self._text[:start] + text + self._text[end:]
        if self._lines is not None:
            self._lines = moved_line_starts(self._lines, start, end, text)
        self._spans.edit(start, end, len(text))
        self._sel = moved(*self._sel, start, end, len(text), keep=True)
        edit = Edit(start, old, text, old_eol, eol, self._newline)
        if record:
            self._history.record(edit)
        return edit

    def _set_content(self, text: str, eol: list[str] | None, newline: str) -> None:
        """Make the text ``text`` by replacing only the part that differs."""
        old = self._text
        p, q = common_ends(old, text)
        if eol is None and self._eol is None and newline == self._newline:
            self._splice(p, len(old) - q, text[p:len(text) - q])
            return
        old_eols = self._eols()
        new_eols = eol if eol is not None else [newline] * text.count("\n")
        head, tail = old.count("\n", 0, p), old.count("\n", len(old) - q)
        if old_eols[:head] != new_eols[:head] or old_eols[len(old_eols) - tail:] != new_eols[len(new_eols) - tail:]:
            p = q = head = tail = 0  # endings changed outside the changed text
        self._splice(p, len(old) - q, text[p:len(text) - q], new_eols[head:len(new_eols) - tail])

    def _eols(self) -> list[str]:
        return self._eol if self._eol is not None else [self._newline] * self._text.count("\n")

    def _copy(self) -> Buffer:
        """The same text and line endings, without spans or history."""
        return Buffer(self._text, newline=self._newline, eol=None if self._eol is None else list(self._eol))

    @contextmanager
    def _step(self, grouped: bool = False) -> Iterator[None]:
        """One undo step (steps inside it join it); if the body raises, it is reverted."""
        h = self._history
        h.begin(self._state(), grouped)
        try:
            yield
        except BaseException:
            if h.depth == 1:
                self._revert(h.abort())
            else:
                h.end(self._state())
            raise
        pending = h.pending
        if h.depth == 1 and pending is not None and pending.edits:
            self._version = next(self._versions)
        h.end(self._state())

    def _state(self) -> State:
        return State(self._version, self._spans.snapshot(), self._sel)

    def _set_state(self, state: State) -> None:
        self._spans.restore(state.spans)
        self._sel = state.selection
        self._version = state.version
        self._spans_changed()

    def _revert(self, step: Step) -> None:
        for e in reversed(step.edits):
            self._splice(e.start, e.start + len(e.new), e.old, e.old_eol, e.newline, record=False)
        self._set_state(step.before)

    # ---- checks ---------------------------------------------------------------------------

    def _offset(self, pos: Pos) -> int:
        if isinstance(pos, tuple):
            return self.offset_of(*pos)
        self._check_offset(pos)
        return pos

    def _check_offset(self, offset: int) -> None:
        if type(offset) is not int or not 0 <= offset <= len(self._text):
            raise IndexError(f"offset {offset!r} is out of range (0..{len(self._text)})")

    def _range(self, start: Pos, end: Pos) -> tuple[int, int]:
        start, end = self._offset(start), self._offset(end)
        if start > end:
            raise IndexError(f"range start {start} is after its end {end}")
        return start, end

    def _span_of(self, key: Span | int) -> Span:
        span = self._spans.get(key.id if isinstance(key, Span) else key)
        if span is None:
            raise DocumentError("That span no longer exists (its text was deleted); "
                                "mark the text again.")
        return span

    def _check_not_grouping(self) -> None:
        if self._history.depth:
            raise RuntimeError("cannot undo or redo inside an edit group")
