"""LSP positions <-> offsets into a Python string, exactly, in the negotiated encoding.

A position is (line, character) where ``character`` counts code units of the encoding both
sides agreed on at ``initialize``: UTF-16 unless the client offers another. We prefer UTF-32
(a Python string's own index) and then UTF-8 (:func:`prefer`). Lines end at ``\\n``,
``\\r\\n`` or ``\\r``, as the protocol says. A character past the end of its line means the
line's end (the protocol's rule); a line past the end of the text, or a position inside one
character, is the client's mistake and an :class:`~dgterm.errors.InputError`.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from lsprotocol import types

from dgterm.errors import InputError

UTF8, UTF16, UTF32 = types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf32
PREFERENCE = (UTF32, UTF8, UTF16)
LINE_BREAK = re.compile(r"\r\n|\r|\n")
CODEC: dict[str, str] = {UTF8: "utf-8", UTF16: "utf-16-le"}
UNIT_BYTES: dict[str, int] = {UTF8: 1, UTF16: 2}


def prefer(capabilities: types.ClientCapabilities) -> None:
    """Reorder the client's offered encodings to our preference (the library takes the first it knows)."""
    general = capabilities.general
    if general is not None and general.position_encodings:
        rank: dict[str, int] = {kind: i for i, kind in enumerate(PREFERENCE)}
        general.position_encodings = sorted(general.position_encodings, key=lambda k: rank.get(k, len(rank)))


def units(text: str, encoding: str) -> int:
    """The length of ``text`` in code units of ``encoding``."""
    if encoding in CODEC:
        return len(text.encode(CODEC[encoding], "surrogatepass")) // UNIT_BYTES[encoding]
    return len(text)


class Lines:
    """Where each line of a text starts and where its content ends (before its line break)."""

    def __init__(self, text: str, encoding: str):
        self.text, self.encoding = text, encoding
        self.starts, self.ends = [0], []
        for m in LINE_BREAK.finditer(text):
            self.ends.append(m.start())
            self.starts.append(m.end())
        self.ends.append(len(text))

    def offset(self, position: types.Position) -> int:
        """The string offset of ``position``."""
        if not 0 <= position.line < len(self.starts) or position.character < 0:
            raise InputError(f"Position {position.line}:{position.character} is outside the document "
                             f"({len(self.starts)} lines); send a position inside it.")
        start, end = self.starts[position.line], self.ends[position.line]
        if self.encoding == UTF32:
            return min(start + position.character, end)
        line = self.text[start:end]
        count = 0
        for i, char in enumerate(line):
            if count == position.character:
                return start + i
            count += units(char, self.encoding)
            if count > position.character:
                raise InputError(f"Position {position.line}:{position.character} falls inside a character in "
                                 f"{self.encoding}; send a position between characters.")
        return end  # at the line's end, or past it (the protocol's rule: the end)

    def position(self, offset: int) -> types.Position:
        """The position of the string offset ``offset``."""
        line = bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        return types.Position(line, units(self.text[start:offset], self.encoding))

    def range_offsets(self, rng: types.Range) -> tuple[int, int]:
        a, b = self.offset(rng.start), self.offset(rng.end)
        if b < a:
            raise InputError(f"The range ends ({rng.end.line}:{rng.end.character}) before it starts "
                             f"({rng.start.line}:{rng.start.character}); send start <= end.")
        return a, b

    def range(self, start: int, end: int) -> types.Range:
        return types.Range(self.position(start), self.position(end))
