"""Fixtures for the editor tests: a private state dir and the odd-file corpus."""

import shutil

import pytest

from tests.corpus import odd_files


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Journals go to a temp dir, never the user's state dir."""
    path = tmp_path / "state"
    monkeypatch.setenv("DGTERM_STATE_DIR", str(path))
    return path


@pytest.fixture(params=odd_files(), ids=lambda p: p.name)
def odd_file(request, tmp_path):
    """A fresh copy of one file of the odd corpus."""
    copy = tmp_path / "files" / request.param.name
    copy.parent.mkdir()
    shutil.copyfile(request.param, copy)
    return copy
