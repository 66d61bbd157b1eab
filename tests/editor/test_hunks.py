"""Hunks: a candidate cut into word-level changes, accepted one at a time into a span."""

from hypothesis import given, settings
from hypothesis import strategies as st

from dgterm.editor.hunks import Hunk, Merge, diff, next_word

WORDS = st.lists(st.sampled_from(["the", "cat", "a", "dog", " ", "  ", "\n", ",", ".", "sat", "x1", "é"]),
                 max_size=14).map("".join)


def test_two_changes_in_a_long_span_are_two_hunks():
    old = "The quick brown fox jumps over the lazy dog.\nIt was a fine day."
    new = "The slow brown fox jumps over the lazy cat.\nIt was a fine day."
    assert diff(old, new) == [Hunk(4, 9, "slow"), Hunk(40, 43, "cat")]


def test_changes_separated_by_a_space_are_one_hunk():
    assert diff("the cat sat", "a dog sat") == [Hunk(0, 7, "a dog")]


def test_next_word_splits_off_the_first_word():
    first, rest = next_word(Hunk(3, 5, " lazy old dog"))
    assert first == Hunk(3, 5, " lazy") and rest == Hunk(5, 5, " old dog")
    assert next_word(Hunk(0, 0, "dog  ")) == (Hunk(0, 0, "dog  "), None)


@settings(max_examples=200, deadline=None)
@given(WORDS, WORDS, st.lists(st.booleans(), max_size=20))
def test_accepting_any_subset_changes_only_those_hunks(old, new, take):
    hunks = diff(old, new)
    merge = Merge(old)
    for h, yes in zip(hunks, take + [True] * len(hunks)):
        if yes:
            merge.accept(0, h)
    text = merge.text()
    # rebuilt by hand: every byte outside an accepted hunk is the original's
    expected, at = "", 0
    for h, yes in zip(hunks, take + [True] * len(hunks)):
        if yes:
            expected += old[at : h.start] + h.new
            at = h.end
    assert text == expected + old[at:]
    if all(take + [True] * len(hunks)):
        assert text == new


@settings(max_examples=100, deadline=None)
@given(WORDS, WORDS)
def test_word_by_word_ends_at_the_candidate(old, new):
    merge, pending = Merge(old), list(reversed(diff(old, new)))
    while pending:
        first, rest = next_word(pending.pop())
        assert not merge.clashes(0, first)
        merge.accept(0, first)
        if rest is not None:
            pending.append(rest)
    assert merge.text() == new


def test_a_hunk_of_another_candidate_over_accepted_text_clashes():
    merge = Merge("one two three")
    merge.accept(0, Hunk(4, 7, "2"))
    assert merge.clashes(1, Hunk(4, 7, "zwei")) and merge.clashes(1, Hunk(7, 7, "!"))
    assert not merge.clashes(1, Hunk(8, 13, "drei"))
    merge.accept(1, Hunk(8, 13, "drei"))
    assert merge.text() == "one 2 drei"
