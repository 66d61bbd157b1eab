"""Rules of the house that a test can check: lazy torch, UI-free core, one entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["dgterm", "dgterm.cli", "dgterm.engine", "dgterm.editor", "dgterm.config",
                                    "dgterm.editor.structure", "dgterm.commands.bench"])
def test_import_loads_no_torch(module):
    assert "torch" not in _modules_after_import(module)


@pytest.mark.parametrize(
    "module",
    ["dgterm.engine", "dgterm.engine.tasks", "dgterm.engine.denoise", "dgterm.engine.loading",
     "dgterm.engine.train", "dgterm.engine.remote", "dgterm.engine.remote_run", "dgterm.engine.batch",
     "dgterm.server.app", "dgterm.editor", "dgterm.editor.document"],
)
def test_core_imports_no_ui_library(module):
    loaded = _modules_after_import(module)
    assert not {"textual", "rich", "prompt_toolkit"} & loaded


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("open", "repl", "generate", "infill", "bench", "doctor", "quantize", "train", "serve"):
        assert name in out.stdout


def test_unknown_flag_is_one_message_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "generate", "x", "--no-such-flag"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in out.stderr
    assert "Traceback" not in out.stderr
