"""Benchmark (not part of the test suite): keypress-to-screen latency of the editor while
the bundled model is generating, measured with Pilot.

    .venv/bin/python tests/bench/tui_latency.py [--presses 300] [--steps 48] [--idle]

Each sample is one key press (cursor down / up in the editor), timed from the moment the
key event is handed to the app's driver, as a terminal would, to the end of the first
screen update that shows the moved cursor. Screen updates are timestamped by wrapping
``App._display``; headless apps skip turning an update into terminal bytes, so the
wrapper does that too, to pay the full cost of a frame. Key presses are spaced by a
random 20–80 ms, like a typist, so they land at every phase of a denoising step; only
presses made while a run is in flight count, and finished runs are restarted. Prints
p50 / p90 / p99 / max in milliseconds.

``pilot.press`` is not used for timing: it waits for the app to go idle, which never
happens while the worker generates.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _timestamp_frames(app, on_frame) -> None:
    """Call ``on_frame()`` after every screen update the app sends to its terminal."""
    from textual._compositor import CompositorUpdate

    display = app._display

    def timed(screen, renderable):
        display(screen, renderable)
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(app.console)
            on_frame()

    app._display = timed


async def measure(presses: int, steps: int, size=(120, 40), seed: int = 0, idle: bool = False) -> dict:
    from dgterm.engine.local import loading
    from dgterm.tui.app import make_app  # first: dgterm.tui sets Textual's frame rate
    from textual import events

    lm = loading.load("bundled")
    doc = Path(tempfile.mkdtemp()) / "demo.md"
    shutil.copy(REPO / "docs" / "demo.md", doc)
    app = make_app(str(doc), lm=lm, sampler=dict(steps=steps, seed=1, confidence=1e-9), candidates=2)
    rng = random.Random(seed)
    samples, runs = [], 0
    waiting: dict = {}

    def on_frame():
        if waiting and app.editor.cursor_location != waiting["before"]:
            waiting["done"].set()

    async with app.run_test(size=size) as pilot:
        _timestamp_frames(app, on_frame)
        text = app.doc.text
        a = text.index("sum(values) / len(values)")
        app.doc.add_span(a, a + 25)
        b = text.index("text before it")
        app.doc.add_span(b, b + 14)
        key = "down"
        while len(samples) < presses:
            if app.mode != "running" and not idle:
                if app.mode == "review":
                    await pilot.press("escape")
                await app.workers.wait_for_complete()
                await pilot.press("ctrl+g")
                runs += 1
                while app.job is not None and not app.job.frames:
                    await asyncio.sleep(0.01)
                continue
            row = app.editor.cursor_location[0]
            key = "up" if row >= 12 else "down" if row <= 1 else key
            waiting.update(before=app.editor.cursor_location, done=asyncio.Event())
            event = events.Key(key, None)
            event.set_sender(app)
            t0 = time.perf_counter()
            app._driver.send_message(event)
            await waiting["done"].wait()
            dt = time.perf_counter() - t0
            waiting.clear()
            if app.mode == "running" or idle:
                samples.append(dt * 1000)
            await asyncio.sleep(rng.uniform(0.02, 0.08))
        await pilot.press("escape")
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    return {"presses": len(samples), "runs": runs, "p50": pct(50), "p90": pct(90), "p99": pct(99),
            "max": samples[-1], "mean": statistics.mean(samples)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presses", type=int, default=300)
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--idle", action="store_true", help="no run: the reference the run is compared with")
    args = p.parse_args()
    r = asyncio.run(measure(args.presses, args.steps, idle=args.idle))
    what = "with no run" if args.idle else f"while generating ({r['runs']} runs)"
    print(f"keypress-to-screen {what}: {r['presses']} presses, "
          f"p50 {r['p50']:.1f} ms, p90 {r['p90']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms, "
          f"mean {r['mean']:.1f} ms")


if __name__ == "__main__":
    main()
