"""The editor's run lifecycle as one typed value::

    Loading ─loaded→ Idle ─start_run→ Running ─finish→ Reviewing ─accept | reject→ Idle
       └─load_failed→ LoadFailed        └─cancel | fail→ Idle
    Idle ─start_lens→ Lensing ─lens_ready→ Idle (the lens shown) ; cancel | fail→ Idle
    Reviewing ─start_lens→ Reviewing (scoring the shown candidate) ─lens_ready→ Reviewing
        (its lens shown) ─lens_off→ Reviewing (the hunks again)
    (``ready`` and ``browsed`` only ask: the engine a run may start on, the review shown)

The App holds the current state in one reactive (``DgtermApp.lifecycle``) and changes it
only through these transitions. Each returns the next state; one the state does not
allow raises :class:`Refused`, whose text is the one sentence the editor shows. So the
rules tying the mode, the run and its review together live here and nowhere else, and
the keymap's :class:`Mode` is read off the state (``State.mode``), never set beside it.
States are values (frozen; compared by identity): the App's watcher sees every change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, NoReturn

from textual.notifications import SeverityLevel

from dgterm.tui.keymap import Mode
from dgterm.tui.review import Review

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine
    from dgterm.engine.output.frames import Choice, Frame, Layout
    from dgterm.tui.job import Job

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
STILL_LOADING = "The model is still loading; editing works meanwhile, run it in a moment."


class Refused(Exception):
    """A transition the current state does not allow; ``notice`` is the sentence to show."""

    def __init__(self, notice: str, severity: SeverityLevel = "information") -> None:
        super().__init__(notice)
        self.notice, self.severity = notice, severity


@dataclass(frozen=True, eq=False, kw_only=True)
class State:
    """Where the editor is; ``lm`` is the engine once loaded (None: none, or not yet)."""

    lm: Engine | None = None
    mode: ClassVar[Mode] = Mode.EDIT

    def refusal(self, transition: str) -> Refused:
        """Why this state does not take ``transition``: the one place that says no."""
        raise NotImplementedError

    def _no(self, transition: str) -> NoReturn:
        raise self.refusal(transition)

    def owns(self, job: Job) -> bool:
        """Whether ``job`` is the run of this state (a worker's late message is not)."""
        return False

    def status(self) -> tuple[str, str] | None:
        """The status bar's line and its kind; None: the editor's own ("ready")."""
        return None

    # ------------------------------------------------------------------ transitions

    def ready(self) -> Engine:
        """The engine a new run starts on (no state change)."""
        self._no("ready")

    def browsed(self) -> Review:
        """The review the candidate and timeline keys move through (no state change)."""
        self._no("browsed")

    def loaded(self, lm: Engine) -> Idle:
        """The model is in."""
        self._no("loaded")

    def load_failed(self, reason: str) -> LoadFailed:
        """The model could not be loaded (``reason``: the sentence saying why)."""
        self._no("load_failed")

    def start_run(self, job: Job) -> Running:
        """A run (or a replay) starts; the document is read-only until it ends."""
        self._no("start_run")

    def start_lens(self, job: Job) -> Lensing | Reviewing:
        """The lens starts scoring the visible text (in review: the shown candidate)."""
        self._no("start_lens")

    def started(self, layout: Layout) -> Running:
        """The worker planned the run: how its drafts map onto the spans."""
        self._no("started")

    def step(self, frame: Frame) -> Running:
        """A denoising step came in, to be painted."""
        self._no("step")

    def painted(self, frame: Frame) -> Running:
        """``frame`` is on screen."""
        self._no("painted")

    def finish(self, frames: list[Frame], choices: list[Choice], stats: dict) -> Reviewing:
        """The run is done: its candidates are up for review."""
        self._no("finish")

    def lens_ready(self) -> Idle | Reviewing:
        """The lens tints the text (in review: the shown candidate); its findings are in the canvas panel."""
        self._no("lens_ready")

    def cancel(self) -> Idle:
        """The user stops the run or the lens (escape)."""
        self._no("cancel")

    def fail(self) -> Idle:
        """The run ended without candidates: it failed, the worker stopped, or none came."""
        self._no("fail")

    def accept(self) -> Idle:
        """The shown candidate goes into the document."""
        self._no("accept")

    def reject(self) -> Idle:
        """The candidates are dropped; the document is as it was."""
        self._no("reject")

    def lens_off(self) -> Idle | Reviewing:
        """The lens's tint is gone (cleared, or the text changed)."""
        self._no("lens_off")


@dataclass(frozen=True, eq=False, kw_only=True)
class Loading(State):
    """The model loads in a thread; editing works meanwhile."""

    since: float

    def refusal(self, transition: str) -> Refused:
        return Refused(STILL_LOADING)

    def status(self) -> tuple[str, str]:
        now = time.monotonic()
        spin = SPINNER[int(now * 5) % len(SPINNER)]
        return f"{spin} loading model… {now - self.since:.1f}s (editing works)", "busy"

    def loaded(self, lm: Engine) -> Idle:
        return Idle(lm=lm)

    def load_failed(self, reason: str) -> LoadFailed:
        return LoadFailed(reason=reason)


@dataclass(frozen=True, eq=False, kw_only=True)
class LoadFailed(State):
    """The model could not be loaded: editing only, for the rest of the session."""

    reason: str

    def refusal(self, transition: str) -> Refused:
        return Refused(f"No model: {self.reason}", "error")

    def status(self) -> tuple[str, str]:
        return "model unavailable: editing only", "error"


@dataclass(frozen=True, eq=False, kw_only=True)
class Idle(State):
    """Editing, no run going. ``lens_shown``: the canvas panel shows the lens's findings."""

    lens_shown: bool = False

    def refusal(self, transition: str) -> Refused:
        if self.lm is None and transition in ("ready", "start_lens"):  # a replay, or no load asked for
            return Refused(STILL_LOADING)
        return Refused("No run is going: mark spans and press ctrl+g to start one.")

    def ready(self) -> Engine:
        if self.lm is None:
            self._no("ready")
        return self.lm

    def start_run(self, job: Job) -> Running:
        return Running(lm=self.lm, job=job)  # a replay runs without a model

    def start_lens(self, job: Job) -> Lensing:
        self.ready()
        return Lensing(lm=self.lm, job=job)

    def lens_off(self) -> Idle:
        return Idle(lm=self.lm)


@dataclass(frozen=True, eq=False, kw_only=True)
class Busy(State):
    """A run (or the lens) holds the document: read-only until it ends."""

    job: Job

    def owns(self, job: Job) -> bool:
        return job is self.job

    def cancel(self) -> Idle:
        return Idle(lm=self.lm)

    def fail(self) -> Idle:
        return Idle(lm=self.lm)


@dataclass(frozen=True, eq=False, kw_only=True)
class Running(Busy):
    """A run is denoising. ``pending``: its newest step, not painted yet; ``shown``: the
    step on screen."""

    mode: ClassVar[Mode] = Mode.RUNNING
    layout: Layout | None = None
    pending: Frame | None = None
    shown: Frame | None = None

    def refusal(self, transition: str) -> Refused:
        return Refused(f"The {self.job.label} is still running: wait for its candidates, or escape cancels it.")

    def status(self) -> tuple[str, str]:
        return f"{self.job.label} · {self.step_label() or 'starting'} · escape cancels", "busy"

    def step_label(self) -> str:
        frame = self.shown
        if frame is None:
            return ""
        rows = len(frame.drafts)
        showing = f" · showing draft 1 of {rows}" if rows > 1 else ""
        return f"step {frame.step}/{frame.max_steps} · window {frame.window + 1}{showing}"

    def started(self, layout: Layout) -> Running:
        return replace(self, layout=layout)

    def step(self, frame: Frame) -> Running:
        return replace(self, pending=frame)

    def painted(self, frame: Frame) -> Running:
        return replace(self, pending=None if self.pending is frame else self.pending, shown=frame)

    def finish(self, frames: list[Frame], choices: list[Choice], stats: dict) -> Reviewing:
        return Reviewing(lm=self.lm, review=Review(self.job, self.layout, frames, choices, stats))


@dataclass(frozen=True, eq=False, kw_only=True)
class Reviewing(State):
    """A finished run's candidates are shown: accept one, or reject them all. The lens may
    score the shown candidate (``lensing``: the lens job going; ``lens_shown``: its
    confidence shown in place of the hunks)."""

    mode: ClassVar[Mode] = Mode.REVIEW
    review: Review
    lensing: Job | None = None
    lens_shown: bool = False

    def refusal(self, transition: str) -> Refused:
        if transition == "start_lens":
            return Refused("No model is loaded, so the lens cannot score this candidate.")
        if transition == "lens_ready":
            return Refused("The lens of the shown candidate was switched off.")
        return Refused("The candidates of the last run are shown: enter accepts one, escape rejects them.")

    def owns(self, job: Job) -> bool:
        return job is self.review.job or job is self.lensing

    def status(self) -> tuple[str, str]:
        rv = self.review
        drawn = f" (draft {rv.row + 1} of the run)" if len(rv.choices) > 1 else ""
        lens = " · lens: scoring…" if self.lensing else " · lens (alt+↑/↓ threshold)" if self.lens_shown else ""
        return (f"candidate {rv.choice + 1}/{len(rv.choices)}{drawn}{lens} · {rv.hunk_label()} · ] [ y n w hunks · "
                "enter all · esc reject · tab next · ←/→ steps", "review")

    def browsed(self) -> Review:
        return self.review

    def start_lens(self, job: Job) -> Reviewing:
        if self.lm is None:  # a replay's review
            self._no("start_lens")
        return replace(self, lensing=job, lens_shown=False)

    def lens_ready(self) -> Reviewing:
        if self.lensing is None:
            self._no("lens_ready")
        return replace(self, lensing=None, lens_shown=True)

    def lens_off(self) -> Reviewing:
        return replace(self, lensing=None, lens_shown=False)

    def accept(self) -> Idle:
        return Idle(lm=self.lm)

    def reject(self) -> Idle:
        return Idle(lm=self.lm)

    def fail(self) -> Idle:
        return Idle(lm=self.lm)


@dataclass(frozen=True, eq=False, kw_only=True)
class Lensing(Busy):
    """The lens is scoring the visible text (it never edits)."""

    mode: ClassVar[Mode] = Mode.LENS

    def refusal(self, transition: str) -> Refused:
        return Refused("The lens is scoring the visible text; escape cancels it.")

    def status(self) -> tuple[str, str]:
        return "lens · scoring the visible text · escape cancels", "busy"

    def lens_ready(self) -> Idle:
        return Idle(lm=self.lm, lens_shown=True)


def first_state(lm: Engine | None, load: bool) -> State:
    """Where a new editor starts: loading its model, or idle (with the model it was given)."""
    return Loading(since=time.monotonic()) if load else Idle(lm=lm)
