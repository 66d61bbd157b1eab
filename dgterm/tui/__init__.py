"""The Textual editor (``dgterm open``). Build it with :func:`dgterm.tui.app.make_app`."""

import os

# Textual paints a changed screen on its next frame tick: at its default 60 fps a key
# press waits up to 17 ms before the paint even starts. Screens are painted only when
# something changed, so a higher cap costs nothing when idle (tests/bench/tui_latency.py).
os.environ.setdefault("TEXTUAL_FPS", "120")
