"""What the App's action mixins need from it, as a Protocol.

The editor's App (:class:`dgterm.tui.app.DgtermApp`) is one Textual App built from
mixins (``dgterm.tui.actions``), each a group of actions and message handlers. Each
mixin derives from :data:`Host`: for the type checker that is :class:`EditorHost` plus
Textual's App, so a mixin may use exactly what is declared here and in Textual; at run
time it is ``object``, and the App supplies the members (the type checker refuses to build
an App that lacks one of the methods).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from textual.app import App

    from dgterm.config import Settings
    from dgterm.editor import Document
    from dgterm.editor.spans import Span
    from dgterm.engine.args import EngineArgs
    from dgterm.engine.backend import Engine
    from dgterm.engine.output.frames import DraftToken
    from dgterm.engine.params import SamplerParams
    from dgterm.tui.job import Job
    from dgterm.tui.keymap import Mode
    from dgterm.tui.lifecycle import Reviewing, State
    from dgterm.tui.review import Review
    from dgterm.tui.widgets.canvas import CanvasPanel
    from dgterm.tui.widgets.editor import EditorView

P = ParamSpec("P")
T = TypeVar("T")


class EditorHost(Protocol):
    """The editor's own members of the App, which the mixins use."""

    doc: Document
    engine_args: EngineArgs
    settings: Settings
    candidates: int
    trace_path: str | None
    replay_path: str | None
    replay_delay: float
    replay_until: int | None
    keymap_overrides: dict[str, str]
    doubt_below: float  # the doubt threshold (dgterm.tui.actions.doubt)

    @property
    def lifecycle(self) -> State: ...  # the one run state (a reactive), moved by the states' transitions

    @lifecycle.setter
    def lifecycle(self, state: State) -> None: ...

    @property
    def editor(self) -> EditorView: ...

    @property
    def canvas(self) -> CanvasPanel: ...

    @property
    def lm(self) -> Engine | None: ...

    @property
    def mode(self) -> Mode: ...  # read off the lifecycle

    @property
    def job(self) -> Job | None: ...  # the run going or under review

    @property
    def review(self) -> Review | None: ...

    def allowed(self, ask: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None: ...

    def apply(self, transition: Callable[P, State], *args: P.args, **kwargs: P.kwargs) -> bool: ...

    def refresh_status(self) -> None: ...

    def refresh_file(self) -> None: ...

    def repaint(self) -> None: ...

    # across the mixins
    def file_name(self) -> str: ...

    def spans_changed(self) -> None: ...

    def refresh_spans(self) -> None: ...

    def token_count(self, span: Span) -> int | None: ...

    def span_at(self, offset: int) -> Span | None: ...

    def target_span(self) -> Span | None: ...

    def sampler_params(self, lm: Engine) -> SamplerParams | None: ...

    def start_job(self, job: Job, create: bool = False) -> None: ...

    def show_review(self) -> None: ...

    def end_run(self, job: Job | None, restore: bool) -> None: ...

    def accept_shown(self, keep_spans: bool) -> list[int]: ...

    def unmark_own_span(self, rv: Review) -> None: ...

    def run_job_worker(self, job: Job, lm: Engine | None) -> Any: ...  # a Textual worker

    def toggle_draft_lens(self, state: Reviewing) -> None: ...

    def draft_lens_view(self, rv: Review) -> dict[int, list[DraftToken]] | None: ...

    def draft_lens_ended(self, job: Job) -> bool: ...

    def draft_lens_scores(self) -> list: ...

    def draft_lens_ready(self, job: Job, scores: list) -> None: ...

    def action_cancel(self) -> None: ...

    def action_lens(self) -> None: ...

    def fit_canvas(self, width: int) -> None: ...


if TYPE_CHECKING:
    class Host(EditorHost, App[None]):
        """What a mixin is, to the type checker."""
else:
    Host = object
