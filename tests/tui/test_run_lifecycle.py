"""Pilot tests of the run lifecycle (dgterm.tui.lifecycle) in the editor: every transition
driven through the App, and illegal ones refused by the state with its sentence."""

from __future__ import annotations

import threading

from dgterm.tui import messages as m
from dgterm.tui import background
from dgterm.tui.app import DgtermApp, make_app
from dgterm.tui.job import Job
from dgterm.tui.lifecycle import STILL_LOADING, Idle, Lensing, LoadFailed, Loading, Reviewing, Running

from tests.helpers.tui import notes, FAST, SIZE, TRACE, painted, select, settle


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def record_states(monkeypatch) -> list[str]:
    """The states the App's lifecycle goes through, repeats folded (a run's steps)."""
    seen: list[str] = []
    watch = DgtermApp.watch_lifecycle

    def recording(self, old, new):
        name = type(new).__name__ + ("+lens" if getattr(new, "lens_shown", False) else "")
        if not seen or seen[-1] != name:
            seen.append(name)
        watch(self, old, new)

    monkeypatch.setattr(DgtermApp, "watch_lifecycle", recording)
    return seen


async def test_a_run_while_the_model_loads_is_refused_then_it_loads_runs_and_is_accepted(demo, tiny, monkeypatch):
    go = threading.Event()

    def load_model(engine, post):  # holds the load until the test has tried to run
        go.wait(30)
        post(m.ModelLoaded(tiny))

    monkeypatch.setattr(background, "load_model", load_model)
    seen = record_states(monkeypatch)
    app = make_app(str(demo), sampler=FAST, candidates=2)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        assert isinstance(app.lifecycle, Loading) and app.mode == "edit" and app.lm is None
        assert "loading model" in str(app.query_one("#status-state").render())
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g")  # run while loading
        assert isinstance(app.lifecycle, Loading) and notes(app)[-1] == STILL_LOADING and app.doc.text == before
        go.set()
        for _ in range(600):  # bounded: the load posts at once now
            if app.lm is not None:
                break
            await pilot.pause(0.05)
        assert isinstance(app.lifecycle, Idle) and app.lm is tiny
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert isinstance(app.lifecycle, Reviewing) and app.mode == "review" and app.job is app.review.job
        await pilot.press("tab", "left", "enter")
        assert isinstance(app.lifecycle, Idle) and app.mode == "edit" and app.doc.text != before
    assert seen == ["Idle", "Running", "Reviewing", "Idle"]


async def test_a_model_that_fails_to_load_refuses_runs_with_its_reason(demo, monkeypatch):
    monkeypatch.setattr(background, "load_model", lambda engine, post: post(m.ModelFailed("The folder does not exist.")))
    app = make_app(str(demo))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert isinstance(app.lifecycle, LoadFailed) and app.model_error == "The folder does not exist."
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g", "ctrl+l")
        assert app.mode == "edit" and notes(app)[-1] == "No model: The folder does not exist."
        assert app.query_one("#status-state").has_class("-error")


async def test_while_a_run_goes_accept_and_a_second_run_are_refused_by_the_state(demo, monkeypatch):
    seen = record_states(monkeypatch)
    app = make_app(str(demo), load=False, replay=str(TRACE), replay_delay=0, replay_until=8)
    async with app.run_test(size=SIZE) as pilot:
        await painted(app, 8)
        state = app.lifecycle
        assert isinstance(state, Running) and app.mode == "running" and state.layout is not None
        assert state.shown is app.painted_frame is app.job.frames[7] and "step" in state.step_label()
        refusal = "The infill is still running: wait for its candidates, or escape cancels it."
        app.action_accept()  # accept while running
        await pilot.pause()
        assert notes(app)[-1] == refusal and app.lifecycle is state
        app.action_infill()  # a second run while one runs
        app.start_job(Job("infill", app.doc.text, [(0, 1, None)], [app.doc.spans[0].id]))
        await pilot.pause()
        assert app.lifecycle is state and app.job is state.job and notes(app) == [refusal]  # said once
        await pilot.press("escape")
        assert isinstance(app.lifecycle, Idle) and app.mode == "edit" and state.job.cancel.is_set()
        assert "Run cancelled; the document is as it was." in notes(app) and not app.doc.dirty
    assert seen == ["Running", "Idle"]


async def test_candidates_are_browsed_and_rejected_and_nothing_starts_meanwhile(demo, tiny, monkeypatch):
    seen = record_states(monkeypatch)
    app = make_app(str(demo), lm=tiny, sampler=FAST, candidates=2)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        state = app.lifecycle
        assert isinstance(state, Reviewing)
        app.action_continue_text()  # a run while the candidates are shown
        await pilot.pause()
        assert app.lifecycle is state and notes(app)[-1].startswith("The candidates of the last run are shown")
        await pilot.press("tab")
        assert state.review.choice == 1
        await pilot.press("escape")
        assert isinstance(app.lifecycle, Idle) and app.doc.text == before and app.review is None
        app.action_next_candidate()  # browsing with no review
        await pilot.pause()
        assert notes(app)[-1].startswith("No run is going")
    assert seen == ["Running", "Reviewing", "Idle"]


async def test_a_failed_run_and_a_worker_error_leave_the_document_as_it_was(demo, tiny, monkeypatch):
    seen = record_states(monkeypatch)
    monkeypatch.setattr(background, "execute", lambda lm, job, post: post(m.RunFailed(job, "The run failed (boom).")))
    app = make_app(str(demo), lm=tiny, sampler=FAST)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        assert isinstance(app.lifecycle, Idle) and app.doc.text == before and "The run failed (boom)." in notes(app)

        def crash(lm, job, post):
            raise RuntimeError("a bug")

        monkeypatch.setattr(background, "execute", crash)
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert isinstance(app.lifecycle, Idle) and app.doc.text == before and not app.editor.read_only
        assert any(n.startswith("Internal error in run_job_worker: a bug") for n in notes(app))
    assert seen == ["Running", "Idle", "Running", "Idle"]


async def test_the_lens_scores_tints_and_is_turned_off_or_cancelled(demo, tiny, monkeypatch):
    seen = record_states(monkeypatch)
    app = make_app(str(demo), lm=tiny)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+l")
        await settle(app, pilot)
        assert isinstance(app.lifecycle, Idle) and app.lifecycle.lens_shown and app.editor.lens_active
        await pilot.press("ctrl+l")  # off again
        assert not app.lifecycle.lens_shown and not app.editor.lens_active
        await pilot.press("ctrl+l")
        await settle(app, pilot)
        await pilot.press("x")  # an edit takes the tint away
        stats = str(app.canvas.query_one("#canvas-stats").render())
        assert not app.lifecycle.lens_shown and "Lens off: the text changed." in stats

        def held(lm, job, post):  # a lens that scores until cancelled
            job.cancel.wait(30)
            post(m.RunCancelled(job))

        monkeypatch.setattr(background, "lens", held)
        await pilot.press("ctrl+l")
        state = app.lifecycle
        assert isinstance(state, Lensing) and app.mode == "lens"
        app.action_accept()
        await pilot.pause()
        assert app.lifecycle is state and notes(app)[-1] == "The lens is scoring the visible text; escape cancels it."
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.lifecycle, Idle) and state.job.cancel.is_set() and app.doc.text.startswith("x")
    assert seen == ["Lensing", "Idle+lens", "Idle", "Lensing", "Idle+lens", "Idle", "Lensing", "Idle"]
