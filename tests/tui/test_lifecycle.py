"""The run lifecycle on its own (no App): every legal transition, and every other one
refused by the state with one sentence."""

from __future__ import annotations

import inspect

import pytest

from dgterm.engine.output.frames import Choice, Frame, Layout
from dgterm.tui.job import Job
from dgterm.tui.keymap import Mode
from dgterm.tui.lifecycle import (
    STILL_LOADING,
    Idle,
    Lensing,
    LoadFailed,
    Loading,
    Refused,
    Reviewing,
    Running,
    State,
    first_state,
)

LM = object()  # stands for an engine: the lifecycle only carries it
LAYOUT = Layout("spans", 16, 1)
CHOICES = [Choice(["new"], -0.5, [1], 0)]


def frame(step: int) -> Frame:
    return Frame(0, step, 4, 0.0, 1, [[[]]], [[]], [0], [0.0], [False])


def job(kind: str = "infill") -> Job:
    return Job(kind, "some text", [(0, 4, None)], [1])


def running(lm=LM) -> Running:
    return Idle(lm=lm).start_run(job())


def reviewing() -> Reviewing:
    return running().started(LAYOUT).finish([frame(1)], CHOICES, {"tokens_per_second": 1.0})


TRANSITIONS = {  # name -> arguments
    "ready": (), "browsed": (), "loaded": (LM,), "load_failed": ("No such file.",), "start_run": (job(),),
    "start_lens": (job("lens"),), "started": (LAYOUT,), "step": (frame(1),), "painted": (frame(1),),
    "finish": ([frame(1)], CHOICES, {}), "lens_ready": (), "cancel": (), "fail": (), "accept": (),
    "reject": (), "lens_off": (),
}

LEGAL = {  # state -> the transitions it takes
    "Loading": {"loaded", "load_failed"},
    "LoadFailed": set(),
    "Idle": {"ready", "start_run", "start_lens", "lens_off"},
    "Running": {"started", "step", "painted", "finish", "cancel", "fail"},
    "Reviewing": {"browsed", "accept", "reject", "fail", "start_lens", "lens_off"},  # lens_ready: only while lensing
    "Lensing": {"lens_ready", "cancel", "fail"},
}


def every_state() -> list[State]:
    return [Loading(since=0.0), LoadFailed(reason="No such file."), Idle(lm=LM), running(), reviewing(),
            Idle(lm=LM).start_lens(job("lens"))]


def test_transitions_are_the_ones_the_table_names():
    assert set(TRANSITIONS) == {name for name, _ in inspect.getmembers(State, inspect.isfunction)
                                if not name.startswith("_") and name not in ("refusal", "owns", "status")}


@pytest.mark.parametrize("state", every_state(), ids=lambda s: type(s).__name__)
def test_each_state_takes_its_transitions_and_refuses_the_rest_in_one_sentence(state):
    for name, args in TRANSITIONS.items():
        if name in LEGAL[type(state).__name__]:
            getattr(state, name)(*args)
            continue
        with pytest.raises(Refused) as refused:
            getattr(state, name)(*args)
        notice = refused.value.notice
        assert notice and notice == str(refused.value) and notice.endswith(".") and notice.count(". ") == 0


def test_the_mode_is_read_off_the_state():
    modes = [s.mode for s in every_state()]
    assert modes == [Mode.EDIT, Mode.EDIT, Mode.EDIT, Mode.RUNNING, Mode.REVIEW, Mode.LENS]


def test_a_model_loads_or_fails():
    start = first_state(None, load=True)
    assert isinstance(start, Loading) and start.lm is None and "loading model" in start.status()[0]
    idle = start.loaded(LM)
    assert isinstance(idle, Idle) and idle.ready() is LM
    failed = Loading(since=0.0).load_failed("The model folder does not exist.")
    assert failed.status() == ("model unavailable: editing only", "error")
    assert isinstance(first_state(LM, load=False), Idle) and first_state(LM, load=False).lm is LM


def test_a_run_steps_finishes_and_is_accepted_or_rejected():
    state = running()
    assert state.owns(state.job) and not state.owns(job()) and state.status()[0] == "infill · starting · escape cancels"
    state = state.started(LAYOUT).step(frame(1)).step(frame(2))
    assert state.layout is LAYOUT and state.pending.step == 2 and state.shown is None
    state = state.painted(state.pending)
    assert state.pending is None and state.shown.step == 2 and "step 2/4 · window 1" in state.status()[0]
    late = state.step(frame(3))
    assert late.painted(frame(2)).pending.step == 3  # a step that came in meanwhile is still due
    review = state.finish([frame(1), frame(2)], CHOICES, {})
    assert isinstance(review, Reviewing) and review.review.job is state.job and review.owns(state.job)
    assert review.browsed() is review.review and review.review.layout is LAYOUT
    for leave in (review.accept, review.reject, review.fail):
        after = leave()
        assert isinstance(after, Idle) and after.lm is LM


def test_a_run_is_cancelled_or_fails():
    for leave in ("cancel", "fail"):
        after = getattr(running(), leave)()
        assert isinstance(after, Idle) and after.lm is LM


def test_the_lens_scores_then_tints_until_turned_off():
    lensing = Idle(lm=LM).start_lens(job("lens"))
    assert isinstance(lensing, Lensing) and lensing.status()[1] == "busy"
    shown = lensing.lens_ready()
    assert isinstance(shown, Idle) and shown.lens_shown and not shown.lens_off().lens_shown
    assert isinstance(lensing.cancel(), Idle)


def test_the_lens_of_a_draft_scores_the_shown_candidate_and_the_review_goes_on():
    review = reviewing()
    lens = job("lens")
    scoring = review.start_lens(lens)
    assert isinstance(scoring, Reviewing) and scoring.review is review.review and scoring.mode == Mode.REVIEW
    assert scoring.owns(lens) and scoring.owns(review.review.job) and not review.owns(lens)
    assert "lens: scoring" in scoring.status()[0] and not scoring.lens_shown
    shown = scoring.lens_ready()
    assert isinstance(shown, Reviewing) and shown.lens_shown and shown.lensing is None and not shown.owns(lens)
    assert "lens (alt+↑/↓ threshold)" in shown.status()[0]
    again = shown.start_lens(job("lens"))  # another candidate shown: scored anew
    assert again.lensing is not lens and not again.lens_shown
    off = shown.lens_off()
    assert isinstance(off, Reviewing) and not off.lens_shown and off.lensing is None and off.browsed() is review.review
    for leave in (shown.accept, shown.reject, scoring.fail):
        assert isinstance(leave(), Idle)
    with pytest.raises(Refused, match="switched off"):
        off.lens_ready()  # a late score of a lens turned off
    with pytest.raises(Refused, match="No model is loaded"):
        Idle().start_run(job()).started(LAYOUT).finish([frame(1)], CHOICES, {}).start_lens(lens)  # a replay's review


def test_illegal_transitions_say_why():
    with pytest.raises(Refused, match="still running: wait for its candidates, or escape cancels it"):
        running().accept()  # accept while running
    with pytest.raises(Refused, match="still running"):
        running().start_run(job())  # a second run while one runs
    with pytest.raises(Refused) as refused:
        Loading(since=0.0).start_run(job())  # run while loading
    assert refused.value.notice == STILL_LOADING and refused.value.severity == "information"
    with pytest.raises(Refused) as refused:
        LoadFailed(reason="The model folder does not exist.").ready()
    assert refused.value.notice == "No model: The model folder does not exist." and refused.value.severity == "error"
    with pytest.raises(Refused, match="enter accepts one, escape rejects them"):
        reviewing().start_run(job())
    with pytest.raises(Refused, match="No run is going"):
        Idle(lm=LM).accept()


def test_without_a_model_only_a_replay_runs():
    idle = Idle()  # a replay, or a session that loads no model
    with pytest.raises(Refused, match="still loading"):
        idle.ready()
    with pytest.raises(Refused, match="still loading"):
        idle.start_lens(job("lens"))
    replay = idle.start_run(job())
    assert isinstance(replay, Running) and replay.lm is None and isinstance(replay.fail(), Idle)
