"""The editor (Pilot) end to end through a server: the real `dgterm serve` (tests/conftest.py)."""

from __future__ import annotations

import pytest

from dgterm.config import Settings
from dgterm.tui.app import make_app

from tests.helpers.tui import SIZE, Recorder, select, settle

pytestmark = pytest.mark.slow


async def connected(app, pilot) -> None:
    """Bounded: until the engine is there or has failed."""
    for _ in range(600):
        if app.lm is not None or app.model_error:
            break
        await pilot.pause(0.05)
    await settle(app, pilot)


async def test_a_remote_infill_in_the_editor_behaves_like_a_local_one(demo, served):
    sampler = dict(steps=4, seed=11)
    rec = Recorder()
    app = make_app(str(demo), settings=Settings(server=served.url, api_key=served.key), sampler=sampler, candidates=2)
    async with app.run_test(size=SIZE, message_hook=rec) as pilot:
        await connected(app, pilot)
        status = str(app.query_one("#status-model").render())
        assert f"dgterm serve at {served.url[7:]}: live steps" in status
        before = app.doc.text
        a, b = select(app, "sum(values) / len(values)")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        assert app.mode == "review" and len(app.review.choices) == 2
        steps = [x for x in rec.seen if type(x).__name__ == "StepMessage"]
        assert 1 <= len(steps) <= 4  # live steps, as locally
        new = app.review.current.texts[0]
        await pilot.press("enter")
        assert app.doc.text == before[:a] + new + before[b:]  # nothing outside the span moved
        await pilot.press("ctrl+s")
        assert demo.read_text() == app.doc.text


async def test_the_editor_says_when_the_server_cannot_be_reached(demo):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(str(demo), settings=Settings(server=f"http://127.0.0.1:{port}"))
    async with app.run_test(size=SIZE) as pilot:
        await connected(app, pilot)
        assert app.lm is None and app.doc.text == demo.read_text()
        assert f"127.0.0.1:{port}: not loaded" in str(app.query_one("#status-model").render())
