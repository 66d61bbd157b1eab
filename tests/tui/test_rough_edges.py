"""Rough edges a new user hit (issue 16), each driven through the real app."""

from __future__ import annotations

from dgterm.tui.app import make_app
from dgterm.tui.screens.prompt import PromptScreen

from .conftest import FAST, SIZE, select, settle


def app_for(path, lm, **kw):
    kw.setdefault("sampler", FAST)
    return make_app(str(path), lm=lm, **kw)


def panel_text(app) -> str:
    return " ".join(str(app.canvas.query_one(f"#canvas-{part}").render()) for part in ("stats", "tokens", "choices"))


async def test_document_start_end_and_go_to_line(demo, tiny):
    app = app_for(demo, tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+end")
        assert app.editor.cursor_location == app.editor.document.end
        await pilot.press("ctrl+home")
        assert app.editor.cursor_location == (0, 0)
        await pilot.press("alt+g")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("1", "1", "enter")
        assert app.editor.cursor_location == (10, 0)
        await pilot.press("alt+g", "x", "enter")
        await pilot.pause()
        assert app.editor.cursor_location == (10, 0)
        assert any("'x' is not a line number" in n.message for n in app._notifications)
        await pilot.press("alt+g", "9", "9", "9", "9", "enter")
        assert app.editor.cursor_location[0] == app.editor.document.line_count - 1


async def test_the_canvas_panel_forgets_a_run_that_was_rejected_or_undone(demo, tiny):
    app = app_for(demo, tiny, candidates=2)
    async with app.run_test(size=SIZE) as pilot:
        select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        assert "(draft " in str(app.query_one("#status-state").render())  # which row of the run is shown
        assert "window" in panel_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert "No run shown." in panel_text(app) and "window" not in panel_text(app)
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        await pilot.press("enter", "ctrl+z")
        await pilot.pause()
        assert "No run shown." in panel_text(app) and "window" not in panel_text(app)
