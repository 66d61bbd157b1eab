"""Undo/redo: grouping, typing runs, model rewrites as one step, exact redo."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgterm.editor import Document, DocumentError
from dgterm.editor.fileio import encode


def state(doc):
    return (doc.text, [(s.id, s.start, s.end, s.target_tokens) for s in doc.spans],
            doc.selection, encode(doc.text, doc.encoding, doc.newline, doc._eol))


def nosel(state):
    return state[:2] + state[3:]


def test_undo_redo_single_edits():
    doc = Document.from_text("hello")
    doc.insert(5, " world")
    doc.delete(0, 1)
    assert doc.text == "ello world"
    assert doc.undo() and doc.text == "hello world"
    assert doc.undo() and doc.text == "hello"
    assert not doc.undo()
    assert doc.redo() and doc.redo() and doc.text == "ello world"
    assert not doc.redo()


def test_new_edit_clears_redo():
    doc = Document.from_text("abc")
    doc.insert(3, "d")
    doc.undo()
    doc.insert(0, "x")
    assert not doc.can_redo()


def test_typing_is_undone_a_word_at_a_time():
    doc = Document.from_text("")
    for c in "one two\nthree":
        doc.insert(len(doc.text), c)
    doc.undo()
    assert doc.text == "one two\n"
    doc.undo()
    assert doc.text == "one "
    doc.undo()
    assert doc.text == ""


def test_typing_runs_merge_even_when_spans_move():
    doc = Document.from_text("[] end")
    span = doc.add_span(1, 1)
    inside = doc.add_span(3, 6)
    for i, c in enumerate("abc"):
        doc.insert(1 + i, c)
    assert doc.text[span.start:] == "] end" and doc.text[inside.start:inside.end] == "end"
    doc.undo()
    assert doc.text == "[] end" and (span.start, inside.start) == (1, 3)


def test_typing_elsewhere_starts_a_new_step():
    doc = Document.from_text("ab")
    doc.insert(2, "x")
    doc.insert(0, "y")
    doc.undo()
    assert doc.text == "abx"


def test_group_is_one_step_and_reverts_on_error():
    doc = Document.from_text("a b c")
    with doc.group():
        doc.replace(0, 1, "A")
        with doc.group():
            doc.replace(2, 3, "B")
        doc.replace(4, 5, "C")
    assert doc.text == "A B C"
    doc.undo()
    assert doc.text == "a b c"
    doc.redo()
    with pytest.raises(ZeroDivisionError):
        with doc.group():
            doc.insert(0, "oops ")
            doc.add_span(0, 4)
            1 / 0
    assert doc.text == "A B C" and doc.spans == []
    doc.undo()
    assert doc.text == "a b c"


def test_undo_inside_a_group_is_refused():
    doc = Document.from_text("a")
    with pytest.raises(RuntimeError), doc.group():
        doc.undo()


def test_spans_and_selection_come_back_with_the_text():
    doc = Document.from_text("keep this sentence")
    span = doc.add_span(5, 9, target_tokens=2)
    doc.selection = (5, 9)
    doc.delete(4, 9)
    assert doc.spans == [] and doc.selection == (4, 4)
    doc.undo()
    assert [(s.start, s.end, s.target_tokens) for s in doc.spans] == [(5, 9, 2)]
    assert doc.spans[0] is span  # the same object, so a UI holding it stays valid
    assert doc.selection == (5, 9)
    doc.undo()  # adding the span was a step too
    assert doc.spans == []


def test_apply_rewrite_is_one_step():
    doc = Document.from_text("The cat sat on the mat.\nIt was warm.\n")
    cat = doc.add_span(4, 7)
    gap = doc.add_span(23, 23, target_tokens=5)  # an insertion point at the end of line 1
    warm = doc.add_span(doc.text.index("warm"), doc.text.index("warm") + 4)
    before = state(doc)
    ranges = doc.apply_rewrite({cat.id: "dog", gap: " Then it slept.", warm: "cold\r\nand wet"})
    assert doc.text == "The dog sat on the mat. Then it slept.\nIt was cold\nand wet.\n"
    assert [doc.text[s:e] for s, e in ranges] == ["dog", " Then it slept.", "cold\nand wet"]
    assert doc.spans == []
    after = state(doc)
    doc.undo()
    assert state(doc) == before
    doc.redo()
    assert state(doc) == after


def test_apply_rewrite_keep_spans():
    doc = Document.from_text("a [x] b [] c")
    x = doc.add_span(3, 4)
    point = doc.add_span(9, 9)
    edge = doc.add_span(3, 3)  # an insertion point right before span x stays before it
    ranges = doc.apply_rewrite({x: "XYZ", point: "P", edge: "<"}, keep_spans=True)
    assert doc.text == "a [<XYZ] b [P] c"
    assert [(s.id, s.start, s.end) for s in doc.spans] == [
        (edge.id, 3, 4), (x.id, 4, 7), (point.id, 12, 13)]
    assert [(s.start, s.end) for s in doc.spans] == ranges


def test_apply_rewrite_of_a_vanished_span_changes_nothing():
    doc = Document.from_text("one two")
    a = doc.add_span(0, 3)
    b = doc.add_span(4, 7)
    doc.delete(4, 7)
    with pytest.raises(DocumentError, match="no longer exists"):
        doc.apply_rewrite({a: "1", b: "2"})
    assert doc.text == "one "


def test_dirty_follows_undo_to_the_saved_state(tmp_path):
    doc = Document.open(tmp_path / "f.txt")
    doc.insert(0, "a")
    doc.save()
    assert not doc.dirty
    doc.insert(1, "b")  # typing continues the run, but the save point splits it
    assert doc.dirty
    doc.undo()
    assert not doc.dirty and doc.text == "a"
    doc.undo()
    assert doc.dirty
    doc.redo()
    assert not doc.dirty


# ---- property: undo/redo against a stack of recorded states ----------------------------------

pos = st.integers(0, 60)
ops = st.lists(st.one_of(
    st.tuples(st.just("replace"), pos, pos, st.text("ab\n", max_size=3)),
    st.tuples(st.just("type"), pos, st.sampled_from("a \n")),
    st.tuples(st.just("add"), pos, pos),
    st.tuples(st.just("rewrite"), st.text("xy\n", max_size=3)),
    st.tuples(st.just("select"), pos, pos),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
), max_size=30)
text_with_newlines = st.lists(st.sampled_from(["a", "b", "\n", "\r\n", "\r"]), max_size=12).map("".join)


@settings(max_examples=120, deadline=None)
@given(text_with_newlines, ops)
def test_undo_redo_restore_exact_states(text, ops):
    """Each step is checked against the states seen before and after it (the
    selection as it was then); the line endings of a mixed file are part of the state."""
    doc = Document.from_text(text)
    assert encode(doc.text, doc.encoding, doc.newline, doc._eol) == text.encode()
    done, undone = [], []  # (state before, state after) per step
    for op, *args in ops:
        n = len(doc.text) + 1
        before = state(doc)
        steps = len(doc._history._undo)
        if op == "undo":
            if doc.undo():
                b, a = done.pop()
                assert nosel(before) == nosel(a) and state(doc) == b
                undone.append((b, a))
            continue
        if op == "redo":
            if doc.redo():
                b, a = undone.pop()
                assert nosel(before) == nosel(b) and state(doc) == a
                done.append((b, a))
            continue
        if op == "replace":
            a, b = sorted((args[0] % n, args[1] % n))
            doc.replace(a, b, args[2])
        elif op == "type":
            doc.insert(args[0] % n, args[1])
        elif op == "add":
            a, b = sorted((args[0] % n, args[1] % n))
            doc.add_span(a, b)
        elif op == "rewrite":
            doc.apply_rewrite({s: args[0] for s in doc.spans})
        elif op == "select":
            a, b = sorted((args[0] % n, args[1] % n))
            doc.selection = (a, b)
            continue
        if len(doc._history._undo) > steps:
            done.append((before, state(doc)))
            undone.clear()
        elif doc._history._undo and state(doc) != before:  # merged into the last step
            done[-1] = (done[-1][0], state(doc))
            undone.clear()
        assert len(doc._eols()) == doc.text.count("\n")
    while doc.undo():
        pass
    assert doc.text == Document.from_text(text).text
    assert encode(doc.text, doc.encoding, doc.newline, doc._eol) == text.encode()
