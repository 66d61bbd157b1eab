"""The language server: pygls over stdio, one engine in one thread, one run at a time per document.

``initialize`` answers at once; the model loads in the engine's thread after ``initialized``,
and every run waits for it there (so runs for different documents queue in order). A new run
for a document cancels the one running there (newest wins: a client asks again as the user
types); the cancelled request answers ``RequestCancelled``. ``$/cancelRequest`` and
``window/workDoneProgress/cancel`` set the run's cancel event, which the engine checks between
steps. The server never writes a file: edits go to the client through ``workspace/applyEdit``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.workspace import TextDocument

from dgterm import __version__
from dgterm.errors import DgtermError, InputError
from dgterm.lsp import positions
from dgterm.lsp.progress import Cancel, Progress
from dgterm.lsp.settings import Options, options

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine
    from dgterm.engine.params import SamplerParams
    from dgterm.engine.tasks.task import TaskResult

REQUEST_FAILED = types.LSPErrorCodes.RequestFailed.value
NOT_INITIALIZED = InputError("The server has not been initialized; send initialize and initialized first.")
Start = Callable[["Engine", "SamplerParams", Cancel], Any]  # (engine, params, cancel) -> a Task


def failed(error: DgtermError) -> JsonRpcException:
    """A user's error as the LSP error a client shows: the CLI's sentence, code RequestFailed."""
    return JsonRpcException(str(error), code=REQUEST_FAILED)


class Protocol(LanguageServerProtocol):
    """pygls's protocol with our position-encoding preference and cancellation of running steps."""

    _server: DgtermServer

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        positions.prefer(params.capabilities)
        self._server.init_options = params.initialization_options
        return (yield from super().lsp_initialize(params))

    def _handle_cancel_notification(self, msg_id):
        self._server.cancel_request(msg_id)
        super()._handle_cancel_notification(msg_id)

    def request_id(self):
        """The id of the request being handled (pygls keeps it in a context variable)."""
        return self._ctx_msg_id.get(None)


class DgtermServer(LanguageServer):
    protocol: Protocol

    def __init__(self, flags: argparse.Namespace):
        super().__init__("dgterm", __version__, protocol_cls=Protocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.flags = flags
        self.engine_thread = ThreadPoolExecutor(1, thread_name_prefix="dgterm-engine")
        self.loaded: Future | None = None  # (engine, sampler params), or the one-sentence error
        self.init_options: object = None  # the client's initializationOptions
        self.options: Options | None = None
        self.running: dict[str, Cancel] = {}  # document uri -> the cancel event of its run
        self.requests: dict[Any, Cancel] = {}  # request id -> the cancel event of its run

    # ---------------------------------------------------------------- the engine

    def start_loading(self) -> None:
        """Read the settings now and load the model in the engine's thread (initialize has answered)."""
        try:
            self.options = options(self.flags, self.init_options)
        except DgtermError as e:
            self.loaded = Future()
            self.loaded.set_exception(e)
            self.show(str(e), types.MessageType.Error)
            return
        engine_args = self.options.engine_args

        def load():
            lm = engine_args.load()
            return lm, engine_args.sampler_params(lm)

        loop = asyncio.get_running_loop()

        def said_if_failed(future: Future) -> None:
            error = future.exception()
            if error is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self.show, _load_failure(error), types.MessageType.Error)

        self.loaded = self.engine_thread.submit(load)
        self.loaded.add_done_callback(said_if_failed)

    @property
    def settings(self) -> Options:
        """The settings, or the error that says why there are none."""
        if self.options is None:
            error = self.loaded.exception() if self.loaded is not None else None
            raise JsonRpcException(_load_failure(error or NOT_INITIALIZED), code=REQUEST_FAILED)
        return self.options

    async def engine(self) -> tuple[Engine, SamplerParams]:
        if self.loaded is None:
            raise failed(NOT_INITIALIZED)
        try:
            return await asyncio.wrap_future(self.loaded)
        except Exception as e:  # noqa: BLE001 - a broken checkpoint is still one sentence
            raise JsonRpcException(_load_failure(e), code=REQUEST_FAILED) from None

    # ---------------------------------------------------------------- runs

    def cancel_all(self) -> None:
        """At shutdown: every run stops within a step."""
        for cancel in self.running.values():
            cancel.set()

    def cancel_request(self, msg_id) -> None:
        if (cancel := self.requests.get(msg_id)) is not None:
            cancel.set()

    async def run(self, uri: str, token: types.ProgressToken | None, title: str, start: Start,
                  create_progress: bool = True) -> TaskResult:
        """Run the task ``start`` makes in the engine's thread, with progress on ``token`` (or, with
        ``create_progress``, on one of the server's); the ranked result."""
        lm, params = await self.engine()
        if (previous := self.running.get(uri)) is not None:
            previous.replaced = True  # newest wins
            previous.set()
        cancel = Cancel()
        self.running[uri] = cancel
        request = self.protocol.request_id()
        self.requests[request] = cancel
        try:
            progress = await Progress.begin(self, token, title, cancel, create_progress)
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self.engine_thread, drive, start, lm, params, cancel, progress)
            try:
                result = await asyncio.shield(work)
            except asyncio.CancelledError:
                cancel.set()
                await work  # the engine stops within a step; the next run must not start before
                self.said_cancelled(progress, cancel)
                raise
            except DgtermError as e:
                progress.end(str(e))
                raise failed(e) from None
        finally:
            if self.running.get(uri) is cancel:
                del self.running[uri]
            self.requests.pop(request, None)
        if result.run.cancelled:
            raise JsonRpcRequestCancelled(self.said_cancelled(progress, cancel))
        progress.end(f"Done: {len(result.candidates)} candidates.")
        return result

    def said_cancelled(self, progress: Progress, cancel: Cancel) -> str:
        """End the progress of a cancelled run; the log says how many steps ran after the cancel."""
        step, steps = progress.last
        message = f"Cancelled at step {step}/{steps}" + (
            ": a newer request for this document replaced it." if cancel.replaced else ".")
        progress.end(message)
        said = f"dgterm: cancel asked after {cancel.asked_at} steps, stopped after {progress.done}"
        self.window_log_message(types.LogMessageParams(types.MessageType.Log, said))
        return message

    # ---------------------------------------------------------------- documents and messages

    def document(self, uri: str) -> TextDocument:
        """An open document (the server never reads files from disk)."""
        if uri not in self.workspace.text_documents:
            raise failed(InputError(f"{uri} is not open; open it (textDocument/didOpen) first."))
        return self.workspace.get_text_document(uri)

    def lines(self, text: str) -> positions.Lines:
        return positions.Lines(text, self.workspace.position_encoding or positions.UTF16)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(kind, message))


def _load_failure(error: BaseException) -> str:
    if isinstance(error, DgtermError):
        return str(error)
    return f"The model could not be loaded ({type(error).__name__}: {error}); check the checkpoint."


def drive(start: Start, lm, params, cancel: Cancel, progress: Progress) -> TaskResult:
    """In the engine's thread: make the task, run it step by step with progress, return its result."""
    from dgterm.engine.local.oom import as_out_of_memory

    try:
        task = start(lm, params, cancel)
        for event in task:
            progress.step(event, task)
    except (RuntimeError, MemoryError) as e:  # torch's out of memory is a RuntimeError
        memory = as_out_of_memory(e)
        if memory is None:
            raise
        raise memory from None
    return task.result
