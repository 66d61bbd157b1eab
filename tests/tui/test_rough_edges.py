"""Rough edges a new user hit (issue 16), driven through the real app."""

from __future__ import annotations

from dgterm.tui.app import make_app

from .conftest import SIZE


async def test_keys_of_one_burst_apply_in_order():
    from textual import events

    from dgterm.editor import Document

    app = make_app(doc=Document.from_text("line one\nline two\nline three\n"), load=False)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.move_cursor((2, 0))
        await pilot.pause()
        for key, char in (("up", None), ("q", "q"), ("end", None), ("shift+left", None), ("x", "x")):
            app._driver.process_message(events.Key(key, char))  # one read from the terminal: no wait between keys
        await pilot.pause()
        await pilot.pause()
        assert app.editor.text == "line one\nqline twx\nline three\n"
