"""The editor view: a TextArea that mirrors a ``dgterm.editor.Document``.

The Document is the source of truth. Every edit typed here is applied to the
Document first and then to the view; undo and redo are the Document's (so masked
spans come back with the text). Masked spans, live drafts and the confidence lens
are painted over the text in ``get_line`` (the TextArea's documented hook for extra
styling). While a run is previewed the view shows the drafts in place of the spans
and is read-only; the Document does not change until the user accepts.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import cast

from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Offset
from textual.message import Message
from textual.reactive import Reactive, reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets.text_area import Document as TextDocument
from textual.widgets.text_area import Edit, Selection

from dgterm.editor import Document, DocumentError
from dgterm.editor.text import common_ends, line_starts, location
from dgterm.engine.output.frames import DraftToken, display_text
from dgterm.tui.syntax import Highlighter, lexer_for
from dgterm.tui.themes import Palette, lens_level, palette_of
from dgterm.tui.widgets.wrapping import FlatTextArea

SYNTAX_DELAY = 0.2  # seconds: re-highlight at most this often while text changes
# A document longer than this opens with its first HEAD_LINES lines painted, read-only, and
# the rest put in right after (a 20 MB log otherwise showed a blank terminal for ~8 s).
LARGE_TEXT = 2_000_000  # characters
HEAD_LINES = 400
ROW_CACHE = 2048  # rendered screen rows kept, keyed by what they show
INSERTION_MARK = "▏"


class EditorView(FlatTextArea):
    """Edits go to the Document; the view paints spans, drafts and the lens."""

    DEFAULT_CSS = """
    EditorView { border: none; padding: 0; }
    EditorView:focus { border: none; }
    """

    # TextArea repaints every row when the cursor moves; here only the rows of the lines
    # the cursor or selection leaves and enters are repainted (see _watch_selection).
    # Every edit repaints all rows (_paint), as the rows below it move.
    selection: Reactive[Selection] = reactive(Selection(), init=False, always_update=True, repaint=False)

    class Edited(Message):
        """The user changed the Document (text or spans) from the view."""

    class Refused(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self, doc: Document, **kwargs) -> None:
        path = doc.path or ""
        prose = path.endswith((".md", ".markdown", ".txt", ".rst")) or not path
        shown = head_of(doc.text)
        super().__init__(shown, soft_wrap=prose, show_line_numbers=True, tab_behavior="indent", **kwargs)
        self.doc = doc
        # Only the head is in (see finish_loading). Not Widget.loading: that one hides the view
        # behind a loading indicator, so the head was never seen.
        self.head_only = len(shown) < len(doc.text)
        self.highlighter = Highlighter(lexer_for(path, doc.text))
        self.highlighter.update(doc.text)
        self._mirroring = False
        self._preview: dict[int, list[DraftToken]] | None = None
        # While previewing: (view offset, document offset, length) of each stretch of text
        # outside the drafts, so the Document's syntax highlighting stays put around them.
        self._kept: list[tuple[int, int, int]] | None = None
        self._lens: list[tuple[int, int, int, float]] | None = None  # start, end, level, probability
        self.doubt_below = 0.0  # lens tokens the model keeps with less than this are marked doubted
        self._overlay: dict[int, list[tuple[int, int, Style]]] = {}
        self._marks: dict[int, Style] = {}
        self._syntax_timer: Timer | None = None
        self._theme_palette: tuple = (None, None)
        self._rows: LRUCache[tuple, Strip] = LRUCache(ROW_CACHE)
        self.read_only = doc.read_only or self.head_only

    def finish_loading(self) -> None:
        """Put the whole document in, after the head was painted (one rebuild of Textual's
        document, where building it at once builds it three times and wraps it six)."""
        if not self.head_only:
            return
        cursor = self.cursor_location
        self.load_text(self.doc.text)
        self.head_only = False
        self.read_only = self.doc.read_only
        self.cursor_location = cursor

    # ------------------------------------------------------------------ edits

    def edit(self, edit: Edit):
        if self._mirroring:
            return super().edit(edit)
        top, bottom = sorted((edit.from_location, edit.to_location))
        try:
            start, end = self.doc.offset_of(*top), self.doc.offset_of(*bottom)
            self.doc.replace(start, end, edit.text)
        except (DocumentError, IndexError) as e:
            self.post_message(self.Refused(str(e)))
            self.call_later(self.sync_from_doc)
            return super().edit(Edit("", top, top, True))
        result = super().edit(edit)
        self._lens = None
        self._after_change()
        self.post_message(self.Edited())
        return result

    async def _on_key(self, event: events.Key) -> None:
        if self.previewing and (event.is_printable or event.key in ("backspace", "delete")):
            self.post_message(self.Refused("The text is read-only while a run is shown: escape cancels or rejects "
                                           "it, enter accepts it."))
        if not event.is_printable:
            # A key bound here (cursor moves, deletes) runs now. Left to Textual, its binding
            # would run only once the event has bubbled up to the app and back, after a
            # printable key of the same burst was already typed at the old cursor (Up then q).
            active = self.app.active_bindings.get(event.key)
            if active is not None and active.node is self and active.enabled:
                event.prevent_default()
                event.stop()
                await self.run_action(active.binding.action)
                return
        await super()._on_key(event)

    def action_undo(self) -> None:
        self._history_step(self.doc.undo)

    def action_redo(self) -> None:
        self._history_step(self.doc.redo)

    def _history_step(self, step) -> None:
        if self.read_only:
            return
        try:
            changed = step()
        except DocumentError as e:
            self.post_message(self.Refused(str(e)))
            return
        if changed:
            self.sync_from_doc(select=True)
            self.post_message(self.Edited())

    def sync_from_doc(self, select: bool = False) -> None:
        """Make the view show the Document's text (smallest replacement) and drop any preview."""
        self._preview = self._kept = None
        self._set_view_text(self.doc.text)
        if select:
            a, b = self.doc.selection
            self.selection = Selection(self.doc.location_of(a), self.doc.location_of(b))
        self._after_change()

    def _set_view_text(self, new: str) -> None:
        old = self.text
        if old == new:
            return
        p, q = common_ends(old, new)
        doc = cast(TextDocument, self.document)  # a TextArea keeps a Document; it declares DocumentBase
        start, end = doc.get_location_from_index(p), doc.get_location_from_index(len(old) - q)
        self._mirroring = True
        try:
            self.replace(new[p : len(new) - q], start, end, maintain_selection_offset=True)
        finally:
            self._mirroring = False
        self.history.clear()

    # ------------------------------------------------------------------ selection <-> offsets

    def selected_range(self) -> tuple[int, int]:
        """The selection as Document offsets, start <= end."""
        a, b = sorted(self.selection)
        return self.doc.offset_of(*a), self.doc.offset_of(*b)

    def cursor_offset(self) -> int:
        return self.doc.offset_of(*self.cursor_location)

    # ------------------------------------------------------------------ overlays

    @property
    def previewing(self) -> bool:
        return self._preview is not None

    def show_preview(self, drafts: dict[int, list[DraftToken]]) -> None:
        """Show ``drafts`` (span id -> tokens) in place of those spans."""
        doc_text, pieces, ranges, cursor, pos = self.doc.text, [], [], 0, 0
        kept = []
        for span in self.doc.spans:
            toks = drafts.get(span.id)
            if toks is None:
                continue
            pieces.append(doc_text[cursor : span.start])
            kept.append((pos, cursor, span.start - cursor))
            pos += span.start - cursor
            for tok in toks:
                shown = display_text(tok)
                if shown:
                    ranges.append((pos, pos + len(shown), tok))
                    pieces.append(shown)
                    pos += len(shown)
            cursor = span.end
        pieces.append(doc_text[cursor:])
        kept.append((pos, cursor, len(doc_text) - cursor))
        self._preview = drafts
        self._kept = kept
        self._set_view_text("".join(pieces))
        self._paint(ranges)

    def show_lens(self, scores: list[tuple[int, int, float, float]]) -> None:
        """Tint each (start, end, probability, model's best probability) range by how much
        the model would change it."""
        self._lens = [(a, b, lens_level(p, top), p) for a, b, p, top in scores]
        self._paint()

    def show_doubt(self, below: float) -> int:
        """Mark the lens's tokens under ``below`` as doubted; how many there are."""
        self.doubt_below = below
        self._paint()
        return sum(1 for *_, p in self._lens or () if p < below)

    def clear_lens(self) -> None:
        self._lens = None
        self._paint()

    @property
    def lens_active(self) -> bool:
        return self._lens is not None

    def restyle(self) -> None:
        """Repaint the overlays (after a theme change or a span change)."""
        if self._preview is None:
            self._paint()

    def _palette(self) -> Palette:
        """The current theme's palette, built once per theme (``get_line`` asks per line)."""
        theme = self.app.current_theme
        if self._theme_palette[0] is not theme:
            self._theme_palette = (theme, palette_of(theme))
            self._rows.clear()
        return self._theme_palette[1]

    def _after_change(self) -> None:
        self._paint()
        self._schedule_syntax()

    def _paint(self, preview_ranges: list | None = None) -> None:
        pal = self._palette()
        styled: list[tuple[int, int, Style]] = []
        self._marks = {}
        if preview_ranges is not None:
            styled = [(a, b, pal.token(t.state, t.entropy)) for a, b, t in preview_ranges]
            starts = line_starts(self.text)
        else:
            starts = None
            if self._lens:
                styled += [(a, b, pal.doubted() if p < self.doubt_below else pal.lens(level))
                           for a, b, level, p in self._lens if level or p < self.doubt_below]
            for span in self.doc.spans:
                if span.start < span.end:
                    styled.append((span.start, span.end, pal.span()))
                else:
                    line, col = self.doc.location_of(span.start)
                    if col < len(self.doc.line_text(line)):
                        styled.append((span.start, span.start + 1, pal.span(insertion=True)))
                    else:
                        self._marks[line] = Style(color=pal.color("span-edge").rich_color, bold=True)
        overlay: dict[int, list] = {}
        for a, b, style in styled:
            for line, c0, c1 in _split_lines(a, b, starts, self.doc):
                overlay.setdefault(line, []).append((c0, c1, style))
        self._overlay = overlay
        self.refresh()

    def _schedule_syntax(self) -> None:
        if self._syntax_timer is None and self.highlighter.lexer is not None:
            self._syntax_timer = self.set_timer(SYNTAX_DELAY, self._rehighlight)

    def _rehighlight(self) -> None:
        self._syntax_timer = None
        self.highlighter.update(self.doc.text)
        self.refresh()

    def _syntax_of(self, line_index: int):
        """The Document's highlighting of view line ``line_index``: (start, end, name) triples
        in view columns. A preview shifts the text after each draft; map it back."""
        if self._kept is None:
            return self.highlighter.lines.get(line_index, ())
        start = cast(TextDocument, self.document).get_index_from_location((line_index, 0))
        end = start + len(self.document[line_index])
        out = []
        i = max(0, bisect_right(self._kept, (start, 1 << 62)) - 1)
        for view, doc, n in self._kept[i:]:
            if view >= end:
                break
            a, b = max(view, start), min(view + n, end)
            if a >= b:
                continue
            line, col = self.doc.location_of(doc + a - view)
            shift = a - start - col
            for c0, c1, name in self.highlighter.lines.get(line, ()):
                x0, x1 = max(c0, col), min(c1, col + b - a)
                if x0 < x1:
                    out.append((x0 + shift, x1 + shift, name))
        return out

    # ------------------------------------------------------------------ rendering

    def scroll_cursor_visible(self, center: bool = False, animate: bool = False) -> Offset:
        """Follow the cursor, except while a run's drafts are shown: they move the cursor (its
        offset is kept) and a long noisy draft would scroll the view sideways, where it stayed
        after the run, hiding the start of every line."""
        if self.previewing:
            return Offset(0, 0)
        return super().scroll_cursor_visible(center, animate)

    def _watch_selection(self, previous: Selection, selection: Selection) -> None:
        bracket = self._matching_bracket_location
        super()._watch_selection(previous, selection)
        for sel, match in ((previous, bracket), (selection, self._matching_bracket_location)):
            rows = sorted(row for row, _ in sel)
            self._refresh_doc_lines(rows[0], rows[1])
            if match is not None:
                self._refresh_doc_lines(match[0], match[0])

    def _refresh_doc_lines(self, first: int, last: int) -> None:
        """Repaint the screen rows of document lines ``first`` to ``last``."""
        end = self.document.line_count - 1
        first, last = min(first, end), min(last, end)
        wrapped = self.wrapped_document
        top = wrapped.location_to_offset((first, 0)).y
        bottom = wrapped.location_to_offset((last, 0)).y + len(wrapped.get_offsets(last)) + 1
        self.refresh_lines(top, bottom - top)

    def notify_style_update(self) -> None:
        self._rows.clear()
        super().notify_style_update()

    def get_component_rich_style(self, *names: str, partial: bool = False, default: Style | None = None) -> Style:
        style = super().get_component_rich_style(*names, partial=partial, default=default)
        if names == ("text-area--cursor-line",) and style is not None:
            # TextArea paints the cursor line's style over the whole line after get_line;
            # with a text colour in it, the syntax colours of that line would turn plain.
            return Style(bgcolor=style.bgcolor)
        return style

    def render_line(self, y: int) -> Strip:
        """TextArea caches rows by screen position and drops the cache on every edit; with
        soft wrap, every cursor move misses it too. So a key press or a live step would
        repaint every visible row. Rows are cached here by what they show instead: only
        the lines that changed are rendered again (tests/bench/tui_latency.py)."""
        key = self._row_key(y)
        if key is None:
            return super().render_line(y)
        strip = self._rows.get(key)
        if strip is None:
            strip = self._rows[key] = self._render_line(y)
        return strip

    def _row_key(self, y: int) -> tuple | None:
        """Everything ``_render_line(y)`` reads, or None for a row with no document line."""
        scroll_x, scroll_y = self.scroll_offset
        wrapped = self.wrapped_document
        try:
            line, section = wrapped._offset_to_line_info[scroll_y + y]
        except (IndexError, TypeError):
            return None
        if self.placeholder and self.document.end == (0, 0):  # empty (self.text would join every line)
            return None
        selection = self.selection
        (top, _), (bottom, _) = sorted(selection)
        cursor_row = selection.end[0]
        empty = selection.start == selection.end
        bracket = self._matching_bracket_location
        partner = (bracket, empty) if bracket and bracket[0] == line else None  # drawn with no selection
        at_cursor = ((selection, self._draw_cursor, bracket, self.suggestion, self.has_focus)
                     if cursor_row == line else None)
        width = (self.scrollable_content_region.size.width if self.soft_wrap
                 else (scroll_x, self.virtual_size.width, self.region.size.width))
        return (self.document[line], line, section, tuple(wrapped.get_offsets(line)), self._style_key(line),
                selection if not empty and top <= line <= bottom else None, at_cursor, partner,
                width, self.gutter_width, self.theme, self.soft_wrap, self.show_line_numbers,
                self.line_number_start, self.indent_width, self.read_only, self.show_cursor,
                self.highlight_cursor_line, self.match_cursor_bracket)

    def _style_key(self, line_index: int) -> tuple:
        """What ``get_line`` paints over the text of a line."""
        self._palette()
        return (tuple(self._syntax_of(line_index)), tuple(self._overlay.get(line_index, ())),
                self._marks.get(line_index))

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        pal = self._palette()
        for c0, c1, name in self._syntax_of(line_index):
            style = pal.syntax_style(name)
            if style is not None:
                line.stylize(style, c0, c1)
        for c0, c1, style in self._overlay.get(line_index, ()):
            line.stylize(style, c0, c1)
        mark = self._marks.get(line_index)
        if mark is not None:
            line.append(INSERTION_MARK, mark)
        return line


def _split_lines(a: int, b: int, starts: list[int] | None, doc: Document):
    """(line, start col, end col) pieces of the offset range [a, b)."""
    if starts is None:
        (l0, c0), (l1, c1) = doc.location_of(a), doc.location_of(b)
    else:
        (l0, c0), (l1, c1) = location(starts, a), location(starts, b)
    if l0 == l1:
        yield l0, c0, c1
        return
    yield l0, c0, 1 << 30
    for line in range(l0 + 1, l1):
        yield line, 0, 1 << 30
    if c1:
        yield l1, 0, c1


def head_of(text: str) -> str:
    """``text`` when it is small, else its first HEAD_LINES lines (a prefix, so any offset in
    it is the same offset in the whole text)."""
    if len(text) <= LARGE_TEXT:
        return text
    end = 0
    for _ in range(HEAD_LINES):
        end = text.find("\n", end) + 1
        if end == 0:
            return text[:LARGE_TEXT]
    return text[:end]
