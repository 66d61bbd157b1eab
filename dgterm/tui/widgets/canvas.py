"""The canvas panel: the whole canvas of the current step, its statistics, the spans
with their token budget, and the candidates of a finished run."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from dgterm.engine.output.frames import Choice, Frame, display_text
from dgterm.tui.themes import palette_of
from dgterm.tui.widgets.sparkline import Sparkline


def _short(text: str, n: int = 28) -> str:
    text = text.replace("\n", "↵").replace("\t", "→")
    return text if len(text) <= n else text[: n - 1] + "…"


class FlowText(Static):
    """Wrapped text that changes every run step. It asks for a layout pass (which costs
    more than the repaint) only when its wrapped height changes."""

    def __init__(self, text: str, **kwargs) -> None:
        super().__init__(text, **kwargs)
        self._lines = -1

    def show(self, text: Text) -> None:
        width = self.content_size.width
        lines = len(text.wrap(self.app.console, width)) if width and text else 0
        self.update(text, layout=lines != self._lines or not width)
        self._lines = lines


class CanvasPanel(VerticalScroll):
    DEFAULT_CSS = """
    CanvasPanel { width: 48; border-left: vkey $panel; padding: 0 1; background: $surface; }
    CanvasPanel.-hidden { display: none; }
    CanvasPanel Static { width: 100%; }
    CanvasPanel .title { color: $primary; text-style: bold; margin-top: 1; }
    CanvasPanel #canvas-stats { color: $text; }
    """

    def compose(self) -> ComposeResult:
        yield Static("Run", classes="title")
        yield FlowText("No run yet.", id="canvas-stats")
        yield Sparkline(id="canvas-spark")
        yield Static("Canvas", classes="title")
        yield FlowText("", id="canvas-tokens")
        yield Static("Spans", classes="title")
        yield Static("", id="canvas-spans")
        yield Static("Candidates (log-likelihood)", classes="title", id="canvas-choices-title")
        yield Static("", id="canvas-choices")

    def show_frame(self, frame: Frame, row: int, *, frames: list[Frame], threshold: float, label: str) -> None:
        """Paint one step: statistics, sparkline (accepted per step) and the whole canvas."""
        forwards = sum(1 for f in frames if not f.finished[row] or f is frames[-1]) or 1
        tokens = sum(1 for span in frame.drafts[row] for t in span if t.state == "accepted")
        busy = frame.elapsed - frame.warmup
        rate = tokens / busy if busy > 0 else 0.0
        stats = Text()
        stats.append(f"{label}\n", style="bold")
        stats.append(f"window {frame.window + 1} · step {frame.step}/{frame.max_steps}\n")
        stats.append(f"accepted +{frame.accepted[row]} this step\n")
        mean = frame.entropy[row]
        stats.append(f"mean entropy {mean:.3f} / stop {threshold:g}",
                     style="green" if mean <= threshold else "yellow")
        stats.append(f"\n{tokens} decided · {rate:.1f} tok/s · {tokens / forwards:.2f} tok/forward")
        if frame.warmup:
            stats.append(f"\ncompiled the step in {frame.warmup:.1f} s (once per shape)")
        self.query_one("#canvas-stats", FlowText).show(stats)
        self.query_one(Sparkline).values = tuple(f.accepted[row] for f in frames)
        pal = palette_of(self.app.current_theme)
        canvas = Text(no_wrap=False, overflow="fold")
        for tok in frame.canvas[row]:
            if tok.state == "pinned":  # context: an empty token is a special one or part of a character
                canvas.append(tok.text.replace("\n", "↵"), style=pal.color("pinned").hex)
            else:
                canvas.append(display_text(tok) or "∅", style=pal.token(tok.state, tok.entropy))
        self.query_one("#canvas-tokens", FlowText).show(canvas)

    def show_stats(self, text: str) -> None:
        self.query_one("#canvas-stats", FlowText).show(Text(text))

    def clear_run(self, message: str = "No run yet.") -> None:
        self.query_one("#canvas-stats", FlowText).show(Text(message))
        self.query_one(Sparkline).values = ()
        self.query_one("#canvas-tokens", FlowText).show(Text())
        self.show_choices([], 0)

    def _room(self, used: int) -> int:
        """Characters left on a line of the panel after ``used`` (the panel is sized to the terminal)."""
        width = self.content_size.width
        return max(8, width - used) if width else 36

    def show_spans(self, rows: list[tuple[str, int | None, int | None]], canvas_length: int | None) -> None:
        """``rows``: (text, target tokens, current tokens) per span."""
        if not rows:
            self.query_one("#canvas-spans", Static).update(Text("No masked spans. Select text and press ctrl+t.",
                                                                  style="dim"))
            return
        out = Text()
        total = 0
        for i, (text, target, current) in enumerate(rows, 1):
            n = target if target is not None else current
            total += n or 0
            size = "?" if n is None else str(n)
            mark = "" if target is None else " (set)"
            out.append(f"{i}. ", style="bold")
            out.append(f"{_short(text, self._room(len(f'{i}.   {size} tok{mark}') + 1)) or '⎀ insert'}")
            out.append(f"  {size} tok{mark}\n", style="dim")
        budget = f"budget {total}/{canvas_length} tokens" if canvas_length else f"budget {total} tokens"
        over = canvas_length is not None and total > canvas_length
        out.append(budget + (" — spans the canvas more than once" if over else ""),
                   style="yellow" if over else "green")
        self.query_one("#canvas-spans", Static).update(out)

    def show_choices(self, choices: list[Choice], current: int, step_label: str = "",
                     changes: list[list[tuple[str, str]]] | None = None) -> None:
        """The candidates with their scores and, given ``changes`` (per candidate: the old
        and new text of each hunk still open), their diffs."""
        out = Text()
        for i, c in enumerate(choices):
            pointer = "▸ " if i == current else "  "
            lengths = f" · {'/'.join(map(str, c.lengths))} tok" if c.lengths else ""
            verdict = "" if c.valid is None else " · valid" if c.valid else " · invalid"
            hunks = "" if changes is None else f" · {len(changes[i])} hunk{'s' * (len(changes[i]) != 1)}"
            out.append(f"{pointer}{i + 1}. {c.score:.2f}{verdict}{lengths}{hunks}\n",
                       style="bold" if i == current else "")
            if c.valid is False and i == current:
                out.append(f"     {_short(c.reason, self._room(5))}\n", style="red")
            if changes is None:
                out.append(f"     {_short(' | '.join(c.texts), self._room(5))}\n", style="dim")
                continue
            for old, new in changes[i][:4]:
                if old:
                    out.append(f"     -{_short(old, self._room(6))}\n", style="red" if i == current else "dim red")
                out.append(f"     +{_short(new, self._room(6))}\n", style="green" if i == current else "dim green")
            if len(changes[i]) > 4:
                out.append(f"     … {len(changes[i]) - 4} more\n", style="dim")
        if step_label:
            out.append(step_label, style="italic")
        self.query_one("#canvas-choices", Static).update(out)
