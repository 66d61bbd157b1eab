"""The real bundled checkpoint end to end in the editor (seeded; structure, never exact text)."""

from __future__ import annotations

import pytest

from dgterm.tui.app import make_app

from tests.helpers.tui import SIZE, Recorder, select, settle

pytestmark = pytest.mark.slow


async def test_infill_on_the_bundled_model(demo, bundled):
    rec = Recorder()
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=6, seed=11), candidates=2)
    async with app.run_test(size=SIZE, message_hook=rec) as pilot:
        before = app.doc.text
        a, b = select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        assert app.mode == "review" and len(app.review.choices) == 2
        steps = [x for x in rec.seen if type(x).__name__ == "StepMessage"]
        assert 1 <= len(steps) <= 6 and len(app.review.frames) <= 6
        new = app.review.current.texts[0]
        await pilot.press("enter")
        assert app.doc.text == before[:a] + new + before[b:]
        await pilot.press("ctrl+s")
        assert demo.read_text() == app.doc.text


async def test_status_shows_the_loaded_model(demo):
    app = make_app(str(demo), sampler=dict(steps=2, seed=1))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        status = str(app.query_one("#status-model").render())
        assert app.lm is not None and "stdlib-7m" in status and "cpu" in status
        assert str(app.query_one("#status-state").render()).startswith("ready")


async def test_rewrite_and_lens_on_the_bundled_model(demo, bundled):
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=4, seed=5, max_new_tokens=32), candidates=1)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        select(app, "Limit x to the range")
        await pilot.press("ctrl+r", *"shorter", "enter")
        await settle(app, pilot)
        assert app.mode == "review"
        await pilot.press("escape")
        assert app.doc.text == before
        await pilot.press("ctrl+l")
        await settle(app, pilot)
        assert app.editor.lens_active and app.doc.text == before
