"""What the terminal shows for the awkward cases: wide characters, very long lines and a
terminal resized in the middle of a run."""

from __future__ import annotations

import asyncio
import random

from dgterm.tui.app import make_app
from dgterm.tui.widgets import editor

from tests.helpers.tui import FAST, SIZE, TRACE, painted, select, settle

WIDE = "# 東京 notes 🎉\n\n名前 = '東京タワー'  # 展望台\nprint(名前)  # ｆｕｌｌ width\n"


def row_text(app, y: int) -> str:
    return "".join(seg.text for seg in app.editor.render_line(y))


async def shows_a_full_repaint(app, pilot) -> bool:
    """Whether the screen is what repainting every row of the editor from scratch draws."""
    await pilot.pause()
    shown = app.export_screenshot()
    app.editor.notify_style_update()
    app.editor.refresh()
    await pilot.pause()
    return app.export_screenshot() == shown


def underlined(app, y: int) -> str:
    """The cells of row ``y`` drawn as a masked span."""
    return "".join(seg.text for seg in app.editor.render_line(y) if seg.style and seg.style.underline)


async def test_wide_characters_are_masked_painted_and_rewritten_cell_exact(tmp_path, tiny):
    path = tmp_path / "wide.py"
    path.write_bytes(WIDE.encode("utf-8"))
    app = make_app(str(path), lm=tiny, sampler=FAST, candidates=1)
    async with app.run_test(size=SIZE) as pilot:
        a, b = select(app, "東京タワー")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert "名前 = '東京タワー'  # 展望台" in row_text(app, 2)
        assert underlined(app, 2) == "東京タワー"
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        draft = app.review.current.texts[0]
        await pilot.press("enter", "ctrl+s")
        await pilot.pause()
    assert path.read_bytes() == (WIDE[:a] + draft + WIDE[b:]).encode("utf-8")


async def test_a_very_long_line_scrolls_to_its_end_in_code_and_wraps_in_prose(tmp_path):
    line = "s = '" + "".join(f"w{i} " for i in range(4000)) + "'"
    code = tmp_path / "long.py"
    code.write_text(f"x = 1\n{line}\ny = 2\n", encoding="utf-8")
    app = make_app(str(code), load=False)
    async with app.run_test(size=SIZE) as pilot:
        assert row_text(app, 1).lstrip(" 0123456789│▎").startswith("s = 'w0 w1 ")
        app.editor.move_cursor((1, 0))
        await pilot.press("end")
        await pilot.pause()
        assert "w3999 '" in row_text(app, 1)
        assert "y = 2" not in row_text(app, 1)
    prose = tmp_path / "long.md"
    prose.write_text(f"x = 1\n{line}\ny = 2\n", encoding="utf-8")
    app = make_app(str(prose), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        width = app.editor.wrap_width
        assert app.editor.wrapped_document.height >= 2 + len(line) // width
        assert "w0 w1 " in row_text(app, 1) and "w0 w1 " not in row_text(app, 2)


async def test_resizing_mid_run_keeps_the_draft_and_rejecting_restores_the_file(demo):
    before = demo.read_bytes()
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0, replay_until=5)
    async with app.run_test(size=SIZE) as pilot:
        await painted(app, 5)
        assert await shows_a_full_repaint(app, pilot)
        draft = app.editor.text
        for size in ((70, 20), (44, 12), SIZE):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            assert await shows_a_full_repaint(app, pilot)
            assert app.size == size and app.editor.text == draft and app.mode == "running"
            assert app.editor.size.width >= size[0] // 2  # the canvas panel gives way to the text
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.mode == "edit" and app.editor.text == app.doc.text
    assert demo.read_bytes() == before


async def test_an_edited_theme_file_applies_live_and_a_broken_one_is_one_message(demo, tmp_path):
    import os
    from pathlib import Path

    from dgterm.config import Settings
    from dgterm.tui.themes import palette_of

    folder = Path(os.environ["DGTERM_CONFIG"]).parent / "themes"
    folder.mkdir(parents=True, exist_ok=True)
    light = (Path(__file__).parents[2] / "themes" / "dgterm-light.toml").read_text(encoding="utf-8")
    mine = folder / "mine.toml"
    mine.write_text(light.replace('name = "dgterm-light"', 'name = "mine"'), encoding="utf-8")
    app = make_app(str(demo), load=False, settings=Settings(theme="mine"))
    async with app.run_test(size=SIZE) as pilot:
        select(app, "sum(values)")
        await pilot.press("ctrl+t")
        app.editor.move_cursor((0, 0))  # no selection drawn over the span
        await pilot.pause()
        assert palette_of(app.current_theme).color("span").hex == "#DBE7FF"
        mine.write_text(light.replace('name = "dgterm-light"', 'name = "mine"').replace('span = "#dbe7ff"',
                                                                                         'span = "#123456"'),
                        encoding="utf-8")
        os.utime(mine, ns=(0, 1))  # a new stamp even within the file system's time resolution
        app.check_themes()
        await pilot.pause()
        assert palette_of(app.current_theme).color("span").hex == "#123456"
        row = next(y for y in range(SIZE[1]) if "sum(values)" in "".join(s.text for s in app.editor.render_line(y)))
        styles = [s.style for s in app.editor.render_line(row) if s.style and s.style.underline]
        assert styles and all(s.bgcolor.triplet.hex == "#123456" for s in styles)
        mine.write_text("name = 'mine'\nprimary = 'not a colour'\n", encoding="utf-8")
        app.check_themes()
        await pilot.pause()
        assert app.theme == "mine" and palette_of(app.current_theme).color("span").hex == "#123456"
        assert any("mine.toml has a bad colour" in n.message for n in app._notifications)


async def test_syntax_colours_stay_on_their_words_around_a_live_draft(demo):
    """A draft with more lines than its span shifts the text below it; the keywords there
    keep their colour at once, not only after the highlighter's debounce."""
    from dgterm.engine.output.frames import DraftToken
    from dgterm.tui.themes import palette_of

    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        a, b = select(app, "sum(values) / len(values)")
        span = app.doc.add_span(a, b)
        await asyncio.sleep(0.3)
        editor, keyword = app.editor, palette_of(app.current_theme).syntax_style("keyword")
        for draft in (["x", "\n\n", "  y"], ["z"], ["1\n2\n3\n4"]):
            editor.show_preview({span.id: [DraftToken(t, "tentative", 1.0) for t in draft]})
            for wait in (0.0, 0.3):  # at once, and past the highlighter's debounce
                await asyncio.sleep(wait)
                checked = 0
                for y, line in enumerate(editor.text.split("\n")):
                    words = line.split()
                    if words and words[0] in ("def", "return", "if", "raise"):
                        text = editor.get_line(y)
                        coloured = [text.plain[s.start:s.end] for s in text.spans if s.style == keyword]
                        assert words[0] in coloured, (draft, line, coloured)
                        assert all(w in ("def", "return", "if", "not", "raise") for w in coloured), (line, coloured)
                        checked += 1
                assert checked >= 6
        editor.sync_from_doc()
        await pilot.pause()
        assert editor.text == app.doc.text


KEYS = ["up", "down", "left", "right", "home", "end", "pageup", "pagedown", "shift+down", "shift+right",
        "shift+up", "ctrl+t", "x", "enter", "backspace", "ctrl+z", "(", ")"]


async def test_partial_repaints_show_what_a_full_repaint_shows(demo, tmp_path, monkeypatch):
    """The editor repaints only the rows a cursor move touches and caches rows by what they
    show; after any sequence of keys the screen is what a full repaint draws."""
    monkeypatch.setattr(editor, "SYNTAX_DELAY", 0.01)
    code = tmp_path / "brackets.py"
    code.write_text("items = [\n    (1, 2),\n]\n" + "def f(a, b):\n    return [a, (b + 1)]\n" * 8
                    + "x = {'k': (1, 2)}  # " + "long " * 30 + "\n")
    rng = random.Random(7)
    along_and_onto_a_bracket = ["right", "right", "end", "left", "down", "down", "up"]  # "[" spans lines
    for path, keys in ((demo, []), (code, along_and_onto_a_bracket)):
        app = make_app(str(path), load=False)
        async with app.run_test(size=(64, 16)) as pilot:
            app.editor.cursor_blink = False
            for key in keys + [rng.choice(KEYS) for _ in range(30)]:
                await pilot.press(key)
                await pilot.pause(0.05)  # the syntax colours follow an edit
                assert await shows_a_full_repaint(app, pilot), key


async def test_the_cursor_line_keeps_its_syntax_colours(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\nif not x:\n    pass\n")
    app = make_app(str(path), load=False)
    async with app.run_test(size=(64, 16)) as pilot:
        colours = []
        for cursor in ((0, 0), (1, 4)):  # off the line, then on it (not on the keywords)
            app.editor.move_cursor(cursor)
            await pilot.pause()
            colours.append({seg.text: seg.style.color for seg in app.editor.render_line(1)})
        assert colours[0]["if"] == colours[1]["if"] != colours[1][" "]
