"""The live canvas: colours by state and entropy, wrapping, the tail of tall drafts, erasing after a resize."""

from __future__ import annotations

import re
from io import StringIO

from rich.console import Console
from rich.text import Text

from dgterm.engine.output.frames import DraftToken
from dgterm.repl.render import ACCEPTED, NOISE, LiveRegion, canvas_text, printable, token_style

CSI_UP = "\x1b[1A"


def test_control_characters_never_reach_the_terminal():
    assert printable("a\x1b[31mb\rc\td\ne\x7f") == "a\u241b[31mb\u240dc\td\ne\u2421"


def test_tokens_are_styled_by_state_and_entropy():
    text = canvas_text([DraftToken("def", "accepted", 0.0), DraftToken(" f", "tentative", 0.05),
                        DraftToken("\nx", "noise", 7.0), DraftToken("y", "tentative", 0.9)])
    assert text.plain == "def f\u21b5xy"  # a noise newline stays on the line
    assert token_style("accepted", 0.0) == ACCEPTED and token_style("noise", 5.0) == NOISE
    sure, unsure = token_style("tentative", 0.05).color, token_style("tentative", 0.9).color
    assert sure != unsure


def _terminal(width, height):
    out = StringIO()
    return Console(file=out, width=width, height=height, force_terminal=True, color_system="truecolor"), out


def _screen_lines(raw: str) -> list[str]:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", raw).split("\n")


def test_a_long_draft_wraps_and_shows_its_tail_within_the_terminal():
    console, out = _terminal(30, 8)
    region = LiveRegion(console)
    body = Text(" ".join(f"word{i}" for i in range(100)))
    region.draw(body, Text("step 3/24"))
    lines = _screen_lines(out.getvalue())
    assert len(lines) <= 7 and max(map(len, lines)) <= 30  # never taller than the screen, never wider
    assert "more lines above" in lines[0] and lines[-1] == "step 3/24"
    assert "word99" in lines[-2]  # the newest text is the visible part


def test_redraw_erases_the_previous_frame_even_after_a_narrower_resize():
    console, out = _terminal(40, 20)
    region = LiveRegion(console)
    region.draw(Text("x" * 40 + "\n" + "y" * 40 + "\nz"), Text("status"))  # rows: 40, 40, 1, 6 cells
    out.truncate(0), out.seek(0)
    console.width = 20  # the terminal re-wraps each 40-cell row into 2 rows: 2 + 2 + 1 + 1 = 6 rows
    region.draw(Text("new"), Text("status"))
    assert out.getvalue().count(CSI_UP) == 5
    out.truncate(0), out.seek(0)
    region.clear()
    assert out.getvalue().count(CSI_UP) == 1 and region.widths == []
