"""Masking: marking the spans the model rewrites, and their target lengths."""

from __future__ import annotations

from dgterm.editor import DocumentError, Span
from dgterm.engine.params import DEFAULT_INSERT_TOKENS
from dgterm.tui.host import Host

SPAN_STEP = 4  # tokens added or removed by grow / shrink


class MaskActions(Host):
    def span_at(self, offset: int) -> Span | None:
        return next((s for s in self.doc.spans if s.start <= offset <= s.end), None)

    def target_span(self) -> Span | None:
        """The span under the cursor, else the only span there is. (An insertion point is
        an empty span: test it against None, not for truth.)"""
        span = self.span_at(self.editor.cursor_offset())
        if span is None and len(self.doc.spans) == 1:
            span = self.doc.spans[0]
        return span

    def action_mask(self) -> None:
        a, b = self.editor.selected_range()
        try:
            if a < b:
                self.doc.add_span(a, b)
            elif (span := self.span_at(a)) is not None:
                self.doc.remove_span(span)
            else:
                self.doc.add_span(a, a)  # an insertion point: the model writes new text here
        except DocumentError as e:
            self.notify(str(e), severity="error")
        self.spans_changed()

    def action_unmask_all(self) -> None:
        if self.doc.spans:
            self.doc.clear_spans()
            self.spans_changed()

    def action_grow(self) -> None:
        self._resize_span(SPAN_STEP)

    def action_shrink(self) -> None:
        self._resize_span(-SPAN_STEP)

    def _resize_span(self, delta: int) -> None:
        span = self.target_span()
        if span is None:
            self.notify("Put the cursor in a masked span to change its length.")
            return
        current = span.target_tokens if span.target_tokens is not None else self.token_count(span)
        limit = self.lm.canvas_length if self.lm else 4096
        n = max(1, min(limit, (current or 0) + delta))
        start, end = span.start, span.end
        with self.doc.group():
            self.doc.remove_span(span)
            self.doc.add_span(start, end, n)
        self.spans_changed()

    def token_count(self, span: Span) -> int | None:
        if self.lm is None:
            return None
        if span.start == span.end:
            return DEFAULT_INSERT_TOKENS
        return len(self.lm.tokenizer(self.doc.text[span.start : span.end], add_special_tokens=False)["input_ids"])

    def spans_changed(self) -> None:
        self.editor.restyle()
        self.refresh_spans()
        self.refresh_status()

    def refresh_spans(self) -> None:
        rows = [(self.doc.text[s.start : s.end], s.target_tokens, self.token_count(s)) for s in self.doc.spans]
        self.canvas.show_spans(rows, self.lm.canvas_length if self.lm else None)
