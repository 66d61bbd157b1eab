"""The editor's Pilot helpers: the demo file and trace, waiting on the background, selecting, recording messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dgterm.config import Settings
from dgterm.tui import messages as m

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "docs" / "demo.md"
TRACE = REPO / "tests" / "tui" / "data" / "demo-infill.trace"
SIZE = (120, 40)
FAST = dict(steps=4, seed=1)  # a short, seeded run


def settings(**kw) -> Settings:
    return Settings(**kw)


async def settle(app, pilot) -> None:
    """Wait until every worker is done and the messages they posted are handled."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def painted(app, steps: int) -> None:
    """Wait until a run held at ``steps`` (``replay_until``) shows its last step."""
    while app.job is None or len(app.job.frames) < steps or app.painted_frame is not app.job.frames[steps - 1]:
        await asyncio.sleep(0.01)


def select(app, text: str, occurrence: int = 0) -> tuple[int, int]:
    """Select ``text`` in the editor (as a user would with shift+arrows); returns offsets."""
    doc = app.doc
    start = -1
    for _ in range(occurrence + 1):
        start = doc.text.index(text, start + 1)
    end = start + len(text)
    app.editor.selection = (doc.location_of(start), doc.location_of(end))
    return start, end


class Recorder:
    """``message_hook`` that keeps the run messages and can wait for one kind."""

    KINDS = (m.RunStarted, m.StepMessage, m.RunFinished, m.RunCancelled, m.RunFailed, m.ReviewReady,
             m.ModelLoaded, m.ModelFailed, m.LensReady)

    def __init__(self):
        self.seen: list = []
        self.events: dict[type, asyncio.Event] = {}

    def __call__(self, message) -> None:
        if isinstance(message, self.KINDS):
            self.seen.append(message)
            self.event(type(message)).set()

    def event(self, kind) -> asyncio.Event:
        return self.events.setdefault(kind, asyncio.Event())

    async def wait(self, kind, timeout: float = 60) -> None:
        await asyncio.wait_for(self.event(kind).wait(), timeout)

    def kinds(self) -> list[str]:
        out = []
        for msg in self.seen:
            name = type(msg).__name__
            if not out or out[-1] != name:
                out.append(name)
        return out


def notes(app) -> list[str]:
    """The notifications the editor has shown, oldest first."""
    return [n.message for n in app._notifications]
