"""The live canvas: drafts coloured by state and entropy, redrawn in place below the prompt.

The region is redrawn by hand rather than with ``rich.live.Live`` for two reasons: it
must never be taller than the terminal (rows that scroll off cannot be erased, and would
stay in the scrollback as garbage), so long drafts show their tail; and after a resize
the terminal re-wraps the previous frame, so the number of rows to erase is recomputed
from the old lines' widths and the new width (terminals that reflow: tmux, VTE, iTerm2,
kitty). Nothing is left behind: the region is erased before the answer is printed.
"""

from __future__ import annotations

from rich.color import Color, blend_rgb
from rich.console import Console
from rich.control import Control
from rich.segment import ControlType, Segment, Segments
from rich.style import Style
from rich.text import Text

from dgterm.engine.output.frames import NOISE_ENTROPY

ACCEPTED = Style(bold=True)
NOISE = Style(color="grey42", italic=True)
SURE, UNSURE = Color.parse("#5fd7af").get_truecolor(), Color.parse("#d78700").get_truecolor()
STATUS = Style(dim=True)


def printable(text: str) -> str:
    """Control characters (ESC, CR, ...) would drive the terminal: show them as symbols."""
    return "".join(c if c in "\n\t" or (c >= " " and c != "\x7f") else _picture(c) for c in text)


def _picture(c: str) -> str:
    return "\u2421" if c == "\x7f" else chr(0x2400 + ord(c)) if ord(c) < 0x20 else c


def token_style(state: str, entropy: float) -> Style:
    if state == "accepted":
        return ACCEPTED
    if state == "tentative":
        shade = blend_rgb(SURE, UNSURE, min(max(entropy / NOISE_ENTROPY, 0.0), 1.0))
        return Style(color=Color.from_triplet(shade))
    return NOISE


def canvas_text(drafts) -> Text:
    """One Text of DraftTokens; noise tokens keep to one line so the canvas does not jump."""
    text = Text()
    for tok in drafts:
        s = printable(tok.text)
        if tok.state == "noise":
            s = s.replace("\n", "\u21b5")
        text.append(s, token_style(tok.state, tok.entropy))
    return text


def status_text(event, max_canvases: int, row: int = 0) -> Text:
    """step k/N · canvas · accepted · mean entropy · tok/s of a StepEvent (of candidate ``row``)."""
    free = int(event.free[row].sum())
    parts = [
        f"step {event.step}/{event.max_steps}",
        f"canvas {event.window + 1}/{max_canvases}",
        f"accepted {event.accepted_free(row)}/{free}",
        f"mean entropy {event.mean_entropy(row):.2f}",
        f"{event.rate:.1f} tok/s",
        "Ctrl-C cancels",
    ]
    if event.warmup:
        parts.insert(-1, f"compiled in {event.warmup:.1f} s")
    return Text(" · ".join(parts), STATUS)


class LiveRegion:
    """A block of lines at the bottom of the output, redrawn in place at most ``fps`` times a second."""

    def __init__(self, console: Console, fps: float = 15.0):
        self.console = console
        self.interval = 1.0 / fps
        self.widths: list[int] = []  # cell width of each line of the frame on screen

    def draw(self, body: Text, footer: Text) -> None:
        """Show ``body`` (its last lines, if it is taller than the terminal) above ``footer``."""
        width, height = self.console.size
        options = self.console.options.update(width=width)
        foot = self.console.render_lines(footer, options, pad=False)
        lines = self.console.render_lines(body, options, pad=False) if body.plain else []
        room = max(height - 1 - len(foot), 2)
        if len(lines) > room:
            note = Text(f"… {len(lines) - room + 1} more lines above", STATUS)
            lines = self.console.render_lines(note, options, pad=False)[:1] + lines[-(room - 1):]
        frame = (lines + foot)[-max(height - 1, 1):]
        segments = []
        for i, line in enumerate(frame):
            if i:
                segments.append(Segment.line())
            segments.extend(line)
        self._erase(width, height)
        self.console.print(Segments(segments), end="", soft_wrap=True)
        self.widths = [Segment.get_line_length(line) for line in frame]

    def clear(self) -> None:
        width, height = self.console.size
        self._erase(width, height)
        self.widths = []

    def _erase(self, width: int, height: int) -> None:
        """Erase the frame on screen, from its last row up to its first, leaving the cursor there."""
        if not self.widths:
            return
        rows = min(sum(max(1, -(-w // max(width, 1))) for w in self.widths), height)
        erase = (ControlType.ERASE_IN_LINE, 2)
        up = [(ControlType.CURSOR_UP, 1), erase] * (rows - 1)
        self.console.control(Control(ControlType.CARRIAGE_RETURN, erase, *up))
