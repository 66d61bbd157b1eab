"""Regenerate the guide's screenshots: ``python scripts/screenshots.py docs/img``.

Every state is the real app, driven by Pilot; runs come from a recorded trace
(``docs/img/demo.trace``), so the pictures do not change when the model does. The lens
picture runs the bundled model (skipped with ``--no-model``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dgterm.config import Settings  # noqa: E402
from dgterm.tui.app import make_app  # noqa: E402

SIZE = (120, 36)


async def _shoot(app, out: Path, name: str, before) -> None:
    async with app.run_test(size=SIZE) as pilot:
        app.editor.cursor_blink = False
        await pilot.pause()
        await before(pilot)
        await pilot.pause()
        app.save_screenshot(str(out / f"{name}.svg"))
        print(f"wrote {out / name}.svg")


async def _until(pilot, predicate, limit: int = 4000) -> None:
    for _ in range(limit):
        if predicate():
            return
        await pilot.pause()


def _mask(app) -> None:
    text = app.doc.text
    a = text.index("sum(values) / len(values)")
    app.doc.add_span(a, a + 25)
    b = text.index("text before it")
    app.doc.add_span(b, b + 14)
    app.spans_changed()
    app.editor.move_cursor(app.doc.location_of(a))


async def main(out: Path, demo: Path, trace: Path, model: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp()) / "demo.md"
    shutil.copy(demo, work)
    doc = str(work)

    async def idle(pilot):
        pass

    async def masked(pilot):
        _mask(pilot.app)

    async def running(pilot):
        await _until(pilot, lambda: pilot.app.job is not None and len(pilot.app.job.frames) >= 5)

    async def review(pilot):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    async def timeline(pilot):
        await review(pilot)
        await pilot.press("left", "left", "left", "left", "left", "left")

    async def helpme(pilot):
        await pilot.press("f1")

    async def palette(pilot):
        await pilot.press("ctrl+p", *"rewrite")

    async def error(pilot):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    async def lens(pilot):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+l")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    async def draft_lens(pilot):  # the lens on the shown candidate of a bundled-model infill
        await _until(pilot, lambda: pilot.app.lm is not None)
        _mask(pilot.app)
        await pilot.press("ctrl+g")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await lens(pilot)

    await _shoot(make_app(doc, load=False), out, "idle", idle)
    await _shoot(make_app(doc, load=False), out, "masked", masked)
    await _shoot(make_app(doc, load=False, replay=str(trace), replay_delay=0, replay_until=5), out, "running", running)
    await _shoot(make_app(doc, load=False, replay=str(trace), replay_delay=0), out, "review", review)
    await _shoot(make_app(doc, load=False, replay=str(trace), replay_delay=0), out, "timeline", timeline)
    await _shoot(make_app(doc, load=False), out, "help", helpme)
    await _shoot(make_app(doc, load=False), out, "palette", palette)
    await _shoot(make_app(doc, settings=Settings(model="/nonexistent/model")), out, "error", error)
    await _shoot(make_app(doc, load=False, settings=Settings(theme="dgterm-light")), out, "light", masked)
    if model:
        await _shoot(make_app(doc), out, "lens", lens)
        await _shoot(make_app(doc, sampler=dict(steps=4, seed=3)), out, "draft-lens", draft_lens)


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python scripts/screenshots.py", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, nargs="?", default=REPO / "docs" / "img")
    p.add_argument("--demo", type=Path, default=REPO / "docs" / "demo.md")
    p.add_argument("--trace", type=Path, default=REPO / "docs" / "img" / "demo.trace")
    p.add_argument("--no-model", action="store_true", help="skip the pictures that need the bundled model")
    args = p.parse_args(argv)
    asyncio.run(main(args.out, args.demo, args.trace, not args.no_model))


if __name__ == "__main__":
    cli()
