"""Files through the Document core: save, save as, quit, recovery, changes on disk, bad input."""

from __future__ import annotations

import os

from dgterm.config import Settings
from dgterm.tui.app import make_app
from dgterm.tui.screens.confirm import ConfirmScreen
from dgterm.tui.screens.prompt import PromptScreen

from tests.helpers.tui import notes, SIZE, settle


async def test_save_and_save_as(demo, tmp_path):
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.move_cursor((0, 0))
        await pilot.press(*"X", "ctrl+s")
        assert demo.read_text().startswith("X# A tour") and not app.doc.dirty
        await pilot.press("f12")
        assert isinstance(app.screen, PromptScreen)
        other = tmp_path / "copy.md"
        app.screen.query_one("Input").value = str(other)
        await pilot.press("enter")
        assert other.read_text() == demo.read_text() and app.doc.path == str(other)


async def test_scratch_buffer_saves_as(tmp_path):
    app = make_app(None, load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"hello", "ctrl+s")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("Input").value = str(tmp_path / "new.txt")
        await pilot.press("enter")
        assert (tmp_path / "new.txt").read_text() == "hello"


async def test_quit_with_unsaved_changes_asks(demo):
    original = demo.read_text()
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"abc", "ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # cancel: keep editing
        assert app.is_running and app.doc.dirty
        await pilot.press("ctrl+q")
        await pilot.click("#choice-discard")
        await pilot.pause()
    assert demo.read_text() == original and app.return_code in (0, None)


async def test_quit_and_save(demo):
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"abc", "ctrl+q")
        await pilot.click("#choice-save")
        await pilot.pause()
    assert demo.read_text().startswith("abc")


async def test_recovery_after_a_crash(demo):
    crashed = make_app(str(demo), load=False)
    async with crashed.run_test(size=SIZE) as pilot:
        await pilot.press(*"unsaved words ")
        # the process dies: no quit, the journal stays behind
        crashed.doc._journal.close()
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#choice-recover")
        await pilot.pause()
        assert app.doc.text.startswith("unsaved words ") and app.editor.text == app.doc.text
        assert not demo.read_text().startswith("unsaved")


async def test_changed_on_disk_is_detected(demo):
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        demo.write_text("new text from elsewhere\n")
        os.utime(demo, ns=(1, 1))
        app.check_disk()
        await pilot.pause()
        assert app.doc.text == "new text from elsewhere\n" == app.editor.text  # clean: follows the file
        await pilot.press(*"mine ")
        demo.write_text("third version\n")
        app.check_disk()
        assert any("changed on disk" in n for n in notes(app)) and app.doc.text.startswith("mine")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.focused.id == "choice-cancel"  # enter does not overwrite their version
        await pilot.click("#choice-overwrite")
        await pilot.pause()
        assert demo.read_text().startswith("mine")


async def test_binary_file_opens_nothing_and_writes_nothing(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 4
    path.write_bytes(data)
    app = make_app(str(path), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        msgs = notes(app)
        assert len(msgs) == 1 and "binary" in msgs[0].lower()
        await pilot.press(*"still works")
        assert app.editor.text == "still works" and app.doc.path is None
    assert path.read_bytes() == data


async def test_directory_is_refused_clearly(tmp_path):
    app = make_app(str(tmp_path), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        msgs = notes(app)
        assert len(msgs) == 1 and ("folder" in msgs[0].lower() or "directory" in msgs[0].lower())
        await pilot.press(*"ok")
        assert app.editor.text == "ok"
    assert os.listdir(tmp_path) == []


async def test_missing_model_path(demo, tmp_path):
    app = make_app(str(demo), settings=Settings(model=str(tmp_path / "nope")))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        msgs = notes(app)
        assert len(msgs) == 1 and "does not exist" in msgs[0]
        assert app.lm is None and app.model_error
        await pilot.press(*"typing works ")
        assert app.doc.text.startswith("typing works")
        await pilot.press("ctrl+g")
        assert app.mode == "edit"
    assert not demo.read_text().startswith("typing")


async def test_model_that_fails_to_load(demo, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "diffusion_gemma"}')
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    app = make_app(str(demo), settings=Settings(model=str(broken)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        msgs = notes(app)
        assert len(msgs) == 1 and app.lm is None
        assert "model unavailable" in str(app.query_one("#status-state").render())
        await pilot.press(*"x")
        assert app.doc.text.startswith("x")


async def test_bad_replay_file(demo, tmp_path):
    bad = tmp_path / "bad.trace"
    bad.write_text("not json\n")
    app = make_app(str(demo), load=False, replay=str(bad))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert len(notes(app)) == 1 and app.mode == "edit"


async def test_a_trace_recorded_on_other_text_leaves_the_file_alone(tmp_path):
    from tests.helpers.tui import TRACE

    path = tmp_path / "other.md"
    path.write_bytes(b"other text\r\n")
    app = make_app(str(path), load=False, replay=str(TRACE), replay_delay=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.mode == "edit" and app.doc.text == "other text\n" and not app.doc.dirty
        assert any("not the text this trace was recorded on" in n for n in notes(app))
        await pilot.press("ctrl+s")
    assert path.read_bytes() == b"other text\r\n"


async def test_names_with_brackets_are_shown_as_they_are(tmp_path):
    """File names and messages are text, not markup: ``[/]`` once crashed the editor."""
    folder = tmp_path / "d["
    folder.mkdir()
    path = folder / "]g[bold].md"
    path.write_text("ok\n")
    app = make_app(str(path), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x", "ctrl+s")
        await pilot.pause()
        assert path.read_text() == "xok\n"
        assert str(app.query_one("#status-file").render()).startswith("]g[bold].md")
        assert any(f"{path}" in n for n in notes(app))
    scratch = make_app(None, load=False)
    async with scratch.run_test(size=SIZE) as pilot:
        await pilot.press("x", "ctrl+q")
        assert isinstance(scratch.screen, ConfirmScreen)
        assert "Save the changes to [scratch] before quitting?" in str(scratch.screen.query_one("Static").render())


async def test_read_only_file_asks_before_saving_over_it(demo):
    demo.chmod(0o444)
    original = demo.read_text()
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.move_cursor((0, 0))
        await pilot.press(*"X", "ctrl+s")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.focused.id == "choice-cancel"
        await pilot.press("enter")
        await pilot.pause()
        assert demo.read_text() == original and app.doc.dirty
        await pilot.press("ctrl+s")
        await pilot.click("#choice-write")
        await pilot.pause()
        assert demo.read_text() == "X" + original and not app.doc.dirty


async def test_undoing_reload_theirs_asks_again(demo):
    app = make_app(str(demo), load=False)
    async with app.run_test(size=SIZE) as pilot:
        app.editor.move_cursor((0, 0))
        await pilot.press(*"mine ")
        demo.write_text("their line\n")
        await pilot.press("ctrl+s")
        await pilot.click("#choice-reload")
        await pilot.pause()
        assert app.doc.text == "their line\n"
        await pilot.press("ctrl+z", "ctrl+s")
        await pilot.pause()
        assert app.doc.text.startswith("mine ") and isinstance(app.screen, ConfirmScreen)
        assert demo.read_text() == "their line\n"
