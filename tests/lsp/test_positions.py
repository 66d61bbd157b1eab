"""Exact LSP position conversion in every encoding, on text with emoji, CJK and every line break."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lsprotocol import types

from dgterm.errors import InputError
from dgterm.lsp.positions import UTF8, UTF16, UTF32, Lines, prefer

ENCODINGS = (UTF8, UTF16, UTF32)
TEXT = st.lists(st.sampled_from(["a", " ", "é", "中", "😀", "🎉", "\n", "\r\n", "\r", "—"]), max_size=40).map("".join)


@pytest.mark.parametrize("encoding, column", [(UTF8, 7), (UTF16, 5), (UTF32, 4)])
def test_the_protocols_own_example(encoding, column):
    """The closing quote of x="😋" (the LSP specification's example)."""
    lines = Lines('x="😋"\n', encoding)
    assert lines.offset(types.Position(0, column)) == 4
    assert lines.position(4) == types.Position(0, column)


@given(TEXT, st.sampled_from(ENCODINGS))
def test_every_offset_survives_the_round_trip(text, encoding):
    lines = Lines(text, encoding)
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset + 1] == "\r\n":
            continue  # between \r and \n is no position: the line ends before the \r
        assert lines.offset(lines.position(offset)) == offset


@given(TEXT)
def test_utf16_counts_what_an_editor_counts(text):
    lines = Lines(text, UTF16)
    end = lines.position(len(text))
    last_line = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[-1]
    assert end == types.Position(len(lines.starts) - 1, len(last_line.encode("utf-16-le")) // 2)


def test_a_character_past_the_line_end_is_the_line_end():
    lines = Lines("ab😀\r\ncd", UTF16)
    assert lines.offset(types.Position(0, 99)) == 3
    assert lines.offset(types.Position(1, 99)) == 7


@pytest.mark.parametrize("position, says", [
    (types.Position(0, 3), "falls inside a character"),  # between the halves of 😀 in UTF-16
    (types.Position(5, 0), "outside the document \\(2 lines\\)"),
])
def test_impossible_positions_are_one_sentence(position, says):
    with pytest.raises(InputError, match=says):
        Lines("ab😀\ncd", UTF16).offset(position)


def test_a_backwards_range_is_refused():
    with pytest.raises(InputError, match="ends .* before it starts"):
        Lines("abc", UTF32).range_offsets(types.Range(types.Position(0, 2), types.Position(0, 1)))


@pytest.mark.parametrize("offered, chosen", [
    ([UTF16, UTF8], UTF8), ([UTF16, UTF8, UTF32], UTF32), ([UTF16], UTF16), (["utf-7", UTF16], UTF16)])
def test_the_server_prefers_utf32_then_utf8(offered, chosen):
    caps = types.ClientCapabilities(general=types.GeneralClientCapabilities(position_encodings=offered))
    prefer(caps)
    assert caps.general.position_encodings[0] == chosen
