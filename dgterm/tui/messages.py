"""Typed messages the workers post to the app. Workers only ever post these; the app
paints in their handlers, on the UI thread."""

from __future__ import annotations

from textual.message import Message


class ModelLoaded(Message):
    def __init__(self, lm) -> None:
        super().__init__()
        self.lm = lm


class ModelFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class RunStarted(Message):
    def __init__(self, job, layout) -> None:
        super().__init__()
        self.job, self.layout = job, layout


class StepMessage(Message):
    """One denoising step. A burst collapses to the newest: the UI never falls behind."""

    def __init__(self, job, frame) -> None:
        super().__init__()
        self.job, self.frame = job, frame

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepMessage) and message.job is self.job


class RunFinished(Message):
    def __init__(self, job, frames: list, choices: list, stats: dict) -> None:
        super().__init__()
        self.job, self.frames, self.choices, self.stats = job, frames, choices, stats


class RunCancelled(Message):
    def __init__(self, job) -> None:
        super().__init__()
        self.job = job


class RunFailed(Message):
    def __init__(self, job, reason: str) -> None:
        super().__init__()
        self.job, self.reason = job, reason


class LensReady(Message):
    def __init__(self, job, scores: list) -> None:
        super().__init__()
        self.job, self.scores = job, scores


class ReviewReady(Message):
    """A finished run is shown for review (tests and the benchmark wait for this)."""
