"""Run a task's step loop in a worker thread and follow it from the main thread.

The main thread only waits, draws and listens: Ctrl-C raises KeyboardInterrupt there
(never inside a model forward), which sets the task's cancel event; the engine stops
before its next decoder forward and the worker ends on its own.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from dgterm.repl.render import STATUS, LiveRegion, canvas_text, status_text

T = TypeVar("T")


class RunThread(threading.Thread):
    """Iterates the task, keeping every event (for /trace) and the newest (for drawing)."""

    def __init__(self, task, events: list | None = None):
        super().__init__(daemon=True, name="dgterm-denoise")
        self.task = task
        self.events = [] if events is None else events
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self):
        try:
            for event in self.task:
                self.events.append(event)
        except BaseException as e:  # handed to the main thread, which reports it
            self.error = e
        finally:
            self.done.set()


def follow(worker: RunThread, cancel: threading.Event, console: Console, live: bool, fps: float = 15.0) -> None:
    """Start ``worker`` and wait for its task's end (or until Ctrl-C cancels it), drawing the
    canvas if ``live``. Afterwards ``task.result`` is set unless ``worker.error`` is."""
    task = worker.task
    region = LiveRegion(console, fps) if live else None
    max_canvases = task.params.max_canvases(task.lm.canvas_length)
    drawn = None
    worker.start()
    try:
        if region:
            compiling = " (a new shape's first step compiles: up to minutes on a CPU)" if getattr(
                task.lm, "compile", False) else ""
            region.draw(Text(""), Text(f"encoding the prompt…{compiling} · Ctrl-C cancels", STATUS))
        while True:
            try:
                while not worker.done.wait(region.interval if region else 0.1):
                    latest = worker.events[-1] if worker.events else None
                    if region and latest is not drawn:
                        drawn = latest
                        region.draw(_draft_text(task, latest), status_text(latest, max_canvases))
                break
            except KeyboardInterrupt:
                cancel.set()
                if region:
                    region.draw(Text(""), Text("cancelling…", STATUS))
        result = task.result
        if region and result is not None and result.candidates and worker.events:
            row = result.best.row  # the canvas ends on the draft that is printed: the one ranked first
            region.draw(_draft_text(task, worker.events[-1], row), status_text(worker.events[-1], max_canvases, row))
    finally:
        if not worker.done.is_set():  # something escaped the loop: never leave a run behind
            cancel.set()
            _join(worker)
        if region:
            region.clear()


def in_background(work: Callable[[], T]) -> T:
    """``work()`` in a daemon thread, waited for here so that Ctrl-C interrupts the wait at
    once (a long call in C, like loading torch, holds a KeyboardInterrupt in the main thread
    until it returns). Returns what it returned or raises what it raised; on Ctrl-C the
    thread is left to finish on its own and its result is dropped."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as e:  # handed to the caller
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True, name="dgterm-load")
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _join(worker: RunThread) -> None:
    while True:
        try:
            worker.done.wait()
            return
        except KeyboardInterrupt:
            continue


def _draft_text(task, event, row: int = 0) -> Text:
    """The live draft of candidate ``row``: the generated text, or (a refine) every redrawn run in order."""
    return canvas_text([token for span in task.drafts(event, row) for token in span])


@contextmanager
def no_echo(stream=None):
    """Do not echo typed keys while the REPL is away from the prompt (loading, denoising):
    an echo moves the cursor under the live canvas and breaks the redraw. The keys stay
    buffered for the next prompt as they were typed (not canonical, so a Ctrl-D is a key
    the prompt reads, not an end of a line nobody reads), and Ctrl-C still interrupts."""
    stream = stream or sys.stdin
    try:
        import termios

        fd = stream.fileno()
        saved = termios.tcgetattr(fd) if stream.isatty() else None
    except (ImportError, OSError, ValueError, AttributeError):
        saved = None
    if saved is None:
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)  # not canonical: Ctrl-D stays a key for the prompt
    termios.tcsetattr(fd, termios.TCSANOW, quiet)  # TCSANOW: keep what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
