"""`dgterm lsp` through a real LSP client: capabilities, documents, inline completion, the
rewrite code action and its applyEdit, live progress, cancellation, errors, shutdown."""

from __future__ import annotations

import asyncio
import re

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp.conftest import CAPABILITIES, FAST, apply_utf16, start, utf16_offset

pytestmark = pytest.mark.asyncio(loop_scope="module")

# emoji (two UTF-16 units, four UTF-8 bytes), CJK and accents before and after the edits
TEXT = ("# 😀 café 中文 — notes 🎉\n"
        "def add(a, b):\n"
        "    return a + b  # 加 ✓\n"
        "\n"
        "print(add(1, 2))  # 🎉 done\n")


def doc(name: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(f"file:///tmp/dgterm-lsp/{name}")


def open_doc(client, name: str, text: str = TEXT, version: int = 1) -> types.TextDocumentIdentifier:
    ident = doc(name)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=ident.uri, language_id="python", version=version, text=text)))
    return ident


async def wait_for(predicate, seconds: float = 60):
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


def steps(reports) -> list[int]:
    return [int(m.group(1)) for r in reports if isinstance(r, types.WorkDoneProgressReport)
            and (m := re.search(r"step (\d+)/\d+", r.message or ""))]


async def test_initialize_says_what_the_server_offers(lsp):
    caps = lsp.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert types.CodeActionKind.RefactorRewrite in caps.code_action_provider.code_action_kinds
    assert {"dgterm.rewrite", "dgterm.fill"} <= set(caps.execute_command_provider.commands)
    assert caps.position_encoding == types.PositionEncodingKind.Utf16  # the client offered none
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Full
    assert lsp.init_result.server_info.name == "dgterm"


async def test_inline_completion_inserts_at_the_cursor_only(lsp):
    ident = open_doc(lsp, "inline.py", "placeholder\n")
    lsp.text_document_did_change(types.DidChangeTextDocumentParams(  # what it completes is the changed text
        types.VersionedTextDocumentIdentifier(version=2, uri=ident.uri),
        [types.TextDocumentContentChangeWholeDocument(TEXT)]))
    at = types.Position(4, len("print(add(1, 2))  # 🎉".encode("utf-16-le")) // 2)  # after the emoji
    lsp.progress_reports["inline"] = []
    result = await lsp.text_document_inline_completion_async(types.InlineCompletionParams(
        types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked), ident, at,
        work_done_token="inline"))
    assert len(result.items) >= 2  # one per length searched (4 lengths, one candidate each), repeats dropped
    assert len({item.insert_text for item in result.items}) == len(result.items)
    cut = utf16_offset(TEXT, at)
    assert TEXT[:cut].endswith("🎉")
    for item in result.items:
        assert item.range == types.Range(at, at)
        new = apply_utf16(TEXT, item.range, item.insert_text)
        assert new.encode()[: len(TEXT[:cut].encode())] == TEXT[:cut].encode()
        assert new.encode().endswith(TEXT[cut:].encode())
    assert steps(lsp.progress_reports["inline"])  # the client's token got the live steps


async def test_rewrite_code_action_applies_one_edit_of_the_selection(lsp):
    ident = open_doc(lsp, "rewrite.py")
    line = "    return a + b  # 加 ✓"
    selection = types.Range(types.Position(2, 4), types.Position(2, line.index("#")))  # "return a + b  "
    actions = await lsp.text_document_code_action_async(types.CodeActionParams(
        ident, selection, types.CodeActionContext(diagnostics=[])))
    (action,) = actions
    assert action.title == "Rewrite with diffusion" and action.kind == types.CodeActionKind.RefactorRewrite
    lsp.edits.clear()
    known = set(lsp.progress_reports)
    answer = await lsp.workspace_execute_command_async(types.ExecuteCommandParams(
        action.command.command, action.command.arguments))
    assert answer["applied"] is True
    (params,) = lsp.edits
    (change,) = params.edit.document_changes
    assert change.text_document.uri == ident.uri and change.text_document.version == 1
    (edit,) = change.edits
    assert edit.range == selection
    assert edit.new_text == answer["candidates"][0][0]  # the best candidate
    new = apply_utf16(TEXT, edit.range, edit.new_text)
    head, tail = TEXT[: utf16_offset(TEXT, selection.start)], TEXT[utf16_offset(TEXT, selection.end) :]
    assert tail.startswith("# 加 ✓\n")
    assert new.encode().startswith(head.encode()) and new.encode().endswith(tail.encode())
    # live progress on a token the server created: begin, step 1..N in order, end
    (token,) = set(lsp.progress_reports) - known
    reports = lsp.progress_reports[token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert steps(reports) == list(range(1, len(steps(reports)) + 1)) and 1 <= len(steps(reports)) <= 4
    assert isinstance(reports[-1], types.WorkDoneProgressEnd) and reports[-1].message.startswith("Done")


async def test_rewrite_to_an_instruction_on_a_chat_checkpoint(lsp):
    """The bundled checkpoint has a chat template: [uri, range, instruction] runs the rewrite task."""
    ident = open_doc(lsp, "instruction.py")
    selection = types.Range(types.Position(2, 4), types.Position(2, 16))
    lsp.edits.clear()
    answer = await lsp.workspace_execute_command_async(types.ExecuteCommandParams(
        "dgterm.rewrite", [ident.uri, {"start": {"line": 2, "character": 4}, "end": {"line": 2, "character": 16}},
                           "make it shorter"]))
    assert answer["applied"] is True
    (edit,) = lsp.edits[0].edit.document_changes[0].edits
    assert edit.range == selection
    new = apply_utf16(TEXT, edit.range, edit.new_text)
    assert new.startswith(TEXT[: utf16_offset(TEXT, selection.start)])
    assert new.endswith(TEXT[utf16_offset(TEXT, selection.end) :])


@pytest.mark.parametrize("how", ["request", "progress"])
async def test_a_cancel_stops_the_run_within_one_step(lsp, how):
    # 12 insertion points a canvas apart: 12 windows of 4 steps, far more than the cancel lets run
    text = "".join(f"def f{i}():\n    return {i}\n" + "# padding line of prose\n" * 60 for i in range(12))
    ident = open_doc(lsp, f"cancel-{how}.py", text)
    points = [{"start": {"line": 62 * i + 1, "character": 4}, "end": {"line": 62 * i + 1, "character": 4}}
              for i in range(12)]
    known, logged = set(lsp.progress_reports), len(lsp.log_messages)
    lsp.edits.clear()
    request = asyncio.ensure_future(lsp.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams("dgterm.fill", [ident.uri, points]),
        msg_id=f"fill-{how}"))
    await wait_for(lambda: any(steps(lsp.progress_reports[t]) for t in set(lsp.progress_reports) - known))
    (token,) = set(lsp.progress_reports) - known
    if how == "request":
        lsp.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=f"fill-{how}"))
    else:
        lsp.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token))
    with pytest.raises(JsonRpcException, match="[Cc]ancel"):
        await request
    await wait_for(lambda: isinstance(lsp.progress_reports[token][-1], types.WorkDoneProgressEnd))
    assert lsp.progress_reports[token][-1].message.startswith("Cancelled at step")
    await wait_for(lambda: any("cancel asked" in m.message for m in lsp.log_messages[logged:]))
    said = next(m.message for m in lsp.log_messages[logged:] if "cancel asked" in m.message)
    asked, stopped = map(int, re.search(r"after (\d+) steps, stopped after (\d+)", said).groups())
    assert stopped - asked <= 1 and stopped < 12 * 4
    assert lsp.edits == []  # nothing applied


async def test_a_newer_request_for_the_document_replaces_the_running_one(lsp):
    ident = open_doc(lsp, "twice.py")
    params = types.InlineCompletionParams(types.InlineCompletionContext(types.InlineCompletionTriggerKind.Automatic),
                                          ident, types.Position(2, 8), work_done_token="first")
    lsp.progress_reports["first"] = []
    first = asyncio.ensure_future(lsp.text_document_inline_completion_async(params))
    await wait_for(lambda: steps(lsp.progress_reports["first"]))  # running
    second = await lsp.text_document_inline_completion_async(types.InlineCompletionParams(
        params.context, ident, types.Position(2, 9)))
    with pytest.raises(JsonRpcException, match="a newer request for this document replaced it") as e:
        await first
    assert e.value.code == types.LSPErrorCodes.RequestCancelled
    assert second.items and all(item.range.start == types.Position(2, 9) for item in second.items)


async def test_bad_requests_get_one_sentence_and_the_server_keeps_serving(lsp):
    ident = open_doc(lsp, "bad.py")
    context = types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked)
    with pytest.raises(JsonRpcException, match="is not open; open it") as e:
        await lsp.text_document_inline_completion_async(types.InlineCompletionParams(
            context, doc("never-opened.py"), types.Position(0, 0)))
    assert e.value.code == types.LSPErrorCodes.RequestFailed
    with pytest.raises(JsonRpcException, match=r"Position 99:0 is outside the document \(6 lines\)"):
        await lsp.text_document_inline_completion_async(types.InlineCompletionParams(
            context, ident, types.Position(99, 0)))
    with pytest.raises(JsonRpcException, match="dgterm.fill takes"):
        await lsp.workspace_execute_command_async(types.ExecuteCommandParams("dgterm.fill", [ident.uri, []]))
    overlapping = [{"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 8}},
                   {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 10}}]
    with pytest.raises(JsonRpcException, match="overlap; give disjoint spans"):
        await lsp.workspace_execute_command_async(types.ExecuteCommandParams("dgterm.fill", [ident.uri, overlapping]))
    assert any("overlap" in m.message and m.type == types.MessageType.Error for m in lsp.messages)
    still = await lsp.text_document_code_action_async(types.CodeActionParams(
        ident, types.Range(types.Position(1, 0), types.Position(1, 3)), types.CodeActionContext(diagnostics=[])))
    assert len(still) == 1


@pytest.mark.slow
async def test_a_remote_engine_with_the_server_flag(tmp_path):
    """`--server URL` (the vLLM stand-in on the bundled tokenizer): no model in the language server."""
    from transformers import AutoTokenizer

    from dgterm.engine.local.checkpoint import bundled_dir
    from tests.helpers.vllm_standin import Running, StandIn

    running = Running(StandIn(AutoTokenizer.from_pretrained(bundled_dir()), api_key="k"))
    client = await start(tmp_path, FAST, CAPABILITIES, "--server", running.url, env={"DGTERM_API_KEY": "k"})
    try:
        ident = open_doc(client, "remote.py")
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            ident, types.Range(types.Position(2, 4), types.Position(2, 16)), types.CodeActionContext(diagnostics=[])))
        answer = await client.workspace_execute_command_async(types.ExecuteCommandParams(
            actions[0].command.command, actions[0].command.arguments))
        assert answer["applied"] is True
        (edit,) = client.edits[0].edit.document_changes[0].edits
        assert edit.range == types.Range(types.Position(2, 4), types.Position(2, 16))
        assert running.standin.requests  # the runs went to the server
    finally:
        await asyncio.wait_for(client.shutdown_session(), 30)
        await client.stop()
        running.stop()


async def test_bad_settings_are_shown_and_answered_and_shutdown_exits(tmp_path):
    offered = types.ClientCapabilities(general=types.GeneralClientCapabilities(
        position_encodings=[types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8]))
    client = await start(tmp_path, {"steps": 4}, offered)
    try:
        assert client.init_result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
        await wait_for(lambda: client.messages)
        (shown,) = client.messages
        assert shown.type == types.MessageType.Error
        assert shown.message.startswith("initializationOptions has unknown setting(s) steps; remove them")
        ident = open_doc(client, "x.py")
        with pytest.raises(JsonRpcException) as e:
            await client.text_document_inline_completion_async(types.InlineCompletionParams(
                types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked), ident, types.Position(0, 0)))
        assert e.value.message == shown.message  # the same sentence, no traceback
    finally:
        await asyncio.wait_for(client.shutdown_session(), 30)
        await client.stop()
    assert client._server.returncode == 0
