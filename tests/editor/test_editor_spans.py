"""Anchored spans and selection: unit cases and a property test against a model
that tracks every character by identity."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgterm.editor import Document
from dgterm.editor.spans import moved

END = "END"


# ---- unit cases ----------------------------------------------------------------------------

@pytest.mark.parametrize("span, edit, expected", [
    ((5, 10), (0, 0, 3), (8, 13)),      # insertion before: shifts
    ((5, 10), (5, 5, 3), (8, 13)),      # insertion at start: stays outside
    ((5, 10), (10, 10, 3), (5, 10)),    # insertion at end: stays outside
    ((5, 10), (7, 7, 3), (5, 13)),      # insertion inside: grows
    ((5, 10), (12, 15, 0), (5, 10)),    # deletion after: nothing
    ((5, 10), (3, 7, 0), (3, 6)),       # deletion over the start: clipped
    ((5, 10), (8, 12, 0), (5, 8)),      # deletion over the end: clipped
    ((5, 10), (6, 8, 0), (5, 8)),       # deletion inside: shrinks
    ((5, 10), (5, 10, 0), None),        # all its text deleted: vanishes
    ((5, 10), (2, 12, 4), None),        # replaced with more: vanishes
    ((5, 10), (6, 8, 5), (5, 13)),      # replacement inside: grows
    ((5, 5), (5, 5, 2), (7, 7)),        # text typed at an insertion point lands before it
    ((5, 5), (3, 8, 0), (3, 3)),        # deletion around an insertion point keeps it
    ((5, 5), (3, 8, 1), (4, 4)),        # ... and replacement puts it after the new text
    ((5, 5), (6, 8, 0), (5, 5)),
    ((5, 5), (0, 5, 0), (0, 0)),
])
def test_moved(span, edit, expected):
    assert moved(*span, *edit) == expected


def test_selection_collapses_instead_of_vanishing():
    assert moved(5, 10, 5, 10, 3, keep=True) == (8, 8)


def test_spans_follow_edits_in_a_document():
    doc = Document.from_text("The quick brown fox jumps.")
    quick = doc.add_span(4, 9)
    point = doc.add_span(20, 20, target_tokens=3)
    doc.insert(0, "Look: ")
    doc.replace(doc.text.index("fox"), doc.text.index("fox") + 3, "cat")
    assert doc.text[quick.start:quick.end] == "quick"
    assert doc.text[point.start:] == "jumps."
    assert point.target_tokens == 3
    doc.delete(quick.start, quick.end)
    assert doc.spans == [point]


def test_merge_overlapping_spans():
    doc = Document.from_text("0123456789abcdef")
    a = doc.add_span(2, 5)
    b = doc.add_span(8, 10, target_tokens=4)
    c = doc.add_span(4, 9, target_tokens=7)  # overlaps both: one span covering all three
    assert [(s.start, s.end, s.target_tokens) for s in doc.spans] == [(2, 10, 7)]
    assert c.id not in (a.id, b.id)
    assert doc.span(a.id) is None


def test_adjacent_spans_and_boundary_points_stay_separate():
    doc = Document.from_text("0123456789")
    doc.add_span(2, 5)
    doc.add_span(5, 8)
    doc.add_span(2, 2)
    doc.add_span(8, 8)
    assert [(s.start, s.end) for s in doc.spans] == [(2, 2), (2, 5), (5, 8), (8, 8)]
    doc.add_span(6, 6)  # strictly inside: absorbed
    assert [(s.start, s.end) for s in doc.spans] == [(2, 2), (2, 5), (5, 8), (8, 8)]
    doc.add_span(3, 3)
    doc.add_span(0, 10)  # swallows everything
    assert [(s.start, s.end) for s in doc.spans] == [(0, 10)]


def test_insertion_points_that_meet_are_merged():
    doc = Document.from_text("0123456789")
    a = doc.add_span(3, 3)
    doc.add_span(6, 6)
    doc.delete(2, 7)
    assert [(s.start, s.end, s.id) for s in doc.spans] == [(2, 2, a.id)]


def test_span_arguments_are_checked():
    doc = Document.from_text("abc")
    with pytest.raises(IndexError):
        doc.add_span(2, 5)
    with pytest.raises(IndexError):
        doc.add_span(2, 1)
    with pytest.raises(ValueError):
        doc.add_span(0, 1, target_tokens=-1)
    assert doc.add_span((0, 1), (0, 3)).start == 1


# ---- the property test -----------------------------------------------------------------------

class Model:
    """Characters carry ids; a span is the set of ids it covers, an insertion point
    is the id of the character after it (END at the end of the text)."""

    def __init__(self, text):
        self.uids = itertools.count()
        self.chars = [(c, next(self.uids)) for c in text]
        self.spans = {}  # id -> ("range", set) | ("point", uid)
        self.sel = ("point", self.anchor(0))
        self.next_id = 1

    def anchor(self, pos):
        return self.chars[pos][1] if pos < len(self.chars) else END

    def pos(self, uid):
        return len(self.chars) if uid == END else [u for _, u in self.chars].index(uid)

    def extent(self, mark):
        kind, val = mark
        if kind == "point":
            p = self.pos(val)
            return p, p
        idx = [i for i, (_, u) in enumerate(self.chars) if u in val]
        assert idx == list(range(idx[0], idx[-1] + 1)), "span is not contiguous"
        return idx[0], idx[-1] + 1

    def mark(self, start, end):
        if start == end:
            return ("point", self.anchor(start))
        return ("range", {u for _, u in self.chars[start:end]})

    def text(self):
        return "".join(c for c, _ in self.chars)

    def replace(self, a, b, text):
        gone = {u for _, u in self.chars[a:b]}
        after = self.anchor(b)
        del self.chars[a:b]

        def update(mark, keep):
            kind, val = mark
            if kind == "point":
                return ("point", after if val in gone else val)
            val = val - gone
            if not val:
                return ("point", self.anchor(a)) if keep else None
            return ("range", val)

        new = [(c, next(self.uids)) for c in text]
        inside = lambda val: 0 < a < len(self.chars) and {self.chars[a - 1][1], self.chars[a][1]} <= val
        for sid in list(self.spans):
            mark = update(self.spans[sid], keep=False)
            if mark is None:
                del self.spans[sid]
            else:
                if mark[0] == "range" and inside(mark[1]):
                    mark[1].update(u for _, u in new)
                self.spans[sid] = mark
        self.sel = update(self.sel, keep=True)
        if self.sel[0] == "range" and inside(self.sel[1]):
            self.sel[1].update(u for _, u in new)
        self.chars[a:a] = new
        seen = {}
        for sid in sorted(self.spans):  # insertion points that meet merge; the oldest stays
            kind, val = self.spans[sid]
            if kind == "point":
                if val in seen:
                    del self.spans[sid]
                seen[val] = sid

    def add(self, start, end):
        def overlap(s, e, t, u):
            if s == e and t == u:
                return s == t
            if s == e:
                return t < s < u
            if t == u:
                return s < t < e
            return max(s, t) < min(e, u)

        for sid, m in list(self.spans.items()):
            t, u = self.extent(m)
            if overlap(start, end, t, u):
                start, end = min(start, t), max(end, u)
                del self.spans[sid]
        self.spans[self.next_id] = self.mark(start, end)
        self.next_id += 1

    def check(self, doc):
        assert doc.text == self.text()
        got = {s.id: (s.start, s.end) for s in doc.spans}
        assert got == {sid: self.extent(m) for sid, m in self.spans.items()}
        assert doc.selection == self.extent(self.sel)
        ends = [(s.start, s.end) for s in doc.spans]
        assert ends == sorted(ends)
        for (s, e), (t, u) in zip(ends, ends[1:]):
            assert e <= t  # no overlaps
        for s in doc.spans:
            assert 0 <= s.start <= s.end <= len(doc.text)
        # the line index is updated edit by edit; it must equal a fresh one
        assert doc._line_starts() == Document.from_text(doc.text)._line_starts()


pos = st.integers(0, 60)
ops = st.lists(st.one_of(
    st.tuples(st.just("replace"), pos, pos, st.text("ab\n", max_size=4)),
    st.tuples(st.just("add"), pos, pos),
    st.tuples(st.just("remove"), st.integers(0, 5)),
    st.tuples(st.just("select"), pos, pos),
), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.text("abc\n", max_size=25), ops)
def test_spans_track_their_characters(text, ops):
    doc, model = Document.from_text(text), Model(text)
    doc.location_of(0)
    for op, *args in ops:
        n = len(doc.text) + 1
        if op == "replace":
            a, b = sorted((args[0] % n, args[1] % n))
            if doc.text[a:b] == args[2]:
                continue  # a no-op: nothing moves
            doc.replace(a, b, args[2])
            model.replace(a, b, args[2])
        elif op == "add":
            a, b = sorted((args[0] % n, args[1] % n))
            doc.add_span(a, b)
            model.add(a, b)
        elif op == "remove" and doc.spans:
            span = doc.spans[args[0] % len(doc.spans)]
            doc.remove_span(span)
            del model.spans[span.id]
        elif op == "select":
            a, b = sorted((args[0] % n, args[1] % n))
            doc.selection = (b, a)
            model.sel = model.mark(a, b)
        model.check(doc)
