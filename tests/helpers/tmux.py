"""A tmux server of its own, driven by keys and read back from the pane."""

from __future__ import annotations

import subprocess
import time


class Tmux:
    def __init__(self, name: str):
        self.base = ["tmux", "-L", name]

    def __call__(self, *args: str) -> str:
        return subprocess.run(self.base + list(args), check=True, capture_output=True, text=True).stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", "dg")

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.pane()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.pane()}")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "dg", *keys)
