"""Fixtures of the editor's Pilot tests (the helpers are tests/helpers/tui.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.tui import DEMO

@pytest.fixture
def demo(tmp_path) -> Path:
    path = tmp_path / "demo.md"
    shutil.copy(DEMO, path)
    return path


def pytest_collection_modifyitems(items):
    """Every async test here runs on asyncio through anyio's pytest plugin."""
    for item in items:
        if "tests/tui" in str(item.fspath) and getattr(item.obj, "__code__", None) and \
                item.obj.__code__.co_flags & 0x80:  # CO_COROUTINE
            item.add_marker(pytest.mark.anyio)
