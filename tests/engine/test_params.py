"""The length search's lengths (the editor's search and the language server share them)."""

from dgterm.engine.params import search_lengths


def test_search_lengths_go_from_half_to_twice_within_half_a_canvas():
    assert search_lengths(16, 256) == [8, 16, 24, 32]
    assert search_lengths(100, 128) == [50, 64]  # 100, 150, 200 all stop at half the canvas
    assert search_lengths(1, 256) == [1, 2]  # never a length of 0
