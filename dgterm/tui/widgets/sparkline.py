"""A one-line sparkline of small counts (accepted tokens per step)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int) -> str:
    """The last ``width`` values as block characters scaled to their maximum."""
    values = values[-width:] if width > 0 else []
    top = max(values, default=0) or 1
    return "".join(BARS[min(8, round(v / top * 8))] if v > 0 else "·" for v in values)


class Sparkline(Widget):
    DEFAULT_CSS = """
    Sparkline { height: 1; color: $success; }
    """

    values: reactive[tuple] = reactive(tuple, layout=False)

    def render(self) -> Text:
        return Text(sparkline(list(self.values), self.size.width), no_wrap=True, overflow="crop")
