"""Where the model doubts and a refine in the editor, on the real bundled model: the lens,
the doubt threshold, a refine that redraws only the doubted tokens, reviewed hunk by hunk,
accepted as one undo step, repeated, saved."""

from __future__ import annotations

import re

import pytest
from textual import events

from dgterm.engine.tasks.refine import plan_refine
from dgterm.tui.app import make_app

from tests.helpers.tui import SIZE, notes, select, settle

pytestmark = pytest.mark.slow


def kept_pattern(plan) -> re.Pattern:
    """The span's new text: its kept pieces, byte for byte, around anything in the runs."""
    cuts = [plan.start] + [x for run in plan.runs for x in run] + [plan.end]
    kept = [plan.text[a:b] for a, b in zip(cuts[::2], cuts[1::2])]
    return re.compile("(.*?)".join(map(re.escape, kept)), re.S)


async def refine_once(pilot, app, span_text: str, ups: int) -> str:
    """Lens, threshold ``ups`` steps up to 0.5, refine the span at the cursor; the shown
    candidate's span text."""
    app.editor.move_cursor(app.doc.location_of(app.doc.text.index(span_text) + 2))
    await pilot.press("ctrl+l")
    await settle(app, pilot)
    assert app.editor.lens_active
    await pilot.press(*["alt+up"] * ups)  # 0.1 -> 0.2 -> 0.3 -> 0.5; the threshold stays for the next lens
    assert app.doubt_below == 0.5 and "Doubted (kept with p < 0.5)" in str(app.canvas.query_one("#canvas-stats").render())
    span = app.doc.spans[0]
    plan = plan_refine(app.lm, app.doc.text, span.start, span.end, 0.5, app.lens_scores)
    assert plan.renoised, "the bundled model doubts nothing here: pick another span"
    await pilot.press("alt+r")
    await settle(app, pilot)
    assert app.mode == "review" and app.job.kind == "refine" and app.job.span_ids == [span.id]
    for choice in app.review.choices:  # every candidate keeps every kept token and both sides
        assert kept_pattern(plan).fullmatch(choice.texts[0]), choice.texts[0]
    return app.review.current.texts[0]


async def test_refine_the_doubted_tokens_twice_then_save(demo, bundled):
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=6, seed=3), candidates=2)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        a, b = select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t")
        new = await refine_once(pilot, app, "sum(values) / len(values)", 3)
        await pilot.press("enter")  # one undo step; the span stays marked to be refined again
        assert app.doc.text == before[:a] + new + before[b:] and [(s.start, s.end) for s in app.doc.spans] == [
            (a, a + len(new))]
        newer = await refine_once(pilot, app, new, 0)
        await pilot.press("enter")
        assert app.doc.text == before[:a] + newer + before[b:]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert demo.read_bytes() == app.doc.text.encode()
        await pilot.press("ctrl+z")
        assert app.doc.text == before[:a] + new + before[b:]  # one undo per refine
        await pilot.press("ctrl+z")
        assert app.doc.text == before


async def test_refine_needs_a_span_or_a_selection(demo, bundled):
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=2, seed=3))
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        app.post_message(events.Key("alt+r", "r"))  # as a terminal sends it: with its character
        await pilot.pause()
        assert app.mode == "edit" and any("to refine it" in n for n in notes(app))
        assert app.doc.text == before  # not typed


async def test_nothing_under_the_threshold_is_a_notice_not_a_failure(demo, bundled):
    """The heading's "#" is one token the bundled model keeps with p >= 0.01: a refine at
    0.01 has nothing to draw, which the editor says plainly, leaving the document as it was."""
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=2, seed=3))
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        await pilot.press("ctrl+l")
        await settle(app, pilot)
        await pilot.press("alt+down", "alt+down", "alt+down")  # 0.1 -> 0.05 -> 0.02 -> 0.01
        assert app.doubt_below == 0.01
        select(app, "#")
        await pilot.press("alt+r")
        await settle(app, pilot)
        said = [n for n in app._notifications if "No token of the span is under the threshold 0.01" in n.message]
        assert said and said[-1].severity == "information" and said[-1].title != "Run failed"
        assert not any(n.severity == "error" for n in app._notifications)
        assert app.mode == "edit" and app.doc.text == before and not app.doc.spans
