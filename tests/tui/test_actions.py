"""Pilot tests for every editor action, against the tiny model (fast, seeded)."""

from __future__ import annotations

import copy
import dataclasses
import time


from dgterm.tui import messages as m
from dgterm.tui.actions.model import STEP_PAINT_INTERVAL
from dgterm.tui.app import make_app
from dgterm.tui.screens.confirm import ConfirmScreen
from dgterm.tui.screens.help import HelpScreen
from dgterm.tui.screens.prompt import PromptScreen
from dgterm.tui.widgets.canvas import CanvasPanel

from tests.helpers.tui import FAST, SIZE, TRACE, Recorder, painted, select, settle


def app_for(path, lm, **kw):
    kw.setdefault("sampler", FAST)
    kw.setdefault("candidates", 2)
    return make_app(str(path), lm=lm, **kw)


async def test_mask_unmask_insertion_and_clear(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        a, b = select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t")
        assert [(s.start, s.end) for s in app.doc.spans] == [(a, b)]
        app.editor.move_cursor(app.doc.location_of(a + 3))
        await pilot.press("ctrl+t")  # cursor in a span: unmask it
        assert app.doc.spans == []
        app.editor.move_cursor(app.doc.location_of(a))
        await pilot.press("ctrl+t")  # no selection: an insertion point
        assert [(s.start, s.end) for s in app.doc.spans] == [(a, a)]
        select(app, "text before it")
        await pilot.press("ctrl+t")
        assert len(app.doc.spans) == 2
        await pilot.press("f2")
        assert app.doc.spans == [] and app.editor.text == app.doc.text
        await pilot.press("ctrl+z")  # unmask-all is undoable
        assert len(app.doc.spans) == 2
        await pilot.pause()
        assert "2 masked spans" in str(app.query_one("#status-state").render())
        assert "budget" in str(app.canvas.query_one("#canvas-spans").render())


async def test_grow_and_shrink_target_length(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        select(app, "len(values)")
        await pilot.press("ctrl+t")
        n = app.token_count(app.doc.spans[0])
        await pilot.press("ctrl+up")
        assert app.doc.spans[0].target_tokens == n + 4
        await pilot.press("f8", "f8")
        assert app.doc.spans[0].target_tokens == max(1, n - 4)
        assert "budget" in str(app.canvas.query_one("#canvas-spans").render())


async def test_an_insertion_point_among_several_spans_resizes(demo, tiny):
    """An insertion point is an empty span: the cursor on it picks it out of several."""
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        select(app, "len(values)")
        await pilot.press("ctrl+t")
        app.editor.move_cursor((0, 0))
        await pilot.press("ctrl+t", "f8")
        point = next(s for s in app.doc.spans if s.start == s.end == 0)
        assert point.target_tokens == 16 - 4 and len(app.doc.spans) == 2


async def test_step_paints_are_spaced_and_end_on_the_newest(demo, monkeypatch):
    paints = []
    show = CanvasPanel.show_frame

    def timed(self, frame, *args, **kwargs):
        paints.append((time.monotonic(), frame))
        show(self, frame, *args, **kwargs)

    monkeypatch.setattr(CanvasPanel, "show_frame", timed)
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0, replay_until=8)
    async with app.run_test(size=SIZE) as pilot:
        await painted(app, 8)
        assert paints[-1][1] is app.job.frames[-1]
        gaps = [b[0] - a[0] for a, b in zip(paints, paints[1:])]
        assert all(gap >= STEP_PAINT_INTERVAL * 0.9 for gap in gaps)
        await pilot.press("escape")


async def test_out_of_memory_is_one_message_and_the_editor_goes_on(demo, tiny):
    import torch

    real, calls = tiny.model.forward, []

    def once_out_of_memory(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the encoder ran; the first decoder forward runs out of memory
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    tiny.model.forward = once_out_of_memory
    rec = Recorder()
    app = app_for(demo, tiny)
    try:
        async with app.run_test(size=SIZE, message_hook=rec) as pilot:
            before = app.doc.text
            select(app, "sum(values) / len(values)")
            await pilot.press("ctrl+t", "ctrl+g")
            await settle(app, pilot)
            failed = [x for x in rec.seen if isinstance(x, m.RunFailed)]
            assert len(failed) == 1 and failed[0].reason.startswith("Out of memory on the device during the run; "
                                                                   "nothing was changed — try fewer candidates")
            assert app.mode == "edit" and app.doc.text == before == app.editor.text and not app.editor.read_only
            await pilot.press("ctrl+g")  # the session goes on: the next run works
            await settle(app, pilot)
            assert app.mode == "review"
    finally:
        del tiny.model.forward


async def test_infill_live_then_accept_is_one_undo_step(demo, tiny):
    rec = Recorder()
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE, message_hook=rec) as pilot:
        before = app.doc.text
        a, b = select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t")
        c, d = select(app, "text before it")
        await pilot.press("ctrl+t", "ctrl+g")
        # The tiny model may already be done on an idle machine.
        assert (app.mode == "running" and app.editor.read_only) or app.mode == "review"
        await settle(app, pilot)
        assert app.mode == "review"
        assert rec.kinds()[-4:] == ["RunStarted", "StepMessage", "RunFinished", "ReviewReady"]
        assert app.doc.text == before  # nothing changes before accepting
        shown = app.review.current.texts
        assert len(app.review.choices) == 2 and len(shown) == 2
        await pilot.press("enter")
        assert app.mode == "edit" and app.doc.text == before[:a] + shown[0] + before[b:c] + shown[1] + before[d:]
        assert app.editor.text == app.doc.text and app.doc.dirty
        await pilot.press("ctrl+z")
        assert app.doc.text == before and len(app.doc.spans) == 2
        assert app.editor.text == before


async def test_reject_candidates_and_timeline(demo, tiny):
    app = app_for(demo, tiny, candidates=3)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        rv = app.review
        assert len(rv.choices) == 3 and [c.score for c in rv.choices] == sorted((c.score for c in rv.choices),
                                                                                 reverse=True)
        first = app.editor.text
        await pilot.press("tab")
        assert rv.choice == 1
        await pilot.press("shift+tab", "tab", "tab", "tab")
        assert rv.choice == 0 and app.editor.text == first
        await pilot.press("left")
        assert rv.step == len(rv.frames) - 1 and "step" in rv.position_label()
        await pilot.press("left", "left", "right")
        assert rv.step == len(rv.frames) - 2 or rv.step == 0
        for _ in range(len(rv.frames) + 1):
            await pilot.press("right")
        assert rv.step is None and app.editor.text == first
        await pilot.press("x")
        await pilot.pause()
        assert app.doc.text == before and any("read-only while a run is shown" in n.message
                                               for n in app._notifications)
        await pilot.press("ctrl+q")  # quitting would drop the candidates: it asks first
        assert isinstance(app.screen, ConfirmScreen) and app.screen.focused.id == "choice-cancel"
        await pilot.press("enter")
        assert app.mode == "review" and app.is_running
        await pilot.press("escape")
        assert app.mode == "edit" and app.doc.text == before == app.editor.text
        assert not app.doc.dirty
        assert str(app.canvas.query_one("#canvas-choices").render()).strip() == ""  # no stale candidates


async def test_escape_cancels_within_a_step(demo, tiny):
    rec = Recorder()
    app = app_for(demo, tiny, sampler=dict(steps=4000, seed=2, confidence=1e-9))
    async with app.run_test(size=SIZE, message_hook=rec) as pilot:
        before = app.doc.text
        select(app, "whole gap")
        await pilot.press("ctrl+t", "ctrl+g")
        await rec.wait(m.StepMessage)
        job = app.job
        await pilot.press("escape")
        assert app.mode == "edit" and app.doc.text == before == app.editor.text
        n = len(job.frames)
        await settle(app, pilot)
        assert len(job.frames) <= n + 1 < 4000, (n, len(job.frames))  # stopped before the next decoder forward
        assert app.doc.spans and not app.doc.dirty


async def test_length_search_offers_ranked_lengths(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t", "ctrl+o")
        await settle(app, pilot)
        rv = app.review
        assert len({c.lengths[0] for c in rv.choices}) == len(rv.choices) >= 2
        assert [c.score for c in rv.choices] == sorted((c.score for c in rv.choices), reverse=True)
        await pilot.press("tab", "enter")
        assert app.mode == "edit" and app.doc.dirty


async def test_continue_after_cursor(demo, tiny):
    app = app_for(demo, tiny, candidates=1)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        at = before.index("## ") if "## " in before else before.index("\n\nDiffusion")
        app.editor.move_cursor(app.doc.location_of(at))
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        added = app.review.current.texts[0]
        await pilot.press("enter")
        assert app.doc.text == before[:at] + added + before[at:]
        assert app.doc.spans == []
        await pilot.press("ctrl+z")
        assert app.doc.text == before and app.doc.spans == []


async def test_continue_rejected_leaves_no_mark(demo, tiny):
    app = app_for(demo, tiny, candidates=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        await pilot.press("escape")
        assert app.doc.spans == [] and not app.doc.dirty


async def test_rewrite_asks_for_an_instruction(demo, tiny):
    app = app_for(demo, tiny, candidates=1)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        a, b = select(app, "Limit x to the range")
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"shorter", "enter")
        assert app.mode in ("running", "review")
        await settle(app, pilot)
        assert app.mode == "review"
        answer = app.review.current.texts[0]
        await pilot.press("enter")
        assert app.doc.text == before[:a] + answer + before[b:]
        await pilot.press("ctrl+z")
        assert app.doc.text == before and app.doc.spans == []


async def test_rewrite_explains_why_unavailable(demo, tiny):
    plain = dataclasses.replace(tiny, tokenizer=copy.copy(tiny.tokenizer))
    plain.tokenizer.chat_template = None
    app = app_for(demo, plain)
    async with app.run_test(size=SIZE) as pilot:
        select(app, "Limit x")
        await pilot.press("ctrl+r")
        assert app.mode == "edit" and not isinstance(app.screen, PromptScreen)
        assert any("no chat template" in n.message for n in app._notifications)


async def test_infill_without_spans_explains(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+g")
        assert app.mode == "edit"
        assert any("No masked spans" in n.message for n in app._notifications)


async def test_lens_tints_and_never_edits(demo, tiny):
    rec = Recorder()
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE, message_hook=rec) as pilot:
        before = app.doc.text
        await pilot.press("ctrl+l")
        assert app.mode == "lens" or app.editor.lens_active
        await settle(app, pilot)
        assert app.mode == "edit" and app.editor.lens_active
        scores = [x for x in rec.seen if isinstance(x, m.LensReady)][0].scores
        assert scores and all(0.0 <= t.prob <= 1.0 for t in scores)
        assert app.doc.text == before and not app.doc.dirty
        await pilot.press("escape")
        assert not app.editor.lens_active


def draft_texts(frames) -> list:
    """The text of every draft token of every frame: [frame][row][span][token]."""
    return [[[[t.text for t in span] for span in row] for row in f.drafts] for f in frames]


async def test_trace_then_replay(demo, tiny, tmp_path):
    trace = tmp_path / "run.trace"
    app = app_for(demo, tiny, trace=str(trace))
    async with app.run_test(size=SIZE) as pilot:
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        live = [c.texts for c in app.review.choices]
        shown = draft_texts(app.review.frames)
        await pilot.press("escape")
    replay = make_app(str(demo), load=False, replay=str(trace), replay_delay=0)
    async with replay.run_test(size=SIZE) as pilot:
        await settle(replay, pilot)
        assert replay.mode == "review" and replay.lm is None
        assert [c.texts for c in replay.review.choices] == live
        # every step's draft as it was painted live, a character split over tokens included
        assert draft_texts(replay.review.frames) == shown
        await pilot.press("enter")
        assert "arithmetic mean" not in replay.doc.text or live[0][0] == "arithmetic mean"


async def test_help_palette_canvas_theme_wrap(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+b")
        assert not app.canvas.display or app.canvas.has_class("-hidden")
        await pilot.press("ctrl+b")
        assert not app.canvas.has_class("-hidden")
        theme = app.theme
        await pilot.press("f4")
        assert app.theme != theme and app.theme.startswith("dgterm")
        wrap = app.editor.soft_wrap
        await pilot.press("f3")
        assert app.editor.soft_wrap != wrap
        await pilot.press("ctrl+p")
        await pilot.press(*"unmask all")
        await pilot.pause()
        assert "Unmask all" in str(app.screen.query("CommandList").first().get_option_at_index(0).prompt)
        app.screen.query_one("CommandInput").value = "next theme"
        await pilot.pause(0.3)
        prompt = str(app.screen.query("CommandList").first().get_option_at_index(0).prompt)
        assert "Next theme  [f4]" in prompt  # the keys show, not read as a markup tag
        app.screen.query_one("CommandInput").value = "quit"
        await pilot.pause(0.3)
        options = app.screen.query("CommandList").first()  # one Quit: the editor's, which asks first
        assert options.option_count == 1 and str(options.get_option_at_index(0).prompt).startswith("Quit  [ctrl+q]")


async def test_keymap_override_from_config(demo, tiny):
    from dgterm.config import Settings

    app = app_for(demo, tiny, settings=Settings(keymap={"dgterm.mask": "f11", "dgterm.nope": "f2"}))
    async with app.run_test(size=SIZE) as pilot:
        select(app, "mean")
        await pilot.press("f11")
        assert len(app.doc.spans) == 1
        assert any("dgterm.nope" in n.message for n in app._notifications)


async def test_typing_goes_through_the_document(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        select(app, "mean")
        await pilot.press("ctrl+t")
        app.editor.move_cursor((0, 0))
        await pilot.press(*"Hi ", "enter", "backspace")
        assert app.doc.text.startswith("Hi # A tour") and app.editor.text == app.doc.text
        assert app.doc.spans[0].start == app.doc.text.index("mean")  # spans follow edits
        await pilot.press("ctrl+z")
        assert app.editor.text == app.doc.text
