"""Reviewing a run hunk by hunk, on the recorded demo run (two spans, two candidates of
the bundled model, each cut into several hunks), asserting on the saved file's bytes."""

from __future__ import annotations

from dgterm.tui.app import make_app

from tests.helpers.tui import SIZE, TRACE, notes, settle

# The recorded run's spans of docs/demo.md and its candidates' text for them
SPANS = [(342, 367), (574, 588)]  # 'sum(values) / len(values)', 'text before it'


async def review(pilot, app) -> None:
    await settle(app, pilot)
    assert app.mode == "review" and app.review.choice == 0


def with_spans(before: str, first: str, second: str) -> str:
    (a, b), (c, d) = SPANS
    return before[:a] + first + before[b:c] + second + before[d:]


async def undo_count(pilot, app, before: str) -> int:
    """ctrl+z until the text is ``before`` again; how many it took."""
    n = 0
    while app.doc.text != before and n < 10:
        await pilot.press("ctrl+z")
        n += 1
    return n


async def test_accept_one_reject_one_move_and_save(demo):
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0)
    before = demo.read_text()
    async with app.run_test(size=SIZE) as pilot:
        await review(pilot, app)
        assert app.review.hunk_label() == "hunk 1/4"
        await pilot.press("y")  # 'sum' -> 'ValueError', one undo step, still under review
        assert app.mode == "review" and app.doc.text == with_spans(before, "ValueError(values) / len(values)",
                                                                   "text before it")
        await pilot.press("n")  # 'values' -> 'x' rejected: those bytes stay
        await pilot.press("right_square_bracket", "left_square_bracket", "right_square_bracket")
        assert app.review.current_hunk()[0] == 1  # the hunk of the second span
        await pilot.press("y")
        await pilot.press("escape")  # the rest rejected
        assert app.mode == "edit" and "Kept the 2 hunk(s) accepted; the rest is as it was." in notes(app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = with_spans(before, "ValueError(values) / len(values)", "tardio callback")
        assert demo.read_bytes() == saved.encode()
        assert [(s.start, s.end) for s in app.doc.spans] == [(342, 374), (581, 596)]  # still marked, over the new text
        assert await undo_count(pilot, app, before) == 2  # one undo per accepted hunk


async def test_cycle_candidates_take_words_and_hunks_of_both(demo):
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0)
    before = demo.read_text()
    async with app.run_test(size=SIZE) as pilot:
        await review(pilot, app)
        await pilot.press("alt+right_square_bracket")  # candidate 2: 'sum(values' -> 'args:\n    * turtle'
        assert app.review.choice == 1
        await pilot.press("w", "ctrl+right")  # its next word, then the next: 'args', ':'
        assert app.doc.text == with_spans(before, "args:) / len(values)", "text before it")
        await pilot.press("alt+left_square_bracket")  # candidate 1: its hunks over 'sum(values' clash, are gone
        assert app.review.choice == 0 and app.review.hunk_label() == "hunk 1/2"
        await pilot.press("y")  # ' / len(values' -> '\n    self. r'
        await pilot.press("enter")  # the rest of candidate 1: 'text before it' -> 'tardio callback'
        assert app.mode == "edit" and app.doc.spans == []
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert demo.read_bytes() == with_spans(before, "args:)\n    self. r)", "tardio callback").encode()
        assert await undo_count(pilot, app, before) == 4  # two words, a hunk, the rest


async def test_enter_after_a_drop_takes_only_the_hunks_left(demo):
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0)
    before = demo.read_text()
    async with app.run_test(size=SIZE) as pilot:
        await review(pilot, app)
        await pilot.press("right_square_bracket", "n", "enter")  # 'values' -> 'x' dropped, the rest taken
        assert app.mode == "edit" and app.doc.text == with_spans(before, "ValueError(values)\n    self. r)",
                                                                 "tardio callback")
        assert await undo_count(pilot, app, before) == 1


async def test_reject_every_hunk_leaves_the_file_as_it_was(demo):
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0)
    before = demo.read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await review(pilot, app)
        await pilot.press("n", "n", "n", "n", "n")
        assert app.review.hunk_label() == "no hunks left" and any("no hunk left" in n for n in notes(app))
        await pilot.press("escape", "ctrl+s")
        await pilot.pause()
        assert demo.read_bytes() == before


async def test_a_continuation_word_by_word(demo, tiny):
    await continuation_taken(demo, tiny, 1)


async def test_a_continuation_two_words(demo, tiny):
    await continuation_taken(demo, tiny, 2)


async def continuation_taken(demo, tiny, words: int) -> None:
    """A continuation marks its own insertion point: the first word taken and that mark are
    one undo step, each further word one more, and escape leaves nothing marked (the run's
    own mark goes with the last step taken, as after a whole accept)."""
    app = make_app(str(demo), lm=tiny, sampler=dict(steps=4, seed=1), candidates=1)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        at = before.index("Diffusion models")
        app.editor.move_cursor(app.doc.location_of(at))
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert app.mode == "review"
        new = app.review.current.texts[0]
        takes = []
        for _ in range(words):
            await pilot.press("w")
            takes.append(app.doc.text[at : len(app.doc.text) - (len(before) - at)])
        taken = takes[-1]
        assert taken and new.startswith(taken) and app.doc.text == before[:at] + taken + before[at:]
        assert len(app.doc.spans) == 1  # marked while the review goes on
        await pilot.press("escape")
        assert app.mode == "edit" and app.doc.text == before[:at] + taken + before[at:] and app.doc.spans == []
        for earlier in reversed(takes[:-1]):
            await pilot.press("ctrl+z")
            assert app.doc.text == before[:at] + earlier + before[at:]
        await pilot.press("ctrl+z")
        assert app.doc.text == before and app.doc.spans == []
