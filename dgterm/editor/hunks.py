"""A candidate's changes to a span as hunks, and a span's text as hunks are accepted
into it one by one (from any candidate), as plain text: no model, no UI.

A :class:`Hunk` replaces ``[start, end)`` of the span's *original* text (the text the
run saw) by ``new``. :func:`diff` cuts a candidate's text into hunks at word
granularity (difflib over words, whitespace runs and punctuation), so a long span that
the model changed in two places gives two hunks. A :class:`Merge` holds one span's
original text and the hunks accepted so far; everything not accepted keeps the
original's bytes exactly.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

TOKEN = re.compile(r"\w+|\s+|[^\w\s]")  # words, runs of whitespace, single punctuation marks
WORD = re.compile(r"\s*(?:\w+|[^\w\s])")  # the next word of a hunk: its leading whitespace and one word


@dataclass(frozen=True)
class Hunk:
    """Replace ``[start, end)`` of the original text by ``new``."""

    start: int
    end: int
    new: str

    @property
    def insertion(self) -> bool:
        return self.start == self.end


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def diff(old: str, new: str) -> list[Hunk]:
    """The hunks that turn ``old`` into ``new``, in order. Changes separated only by
    spaces on one line are one hunk ("the cat" -> "a dog", not two)."""
    a, b = _tokens(old), _tokens(new)
    a_at = [0]
    for t in a:
        a_at.append(a_at[-1] + len(t))
    hunks: list[list] = []  # [start token, end token, new text] in old's tokens
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        gap = "".join(a[hunks[-1][1] : i1]) if hunks else None
        if gap is not None and (gap == "" or (gap.isspace() and "\n" not in gap)):
            hunks[-1][1] = i2
            hunks[-1][2] += gap + "".join(b[j1:j2])
        else:
            hunks.append([i1, i2, "".join(b[j1:j2])])
    return [Hunk(a_at[i1], a_at[i2], text) for i1, i2, text in hunks]


def next_word(hunk: Hunk) -> tuple[Hunk, Hunk | None]:
    """``hunk`` split at its first word: the part that takes the place of the old text
    with the first word of the new one, and the insertion of the rest after it (None
    when nothing is left)."""
    m = WORD.match(hunk.new)
    cut = m.end() if m else len(hunk.new)
    if not hunk.new[cut:].strip():
        cut = len(hunk.new)
    first = Hunk(hunk.start, hunk.end, hunk.new[:cut])
    rest = hunk.new[cut:]
    return first, (Hunk(hunk.end, hunk.end, rest) if rest else None)


@dataclass
class Merge:
    """One span: its original text and the hunks accepted into it, each with the
    candidate it came from (``applied``, in the order accepted)."""

    original: str
    applied: list[tuple[int, Hunk]] = field(default_factory=list)

    def _shift(self, pos: int, after_insertions: bool) -> int:
        """How far original position ``pos`` moved; ``after_insertions``: past hunks
        inserted exactly at ``pos``."""
        return sum(len(h.new) - (h.end - h.start) for _, h in self.applied
                   if h.end < pos or (h.end == pos and (after_insertions or h.start < pos)))

    def where(self, hunk: Hunk) -> tuple[int, int]:
        """Where ``hunk``'s old text is in the current text (an insertion goes after
        what was inserted at the same place before)."""
        start = hunk.start + self._shift(hunk.start, True)
        return start, hunk.end + self._shift(hunk.end, hunk.insertion)

    def clashes(self, choice: int, hunk: Hunk) -> bool:
        """Whether ``hunk`` of candidate ``choice`` touches text another accepted hunk
        changed (a hunk of another candidate may not even touch one at its edge)."""
        for owner, h in self.applied:
            if owner != choice and h.start <= hunk.end and hunk.start <= h.end:
                return True
            if max(h.start, hunk.start) < min(h.end, hunk.end):
                return True
            if hunk.insertion and h.start < hunk.start < h.end or h.insertion and hunk.start < h.start < hunk.end:
                return True
        return False

    def text(self) -> str:
        """The span's text now."""
        return self.with_hunk(None)

    def with_hunk(self, hunk: Hunk | None) -> str:
        """The span's text with ``hunk`` (None: nothing more) accepted too."""
        text = self.original
        done = Merge(self.original)
        for _, h in self.applied + ([(-1, hunk)] if hunk is not None else []):
            a, b = done.where(h)
            text = text[:a] + h.new + text[b:]
            done.applied.append((-1, h))
        return text

    def accept(self, choice: int, hunk: Hunk) -> None:
        self.applied.append((choice, hunk))
