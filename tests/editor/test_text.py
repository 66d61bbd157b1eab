"""The text helpers (dgterm.editor.text): the line index and the common ends of two
strings, checked against naive versions, with chunks small enough that every case
crosses chunk boundaries."""

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgterm.editor import text as tx


def naive_starts(s):
    return [0] + [i + 1 for i, c in enumerate(s) if c == "\n"] + [len(s) + 1]


def naive_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def naive_suffix(a, b):
    return naive_prefix(a[::-1], b[::-1])


texts = st.text("ab\né", max_size=40)


@pytest.fixture(params=[tx.CHUNK, 1, 3], ids=["chunk", "chunk1", "chunk3"])
def chunk(request):
    with mock.patch.object(tx, "CHUNK", request.param):
        yield request.param


# ---- line index ---------------------------------------------------------------------------

@pytest.mark.parametrize("s, starts", [
    ("", [0, 1]),
    ("a", [0, 2]),
    ("\n", [0, 1, 2]),
    ("ab\ncd", [0, 3, 6]),
    ("ab\n", [0, 3, 4]),
    ("\n\n", [0, 1, 2, 3]),
])
def test_line_starts(s, starts):
    assert tx.line_starts(s) == starts


@settings(max_examples=300, deadline=None)
@given(texts)
def test_line_starts_are_the_naive_ones(s):
    assert tx.line_starts(s) == naive_starts(s)


@settings(max_examples=300, deadline=None)
@given(texts, st.data())
def test_location_is_the_naive_one(s, data):
    offset = data.draw(st.integers(0, len(s)))
    line = s.count("\n", 0, offset)
    assert tx.location(tx.line_starts(s), offset) == (line, offset - (s.rfind("\n", 0, offset) + 1))


@settings(max_examples=500, deadline=None)
@given(texts, texts, st.data())
def test_moved_line_starts_equal_a_fresh_index(s, new, data):
    start = data.draw(st.integers(0, len(s)))
    end = data.draw(st.integers(start, len(s)))
    edited = s[:start] + new + s[end:]
    assert tx.moved_line_starts(tx.line_starts(s), start, end, new) == naive_starts(edited)


# ---- common ends --------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, ends", [
    ("", "", (0, 0)),
    ("abc", "abc", (3, 0)),
    ("abc", "", (0, 0)),
    ("abc", "abXc", (2, 1)),
    ("abc", "c", (0, 1)),
    ("aaa", "aa", (2, 0)),   # the start is taken first, as long as it goes
    ("abab", "ab", (2, 0)),
    ("xab", "yab", (0, 2)),
])
def test_common_ends(a, b, ends, chunk):
    assert tx.common_ends(a, b) == ends


def test_common_suffix_limit(chunk):
    assert tx.common_suffix("xabc", "yabc") == 3
    assert tx.common_suffix("xabc", "yabc", 2) == 2
    assert tx.common_suffix("xabc", "yabc", 0) == 0
    assert tx.common_suffix("xabc", "yabc", -1) == 0


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_common_prefix_and_suffix_are_the_naive_ones(a, b):
    for chunk in (tx.CHUNK, 1, 2, 5):
        with mock.patch.object(tx, "CHUNK", chunk):
            assert tx.common_prefix(a, b) == naive_prefix(a, b)
            assert tx.common_suffix(a, b) == naive_suffix(a, b)


@settings(max_examples=300, deadline=None)
@given(texts, texts, texts)
def test_common_ends_find_the_changed_middle(head, middle, tail):
    a, b = head + tail, head + middle + tail
    for x, y in ((a, b), (b, a)):
        for chunk in (tx.CHUNK, 1, 3):
            with mock.patch.object(tx, "CHUNK", chunk):
                p, q = tx.common_ends(x, y)
            assert p == naive_prefix(x, y)
            assert p + q <= min(len(x), len(y))
            assert q == min(naive_suffix(x, y), min(len(x), len(y)) - p)
            assert x[:p] + y[p:len(y) - q] + x[len(x) - q:] == y


@pytest.mark.parametrize("where", [0, 1, tx.CHUNK - 1, tx.CHUNK, tx.CHUNK + 1, 5 * tx.CHUNK + 7, None])
def test_common_ends_of_big_texts(where):
    """A 2 MB text with one character changed: at chunk boundaries, the ends, or none."""
    a = "".join(f"line {i}\n" for i in range(200_000))
    b = a if where is None else a[:where] + "\0" + a[where + 1:]
    p, q = tx.common_ends(a, b)
    if where is None:
        assert (p, q) == (len(a), 0)
    else:
        assert (p, q) == (where, len(a) - where - 1)
        assert tx.common_ends(b + "x", a + "x") == (where, len(a) - where)
