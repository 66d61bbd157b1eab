"""What the server offers: inline completion at the cursor, code actions on a selection, and
the commands behind them, whose edits go to the client through ``workspace/applyEdit``.

Commands (``workspace/executeCommand``; a client may call them directly):

- ``dgterm.rewrite`` ``[uri, range]``: the selection infilled from both sides with a length
  search (half to twice its tokens, ranked), the best applied; ``[uri, range, instruction]``
  asks a chat checkpoint to rewrite it to the instruction instead.
- ``dgterm.fill`` ``[uri, [range, ...]]``: several marked spans filled together in one run
  (an empty range is an insertion point), the best candidate applied.

A code action is one entry of :data:`ACTIONS`: "Refine what the model doubts" joins it as
``dgterm.refine`` once the engine has the refine task.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.exceptions import JsonRpcContentModified, JsonRpcException, JsonRpcInvalidParams

from dgterm.errors import InputError
from dgterm.lsp.positions import Lines
from dgterm.lsp.server import REQUEST_FAILED, DgtermServer, failed

REWRITE, FILL = "dgterm.rewrite", "dgterm.fill"
ACTIONS = {REWRITE: "Rewrite with diffusion"}  # command -> the title of its code action on a selection
CONVERTER = get_converter()


def register(ls: DgtermServer) -> None:
    ls.feature(types.INITIALIZED)(initialized)
    ls.feature(types.SHUTDOWN)(shutdown)
    ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(inline_completion)
    ls.feature(types.TEXT_DOCUMENT_CODE_ACTION,
               types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]))(code_actions)
    ls.command(REWRITE)(rewrite)
    ls.command(FILL)(fill)


def initialized(ls: DgtermServer, params: types.InitializedParams) -> None:
    ls.start_loading()


def shutdown(ls: DgtermServer, *_: Any) -> None:
    ls.cancel_all()


async def inline_completion(ls: DgtermServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    """Infill at the cursor from both sides, with a length search: one item per distinct draft, best first."""
    from dgterm.engine.params import search_lengths

    doc = ls.document(params.text_document.uri)
    text, version, lines = doc.source, doc.version, ls.lines(doc.source)
    at = _offset(lines, params.position)
    options = ls.settings

    def start(lm, sampler, cancel):
        from dgterm.engine import tasks

        lengths = search_lengths(options.insert_tokens, lm.canvas_length)
        return tasks.infill(lm, text, [tasks.SpanRequest(at, at)], sampler, lengths=lengths, cancel=cancel,
                            candidates=options.engine_args.candidates)

    # progress only on the client's token: a client may ask at every key press
    result = await ls.run(doc.uri, params.work_done_token, "dgterm: infill at the cursor", start, False)
    if doc.version != version:
        raise JsonRpcContentModified("The document changed during the infill; ask again.")
    here = lines.position(at)
    drafts = dict.fromkeys(c.spans[0] for c in result.candidates if c.spans[0])  # ranked, without repeats
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=d, range=types.Range(here, here)) for d in drafts])


def code_actions(ls: DgtermServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri, rng = params.text_document.uri, params.range
    if uri not in ls.workspace.text_documents or rng.start == rng.end:
        return []
    argument = CONVERTER.unstructure(rng)
    return [types.CodeAction(title, kind=types.CodeActionKind.RefactorRewrite,
                             command=types.Command(title=title, command=command, arguments=[uri, argument]))
            for command, title in ACTIONS.items()]


async def rewrite(ls: DgtermServer, *args: Any) -> dict:
    """``[uri, range]`` or ``[uri, range, instruction]``: rewrite the range and apply the best candidate."""
    if len(args) not in (2, 3) or not isinstance(args[0], str) or (len(args) == 3 and not isinstance(args[2], str)):
        raise JsonRpcInvalidParams(f"{REWRITE} takes [uri, range] or [uri, range, instruction].")
    uri, rng = args[0], _range(args[1])
    instruction = args[2].strip() if len(args) == 3 else ""
    doc = ls.document(uri)
    text, lines = doc.source, ls.lines(doc.source)
    a, b = _offsets(lines, rng)
    options = ls.settings

    def start(lm, sampler, cancel):
        from dgterm.engine import tasks
        from dgterm.engine.params import DEFAULT_INSERT_TOKENS, search_lengths
        from dgterm.engine.tasks import chat

        span = tasks.SpanRequest(a, b)
        if instruction:
            return chat.rewrite(lm, text, span, instruction, sampler, candidates=options.engine_args.candidates,
                                cancel=cancel)
        n = len(lm.tokenizer(text[a:b], add_special_tokens=False)["input_ids"]) or DEFAULT_INSERT_TOKENS
        return tasks.infill(lm, text, [span], sampler, lengths=search_lengths(n, lm.canvas_length), cancel=cancel,
                            candidates=options.engine_args.candidates)

    return await _apply_best(ls, doc, [(a, b)], "dgterm: rewrite", start)


async def fill(ls: DgtermServer, *args: Any) -> dict:
    """``[uri, [range, ...]]``: fill every range together and apply the best candidate."""
    if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], list) or not args[1]:
        raise JsonRpcInvalidParams(f"{FILL} takes [uri, [range, ...]] with at least one range.")
    doc = ls.document(args[0])
    text, lines = doc.source, ls.lines(doc.source)
    spans = sorted(_offsets(lines, _range(r)) for r in args[1])
    options = ls.settings

    def start(lm, sampler, cancel):
        from dgterm.engine import tasks

        return tasks.infill(lm, text, [tasks.SpanRequest(a, b) for a, b in spans], sampler, cancel=cancel,
                            candidates=options.engine_args.candidates)

    return await _apply_best(ls, doc, spans, "dgterm: fill the marked spans", start)


async def _apply_best(ls: DgtermServer, doc, spans: list[tuple[int, int]], title: str, start) -> dict:
    """Run, then hand the best candidate's drafts to the client as one edit of the document as it was."""
    version, lines = doc.version, ls.lines(doc.source)
    try:
        result = await ls.run(doc.uri, None, title, start)
        if doc.version != version:
            raise failed(InputError("The document changed during the run, so nothing was applied; run it again."))
    except JsonRpcException as e:
        if e.code == REQUEST_FAILED:  # the user's error: said where the user looks, too
            ls.show(e.message, types.MessageType.Error)
        raise
    edits = [types.TextEdit(lines.range(a, b), draft) for (a, b), draft in zip(spans, result.best.spans)]
    workspace = ls.client_capabilities.workspace
    if workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes:
        edit = types.WorkspaceEdit(document_changes=[
            types.TextDocumentEdit(types.OptionalVersionedTextDocumentIdentifier(doc.uri, version), edits)])
    else:
        edit = types.WorkspaceEdit(changes={doc.uri: edits})
    answer = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit, label=title))
    if not answer.applied:
        ls.show(f"The editor did not apply the edit ({answer.failure_reason or 'no reason given'}); "
                "the document is as it was.", types.MessageType.Warning)
    return {"applied": answer.applied, "candidates": [c.spans for c in result.candidates]}


def _range(value: Any) -> types.Range:
    try:
        return CONVERTER.structure(value, types.Range)
    except Exception:  # noqa: BLE001 - cattrs raises several kinds; all mean a malformed range
        raise JsonRpcInvalidParams(f"{value!r} is not a range ({{start: {{line, character}}, end: ...}}).") from None


def _offset(lines: Lines, position: types.Position) -> int:
    try:
        return lines.offset(position)
    except InputError as e:
        raise failed(e) from None


def _offsets(lines: Lines, rng: types.Range) -> tuple[int, int]:
    try:
        return lines.range_offsets(rng)
    except InputError as e:
        raise failed(e) from None

