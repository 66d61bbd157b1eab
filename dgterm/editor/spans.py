"""Ranges anchored to the text: masked spans and the selection.

Every edit is "replace [a, b) by n new characters", applied as a deletion of [a, b)
followed by an insertion of n characters at a. Ranges follow it by these rules:

* a range's start sticks to the character after it and its end to the character
  before it, so text inserted at either boundary stays outside the range and text
  inserted strictly inside it makes it grow;
* a deletion clips a range; a range that had text and lost all of it vanishes;
* a zero-length range (an insertion point) sticks to the character after it: it
  never vanishes, and text inserted exactly at it lands before it.

These maps are monotone, so ranges that did not overlap never come to overlap.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

# A span as plain data: (id, start, end, target_tokens). Used by history and journal.
SpanTuple = tuple[int, int, int, "int | None"]


@dataclass(eq=False)
class Span:
    """A masked range of the document for the model to rewrite.

    The document moves ``start`` and ``end`` in place as the text is edited; a span
    that vanished is no longer in ``Document.spans``. ``target_tokens`` is the token
    length the model should produce for it (None: about as long as it is now).
    """

    start: int
    end: int
    target_tokens: int | None = None
    id: int = 0

    def as_tuple(self) -> SpanTuple:
        return (self.id, self.start, self.end, self.target_tokens)

    def __len__(self) -> int:
        return self.end - self.start


def _after_delete(p: int, a: int, b: int) -> int:
    if p <= a:
        return p
    if p >= b:
        return p - (b - a)
    return a


@overload
def moved(start: int, end: int, a: int, b: int, n: int, keep: Literal[True]) -> tuple[int, int]: ...
@overload
def moved(start: int, end: int, a: int, b: int, n: int, keep: bool = False) -> tuple[int, int] | None: ...
def moved(start: int, end: int, a: int, b: int, n: int,
          keep: bool = False) -> tuple[int, int] | None:
    """Where [start, end) goes when [a, b) is replaced by n characters.

    None when the range had text and all of it was deleted, unless ``keep`` (the
    selection), in which case it collapses to an insertion point.
    """
    s, e = _after_delete(start, a, b), _after_delete(end, a, b)
    if s == e:
        if start != end and not keep:
            return None
        p = s + n if s >= a else s
        return (p, p)
    return (s + n if s >= a else s, e + n if e > a else e)


def _overlap(s: int, e: int, t: int, u: int) -> bool:
    """Whether [s, e) and [t, u) must merge: they share a character, or one is an
    insertion point strictly inside the other, or both are the same point."""
    if s == e and t == u:
        return s == t
    if s == e:
        return t < s < u
    if t == u:
        return s < t < e
    return max(s, t) < min(e, u)


class SpanSet:
    """The document's spans, kept sorted and pairwise non-overlapping."""

    def __init__(self) -> None:
        self._spans: list[Span] = []
        self._ids = itertools.count(1)
        # every span still referenced somewhere, so that undo revives the same object
        self._known: weakref.WeakValueDictionary[int, Span] = weakref.WeakValueDictionary()

    def __iter__(self):
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def list(self) -> list[Span]:
        return list(self._spans)

    def get(self, span_id: int) -> Span | None:
        return next((s for s in self._spans if s.id == span_id), None)

    def add(self, start: int, end: int, target_tokens: int | None) -> Span:
        """Add [start, end); spans it overlaps are merged into it (see ``_overlap``).

        The merged span covers the union, gets a new id, and takes this call's
        ``target_tokens``: the latest request wins.
        """
        hit = [x for x in self._spans if _overlap(start, end, x.start, x.end)]
        for x in hit:
            start, end = min(start, x.start), max(end, x.end)
        self._spans = [x for x in self._spans if x not in hit]
        return self.put(Span(start, end, target_tokens, next(self._ids)))

    def put(self, span: Span) -> Span:
        """Insert a span as is (the caller guarantees it overlaps nothing)."""
        self._known[span.id] = span
        self._spans.append(span)
        self._sort()
        return span

    def remove(self, span_id: int) -> None:
        self._spans = [x for x in self._spans if x.id != span_id]

    def clear(self) -> None:
        self._spans = []

    def edit(self, a: int, b: int, n: int) -> None:
        """Move every span for the replacement of [a, b) by n characters.

        Insertion points that come to coincide are merged (the oldest stays).
        """
        kept = []
        for x in self._spans:
            r = moved(x.start, x.end, a, b, n)
            if r is not None:
                x.start, x.end = r
                kept.append(x)
        kept.sort(key=lambda x: (x.start, x.end, x.id))
        self._spans = [x for i, x in enumerate(kept) if not (
            i and x.start == x.end == kept[i - 1].start == kept[i - 1].end)]

    def snapshot(self) -> tuple[SpanTuple, ...]:
        return tuple(x.as_tuple() for x in self._spans)

    def restore(self, snap: Iterable[Sequence[Any]]) -> None:
        """Set the spans to a snapshot (or its JSON form, lists), reusing the Span objects
        with the same id."""
        spans = []
        for span_id, start, end, target in snap:
            x = self._known.get(span_id)
            if x is None:
                x = self._known[span_id] = Span(start, end, target, span_id)
            x.start, x.end, x.target_tokens = start, end, target
            spans.append(x)
        self._spans = spans
        self._sort()
        top = max((x.id for x in spans), default=0)
        peek = next(self._ids)
        self._ids = itertools.count(max(peek, top + 1))

    def _sort(self) -> None:
        self._spans.sort(key=lambda x: (x.start, x.end, x.id))
