"""`dgterm lsp` as a subprocess, driven by pytest-lsp's client (pygls) on the bundled model."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Union

import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

ROOT = Path(__file__).resolve().parents[2]
# short runs: 4 steps, one candidate per length, an inline search around 4 tokens
FAST = {"sampler": {"steps": 4}, "candidates": 1, "insert_tokens": 4}
CAPABILITIES = types.ClientCapabilities(
    window=types.WindowClientCapabilities(work_done_progress=True),
    workspace=types.WorkspaceClientCapabilities(
        apply_edit=True, workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True)),
    text_document=types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities(),
        code_action=types.CodeActionClientCapabilities()),
)  # no positionEncodings offered: UTF-16, the protocol's default and the hardest


def tell_actions_from_commands(converter: Any) -> None:
    """lsprotocol's client takes any object with a "command" field for a Command, so a
    CodeAction that carries a command comes back mangled; tell them apart by the field's type."""
    def structure(value: Any, _) -> types.Command | types.CodeAction:
        kind = types.Command if isinstance(value.get("command"), str) else types.CodeAction
        return converter.structure(value, kind)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], structure)  # noqa: UP007 - lsprotocol's key


async def start(tmp: Path, init: object = None, capabilities: types.ClientCapabilities = CAPABILITIES,
                *flags: str, env: dict | None = None) -> LanguageClient:
    """A client connected to a fresh `dgterm lsp --seed 1` (isolated config), initialized."""
    client = make_test_lsp_client()
    tell_actions_from_commands(client.protocol._converter)
    client.edits = []  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        client.edits.append(params)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    environ = {k: v for k, v in os.environ.items() if not k.startswith("DGTERM_")}
    environ.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", DGTERM_CONFIG=str(tmp / "config.toml"),
                   DGTERM_STATE_DIR=str(tmp / "state"), **(env or {}))
    await client.start_io(sys.executable, "-m", "dgterm.cli", "lsp", "--seed", "1", *flags, env=environ)
    began = time.monotonic()
    client.init_result = await client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(capabilities=capabilities, initialization_options=init))
    client.init_seconds = time.monotonic() - began  # type: ignore[attr-defined]
    return client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory):
    """One server for the module: the bundled model loads once."""
    client = await start(tmp_path_factory.mktemp("lsp"), FAST)
    yield client
    await client.shutdown_session()
    await client.stop()


def utf16_offset(text: str, position: types.Position) -> int:
    """The test's own reading of a UTF-16 position (lines split on \\n only, as the texts here)."""
    lines = text.split("\n")
    line = lines[position.line].encode("utf-16-le")[: 2 * position.character].decode("utf-16-le")
    return sum(len(x) + 1 for x in lines[: position.line]) + len(line)


def apply_utf16(text: str, rng: types.Range, new: str) -> str:
    return text[: utf16_offset(text, rng.start)] + new + text[utf16_offset(text, rng.end) :]
