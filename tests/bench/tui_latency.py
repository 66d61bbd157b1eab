"""Benchmark (not part of the test suite): keypress-to-screen latency of the editor while
the bundled model is generating, measured with Pilot.

    .venv/bin/python tests/bench/tui_latency.py [--presses 300] [--steps 48]

Each sample is one key press (cursor down / up in the editor) until the app has handled
it and repainted (``pilot.press`` then ``pilot.pause``), taken only while a run is in
flight; finished runs are restarted. Prints p50 / p90 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


async def measure(presses: int, steps: int, size=(120, 40)) -> dict:
    from dgterm.engine import loading
    from dgterm.tui.app import make_app

    lm = loading.load("bundled")
    doc = Path(tempfile.mkdtemp()) / "demo.md"
    shutil.copy(REPO / "docs" / "demo.md", doc)
    app = make_app(str(doc), lm=lm, sampler=dict(steps=steps, seed=1, confidence=1e-9), candidates=2)
    samples, steps_seen = [], 0
    async with app.run_test(size=size) as pilot:
        text = app.doc.text
        a = text.index("sum(values) / len(values)")
        app.doc.add_span(a, a + 25)
        b = text.index("text before it")
        app.doc.add_span(b, b + 14)
        key = "down"
        while len(samples) < presses:
            if app.mode != "running":
                if app.mode == "review":
                    await pilot.press("escape")
                await app.workers.wait_for_complete()
                await pilot.press("ctrl+g")
                while app.job is not None and not app.job.frames:
                    await pilot.pause()
                continue
            before = app.editor.cursor_location
            t0 = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            dt = time.perf_counter() - t0
            if app.mode == "running":
                samples.append(dt * 1000)
                steps_seen = max(steps_seen, len(app.job.frames) if app.job else 0)
            key = "up" if app.editor.cursor_location[0] > 12 else ("down" if before == app.editor.cursor_location
                                                                    or key == "down" else "up")
        await pilot.press("escape")
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    return {"presses": len(samples), "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": samples[-1],
            "mean": statistics.mean(samples)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presses", type=int, default=300)
    p.add_argument("--steps", type=int, default=48)
    args = p.parse_args()
    r = asyncio.run(measure(args.presses, args.steps))
    print(f"keypress-to-screen while generating: {r['presses']} presses, p50 {r['p50']:.1f} ms, "
          f"p90 {r['p90']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms, mean {r['mean']:.1f} ms")


if __name__ == "__main__":
    main()
