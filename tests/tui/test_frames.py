"""Frames (what the UI paints) from step records: the live path equals the engine's drafts."""

from __future__ import annotations

from dgterm.engine.output.frames import DraftToken, Frame, FrameBuilder, Layout, display_text, step_record
from dgterm.tui.review import Review
from dgterm.engine.output.tokens import token_text
from dgterm.tui.job import Job
from dgterm.tui.background import make_task


def test_frames_match_engine_drafts(tiny):
    text = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"
    a = text.index("a + b")
    job = Job("infill", text, [(a, a + 5, None), (len(text) - 3, len(text) - 2, 3)], [1, 2],
              params=tiny.defaults.replace(seed=3, steps=5), candidates=2)
    task = make_task(tiny, job)
    build = FrameBuilder(task.layout, token_text(tiny.tokenizer))
    n = 0
    for event in task:
        frame = build(step_record(event))
        for row in range(2):
            want = task.drafts(event, row)
            got = frame.drafts[row]
            assert [[(t.text, t.state) for t in span] for span in got] == \
                   [[(t.text, t.state) for t in span] for span in want]
        assert len(frame.canvas[0]) == tiny.canvas_length
        n += 1
    assert n >= 1 and task.result.candidates


def test_stream_frames_concatenate_windows(tiny):
    job = Job("continue", "Once upon", [(9, 9, None)], [1], params=tiny.defaults.replace(seed=1, steps=3))
    task = make_task(tiny, job)
    build = FrameBuilder(task.layout, token_text(tiny.tokenizer))
    frames = [build(step_record(e)) for e in task]
    windows = {f.window for f in frames}
    last = frames[-1]
    assert len(last.drafts[0][0]) == tiny.canvas_length * len(windows)


def test_layout_json_round_trip():
    layout = Layout("spans", 16, 2, [[[(0, 1), (0, 2)], [(1, 0)]]])
    assert Layout.from_json(layout.to_json()) == layout


def test_noise_shows_on_one_line():
    assert display_text(DraftToken("a\nb\t", "noise", 5.0)) == "a↵b→"
    assert display_text(DraftToken("a\nb", "accepted", 0.0)) == "a\nb"


def _frame(i):
    tok = DraftToken(f"s{i}", "tentative", 0.5)
    return Frame(0, i + 1, 3, 0.1, 0, [[[tok]], [[tok]]], [[tok], [tok]], [1, 1], [0.5, 0.5], [False, False])


def test_review_scrub_and_candidates():
    from dgterm.engine.output.frames import Choice

    job = Job("infill", "x", [(0, 1, None)], [7])
    rv = Review(job, Layout("spans", 16, 2), [_frame(i) for i in range(3)],
                [Choice(["A"], 0.1, [1], 1), Choice(["B"], 0.2, [1], 0)])
    assert rv.drafts() == {7: [DraftToken("x", "deleted-here", 0.0), DraftToken("A", "inserted-here", 0.0)]}
    assert rv.row == 1
    rv.scrub(-1)
    assert rv.step == 2 and rv.drafts()[7][0].text == "s2"
    rv.scrub(-10)
    assert rv.step == 0
    rv.scrub(10)
    assert rv.step is None
    rv.next_choice()
    assert rv.current.texts == ["B"] and rv.row == 0
    rv.next_choice()
    assert rv.choice == 0
