"""Offsets in the document's text and in the file's own characters map both ways (a CRLF
counts two in the file, one in the text; mixed line endings each keep their own)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgterm.editor import Document


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "é", "😀", "\n", "\r\n", " "]), max_size=30))
def test_text_and_file_offsets_map_both_ways(pieces):
    doc = Document.from_text("".join(pieces))
    raw = doc.file_text()
    for offset in range(len(doc.text) + 1):
        at = doc.to_file_offset(offset)
        assert doc.from_file_offset(at) == offset
        assert raw[:at].replace("\r\n", "\n") == doc.text[:offset]


def test_an_offset_outside_the_text_is_refused():
    doc = Document.from_text("a\r\nb")
    assert doc.to_file_offset(2) == 3
    with pytest.raises(IndexError, match="outside the text"):
        doc.to_file_offset(4)
