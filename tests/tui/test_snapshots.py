"""SVG snapshots of the main states. Runs come from the committed trace
(tests/tui/data/demo-infill.trace), replayed; the doubt view's lens from the bundled model
(committed with the repository; the lens draws no random numbers)."""

from __future__ import annotations

import shutil

import pytest

from dgterm.config import Settings
from dgterm.tui.app import make_app

from tests.helpers.tui import DEMO, SIZE, TRACE, painted

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "demo.md"
    shutil.copy(DEMO, path)
    return str(path)


async def steady(pilot):
    pilot.app.editor.cursor_blink = False
    await pilot.pause()


async def replayed(pilot, steps: int | None = None):
    app = pilot.app
    app.editor.cursor_blink = False
    if steps is None:
        await app.workers.wait_for_complete()
    else:
        await painted(app, steps)
    await pilot.pause()
    await pilot.pause()


def test_idle(snap_compare, doc):
    assert snap_compare(make_app(doc, load=False), run_before=steady, terminal_size=SIZE)


def test_masked_spans(snap_compare, doc):
    app = make_app(doc, load=False)

    async def mask(pilot):
        text = app.doc.text
        a = text.index("sum(values) / len(values)")
        app.doc.add_span(a, a + 25)
        b = text.index("text before it")
        app.doc.add_span(b, b + 14, 6)
        c = text.index("Limit")
        app.doc.add_span(c, c)
        app.spans_changed()
        app.editor.move_cursor(app.doc.location_of(a + 3))
        await steady(pilot)

    assert snap_compare(app, run_before=mask, terminal_size=SIZE)


def test_mid_denoising(snap_compare, doc):
    app = make_app(doc, load=False, replay=str(TRACE), replay_delay=0, replay_until=5)
    assert snap_compare(app, run_before=lambda pilot: replayed(pilot, 5), terminal_size=SIZE)


def test_finished_with_candidates(snap_compare, doc):
    app = make_app(doc, load=False, replay=str(TRACE), replay_delay=0)

    async def second(pilot):
        await replayed(pilot)
        await pilot.press("tab")
        await pilot.pause()

    assert snap_compare(app, run_before=second, terminal_size=SIZE)


def test_scrubbed_timeline(snap_compare, doc):
    app = make_app(doc, load=False, replay=str(TRACE), replay_delay=0)

    async def back(pilot):
        await replayed(pilot)
        await pilot.press("left", "left", "left", "left")
        await pilot.pause()

    assert snap_compare(app, run_before=back, terminal_size=SIZE)


def test_hunk_view(snap_compare, doc):
    """One hunk of the first candidate taken, the current one in the second span."""
    app = make_app(doc, load=False, replay=str(TRACE), replay_delay=0)

    async def hunks(pilot):
        await replayed(pilot)
        await pilot.press("y", "n", "right_square_bracket")
        await pilot.pause()

    assert snap_compare(app, run_before=hunks, terminal_size=SIZE)


@pytest.mark.slow
def test_doubt_view(snap_compare, doc, bundled):
    """The lens with the doubt threshold lowered to 0.05: the tokens under it marked."""
    app = make_app(doc, lm=bundled)

    async def doubt(pilot):
        await steady(pilot)
        await pilot.press("ctrl+l")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("alt+down")
        await pilot.pause()

    assert snap_compare(app, run_before=doubt, terminal_size=SIZE)


@pytest.mark.slow
def test_doubt_view_on_a_draft(snap_compare, doc, bundled):
    """In review, the lens on the shown candidate of a bundled-model infill: its tokens
    tinted by confidence in place of the hunks, those under 0.1 marked doubted."""
    app = make_app(doc, lm=bundled, sampler=dict(steps=4, seed=3), candidates=2)

    async def draft_doubt(pilot):
        await steady(pilot)
        text = pilot.app.doc.text
        at = text.index("sum(values) / len(values)")
        pilot.app.editor.selection = (pilot.app.doc.location_of(at), pilot.app.doc.location_of(at + 25))
        await pilot.press("ctrl+t", "ctrl+g")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+l")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, run_before=draft_doubt, terminal_size=SIZE)


def test_model_error(snap_compare, doc):
    app = make_app(doc, settings=Settings(model="/nonexistent/dgterm-model"))

    async def failed(pilot):
        await pilot.app.workers.wait_for_complete()
        await steady(pilot)
        await pilot.pause()

    assert snap_compare(app, run_before=failed, terminal_size=SIZE)


def test_help_screen(snap_compare, doc):
    app = make_app(doc, load=False)

    async def helpme(pilot):
        await steady(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app, run_before=helpme, terminal_size=SIZE)
