"""Typed messages the workers post to the app. Workers only ever post these; the app
paints in their handlers, on the UI thread. Dataclasses (Textual's Message supports
them); compared by identity, as messages are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine
    from dgterm.engine.output.frames import Choice, Frame, Layout
    from dgterm.engine.tasks.lens import LensToken
    from dgterm.tui.job import Job


@dataclass(eq=False)
class ModelLoaded(Message):
    lm: Engine


@dataclass(eq=False)
class ModelFailed(Message):
    reason: str


@dataclass(eq=False)
class RunStarted(Message):
    job: Job
    layout: Layout


@dataclass(eq=False)
class StepMessage(Message):
    """One denoising step. A burst collapses to the newest: the UI never falls behind."""

    job: Job
    frame: Frame

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepMessage) and message.job is self.job


@dataclass(eq=False)
class RunFinished(Message):
    job: Job
    frames: list[Frame]
    choices: list[Choice]
    stats: dict


@dataclass(eq=False)
class RunCancelled(Message):
    job: Job


@dataclass(eq=False)
class RunFailed(Message):
    job: Job
    reason: str
    notice: bool = False  # an outcome to say plainly, not an error (a refine with nothing under the threshold)


@dataclass(eq=False)
class LensReady(Message):
    job: Job
    scores: list[LensToken]


@dataclass(eq=False)
class ReviewReady(Message):
    """A finished run is shown for review (tests and the benchmark wait for this)."""
