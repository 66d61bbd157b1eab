"""Live progress of a run as ``$/progress``: step k/N and the current draft, from the engine's thread.

The token is the one the request brought (``workDoneToken``) or, when the client can show
progress, one the server creates (``window/workDoneProgress/create``). Cancelling it
(``window/workDoneProgress/cancel``) sets the run's cancel event, which the engine checks
between steps.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from dgterm.engine.events import StepEvent

DRAFT_CHARS = 160  # the draft shown in a progress message, at most (editors show one line)


class Cancel(threading.Event):
    """A run's cancel event (the engine checks it between steps) that remembers how many steps
    had been reported when it was set, so the server can say how soon the run stopped."""

    def __init__(self):
        super().__init__()
        self.progress: Progress | None = None
        self.asked_at: int | None = None
        self.replaced = False  # set by a newer run for the same document

    def set(self) -> None:
        if not self.is_set() and self.progress is not None:
            self.asked_at = self.progress.done
        super().set()


class Progress:
    """One run's progress, or nothing at all when the client cannot show it."""

    def __init__(self, ls: LanguageServer, token: types.ProgressToken | None):
        self.ls, self.token = ls, token
        self.loop = asyncio.get_running_loop()
        self.last = (0, 0)  # the step and the steps of the window of the last report
        self.done = 0  # steps reported in all (every window, from the engine's thread)

    @classmethod
    async def begin(cls, ls: LanguageServer, token: types.ProgressToken | None, title: str, cancel: Cancel,
                    create: bool = True) -> Progress:
        """Progress on ``token``, else (with ``create``, when the client can show it) on a token of our own."""
        window = ls.client_capabilities.window
        if token is None and create and window is not None and window.work_done_progress:
            token = f"dgterm-{uuid.uuid4()}"
            await ls.work_done_progress.create_async(token)
        progress = cancel.progress = cls(ls, token)
        if token is not None:
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title, cancellable=True, percentage=0))
            ls.work_done_progress.tokens[token].add_done_callback(lambda _: cancel.set())
        return progress

    def step(self, event: StepEvent, task: Any) -> None:
        """Called in the engine's thread for each step of ``task``; shows the first row's draft."""
        self.last, self.done = (event.step, event.max_steps), self.done + 1
        if self.token is None:
            return
        draft = " … ".join("".join(t.text for t in span) for span in task.drafts(event))
        draft = draft.replace("\r", "").replace("\n", "⏎")
        canvas = f"canvas {event.window + 1}, " if event.window else ""
        message = f"{canvas}step {event.step}/{event.max_steps}: {draft[:DRAFT_CHARS]}"
        report = types.WorkDoneProgressReport(message=message, cancellable=True,
                                              percentage=min(100, 100 * event.step // max(event.max_steps, 1)))
        self.loop.call_soon_threadsafe(self.ls.work_done_progress.report, self.token, report)

    def end(self, message: str) -> None:
        if self.token is None:
            return
        self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(self.token, None)
