"""The editor under hostile conditions: quitting while the model loads, the journal failing
while typing, a huge single-line file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from dgterm.tui.app import make_app
from tests.helpers.tui import SIZE
from tests.helpers.tui import notes
from tests.helpers.tmux import Tmux

SLOW_LOAD = """
import sys, time
from dgterm.engine.local import loading
loading.load = lambda *a, **k: time.sleep(30)
from dgterm.cli import main
main(["open", sys.argv[1]])
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_ctrl_q_while_the_model_loads_quits_at_once(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW_LOAD)
    doc = tmp_path / "f.txt"
    doc.write_text("hello\n")
    tmux = Tmux(f"dgterm-h5-{os.getpid()}")
    tmux("new-session", "-d", "-s", "dg", "-x", "100", "-y", "30",
         f"{sys.executable} {script} {doc}; echo EXITED; sleep 30")
    try:
        tmux.wait_for("f.txt")
        time.sleep(0.5)
        t0 = time.monotonic()
        tmux.keys("C-q")
        tmux.wait_for("EXITED", timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        subprocess.run(tmux.base + ["kill-server"], capture_output=True)
    assert elapsed < 1.5, f"quit took {elapsed:.2f} s"  # 0.2 s polls; ~0.3 s measured on an idle machine



@pytest.mark.anyio
async def test_a_journal_that_fails_while_typing_says_so_once(tmp_path, monkeypatch):
    from dgterm.editor import journal

    path = tmp_path / "f.txt"
    path.write_text("hello\n")
    app = make_app(str(path), load=False)

    def refuse(self, header):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal.Journal, "start", refuse)
    async with app.run_test(size=SIZE) as pilot:
        assert not any("journal" in n for n in notes(app))
        await pilot.press(*"abc")
        await pilot.pause()
        found = [n for n in notes(app) if "recovery journal" in n]
        assert len(found) == 1 and "No space left on device" in found[0]
        assert app.doc.text.startswith("abc")


@pytest.mark.anyio
async def test_a_line_too_long_to_edit_is_one_sentence_and_the_file_is_kept(tmp_path):
    from dgterm.tui.app import LONGEST_LINE

    path = tmp_path / "one-line.log"
    line = b"ab cd " * (LONGEST_LINE // 6 + 1)
    data = line + b"\nshort\n"
    path.write_bytes(data)
    app = make_app(str(path), load=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        (note,) = [n for n in notes(app) if "characters" in n]
        assert f"a line of {len(line):,} characters" in note and "dgterm infill" in note
        assert app.doc.path is None and app.doc.text == ""
    assert path.read_bytes() == data
