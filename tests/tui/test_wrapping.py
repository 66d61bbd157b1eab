"""FlatWrap (tui/widgets/wrapping.py) keeps what Textual's WrappedDocument keeps, unwrapped
and wrapped, through edits, and the width Textual's Document.get_size measures."""

from __future__ import annotations

import pytest
from textual.document._document import Document
from textual.document._wrapped_document import WrappedDocument

from dgterm.tui.widgets.wrapping import FlatWrap

TEXT = "plain line\n\tindented\twith tabs\n\nwide 漢字 text\n" + "x" * 70 + "\ncafé\n"
EDITS = [((0, 0), (0, 5), "PLAIN"), ((1, 0), (1, 1), ""), ((2, 0), (2, 0), "new\n\tlines\n"),
         ((3, 0), (5, 4), "joined"), ((0, 10), (0, 10), "漢" * 40)]


def state(w: WrappedDocument) -> tuple:
    return (w._wrap_offsets, w._offset_to_line_info, w._line_index_to_offsets, w._tab_width_cache, w.height)


@pytest.mark.parametrize("width", [0, 24])
def test_flat_wrap_keeps_what_textual_keeps_through_edits(width):
    ours, theirs = Document(TEXT), Document(TEXT)
    flat, textual = FlatWrap(ours, tab_width=4), WrappedDocument(theirs, tab_width=4)
    flat.wrap(width)
    textual.wrap(width)
    assert state(flat) == state(textual)
    for start, end, text in EDITS:
        for doc, wrapped in ((ours, flat), (theirs, textual)):
            result = doc.replace_range(start, end, text)
            wrapped.wrap_range(start, end, result.end_location)
        assert state(flat) == state(textual)
        if not width:
            assert flat.widest == ours.get_size(4).width
    flat.wrap(width)  # a full wrap after the edits changes nothing
    textual.wrap(width)
    assert state(flat) == state(textual)
    for doc in (ours, theirs):  # TextArea wraps in full (no wrap_range) when the gutter widens
        doc.replace_range((0, 0), (0, 0), "one\ntwo\n")
    flat.wrap(width)
    textual.wrap(width)
    assert state(flat) == state(textual)
