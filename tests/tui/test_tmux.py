"""End to end in a real terminal: `dgterm FILE` in tmux, keys sent, the pane read back,
the rewritten span checked on screen and in the saved file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.tmux import Tmux
from tests.helpers.tui import DEMO

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]
DGTERM = Path(sys.executable).with_name("dgterm")
SPAN = "sum(values) / len(values)"


def test_rewrite_a_span_in_tmux(tmp_path):
    doc = tmp_path / "demo.md"
    shutil.copy(DEMO, doc)
    original = doc.read_text()
    tmux = Tmux(f"dgterm-test-{os.getpid()}")
    cmd = f"{DGTERM} {doc} --steps 4 --seed 3 --candidates 1; sleep 5"
    tmux("new-session", "-d", "-s", "dg", "-x", "120", "-y", "40", cmd)
    try:
        tmux.wait_for("demo.md")
        tmux.wait_for("stdlib-7m")  # the model loaded in the background
        tmux.keys("F3")  # no soft wrap: Down moves by file lines
        tmux.keys(*["Down"] * 10, "End", *["S-Left"] * len(SPAN))
        tmux.keys("C-t")
        tmux.wait_for("1 masked span")
        tmux.keys("C-g")
        tmux.wait_for("candidate 1/1", timeout=180)
        tmux.keys("Enter")
        tmux.wait_for("Accepted")
        tmux.keys("C-s")
        screen = tmux.wait_for("Saved")
        saved = doc.read_text()
        head, tail = original.split(SPAN)
        assert saved.startswith(head) and saved.endswith(tail) and saved != original
        new = saved[len(head): len(saved) - len(tail)]
        visible = new.split("\n")[0][:12]
        if visible.isascii() and visible.strip():
            assert ("return " + visible).rstrip() in screen
        tmux.keys("C-q")
        time.sleep(0.5)
        assert doc.read_text() == saved
    finally:
        subprocess.run(tmux.base + ["kill-server"], capture_output=True)
