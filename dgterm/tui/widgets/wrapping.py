"""Textual's TextArea and WrappedDocument without the passes over the whole file that an
unwrapped document does not need.

Unwrapped (code, logs), Textual 8 still walks every line for its tab widths at each wrap
(the TextArea wraps several times when a text is loaded), sums every line for ``height``
on every rendered row, and measures every line's cells for the view's width after every
edit (``Document.get_size``). On a 20 MB log that was seconds before the first paint and
about half a second per key (docs/benchmarks.md). Here an unwrapped document keeps its
tab widths only for lines with a tab, knows its height from its row list, and keeps its
line widths up to date from the lines an edit touched, and wraps again only what changed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from rich.cells import cell_len
from textual.document._document import Document, Location
from textual.document._document_navigator import DocumentNavigator
from textual.document._wrapped_document import WrappedDocument
from textual.expand_tabs import get_tab_widths
from textual.geometry import Size
from textual.widgets import TextArea


class FlatTextArea(TextArea):
    """A TextArea for plain documents (it never sets a language) that keeps a FlatWrap."""

    def _set_document(self, text: str, language: str | None) -> None:
        """TextArea's, for a plain document, with a FlatWrap instead of a WrappedDocument."""
        self._highlight_query = None
        self.document = Document(text)
        self.wrapped_document = FlatWrap(self.document, tab_width=self.indent_width)
        self.navigator = DocumentNavigator(self.wrapped_document)
        self._build_highlight_map()
        self.move_cursor((0, 0))
        self._rewrap_and_refresh_virtual_size()

    def _refresh_size(self) -> None:
        """TextArea's, with an unwrapped document's width kept by FlatWrap."""
        if self.soft_wrap:
            super()._refresh_size()
            return
        widest = cast(FlatWrap, self.wrapped_document).widest
        self.virtual_size = Size(widest + self.gutter_width + 1, self.document.line_count)
        self._refresh_scrollbars()


class FlatWrap(WrappedDocument):
    """A WrappedDocument whose width-0 (unwrapped) case is cheap; wrapped, it is Textual's."""

    _cells: list[int] | None = None  # unwrapped: each line's width in cells, kept up to date by wrap_range

    def wrap(self, width: int, tab_width: int | None = None) -> None:
        if width:
            self._cells = None
            super().wrap(width, tab_width)
            return
        if self._cells is not None and len(self._cells) == self.document.line_count and \
                tab_width in (None, self._tab_width):
            return  # unwrapped already: every edit since went through wrap_range (those that do
            # not, in TextArea.edit, undo and redo, changed the gutter's width, so the line count)
        self._width = 0
        if tab_width:
            self._tab_width = tab_width
        lines, rows = self.document.lines, range(self.document.line_count)
        with _no_gc():  # a million small lists: the collector would walk the heap many times over
            self._wrap_offsets = [[] for _ in rows]
            self._offset_to_line_info = [(i, 0) for i in rows]
            self._line_index_to_offsets = [[i] for i in rows]
            self._tab_width_cache = [self._tabs(line) if "\t" in line else [0] if line else [] for line in lines]
            self._cells = [len(line) if line.isascii() and "\t" not in line else self._width_of(line) for line in lines]

    def wrap_range(self, start: Location, old_end: Location, new_end: Location) -> None:
        super().wrap_range(start, old_end, new_end)
        if self._cells is not None:  # the lines Textual's wrap_range replaced, the same way
            top, old_bottom = sorted((start[0], old_end[0]))
            new_bottom = max(start[0], new_end[0])
            self._cells[top : old_bottom + 1] = map(self._width_of, self.document.lines[top : new_bottom + 1])

    @property
    def height(self) -> int:
        """One row per entry of the row list (Textual sums every line's sections instead)."""
        return len(self._offset_to_line_info)

    @property
    def widest(self) -> int:
        """Cells of the widest line, unwrapped (what Document.get_size measures line by line)."""
        return max(self._cells or (0,))

    def _tabs(self, line: str) -> list[int]:
        """Textual's tab widths of a line (one without a tab: [0], or [] when empty)."""
        return [width for _, width in get_tab_widths(line, self._tab_width)]

    def _width_of(self, line: str) -> int:
        """An ASCII line without a tab is as wide as it is long."""
        return len(line) if line.isascii() and "\t" not in line else cell_len(line.expandtabs(self._tab_width))


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
