"""The checkpoint shaped like google/diffusiongemma-26B-A4B-it (built once, cached), loaded once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from .make_checkpoint import REPO_ID, cached


@pytest.fixture(scope="session")
def realshape():
    """Paths of the fixture: ``checkpoint`` (a plain folder), ``hf_home`` (a Hugging Face home
    whose cache holds the same files as ``REPO_ID``) and ``snapshot`` (the folder the id resolves to)."""
    root = cached()
    hub = root / "hf_home" / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    rev = (hub / "refs" / "main").read_text().strip()
    return SimpleNamespace(root=root, checkpoint=root / "checkpoint", hf_home=root / "hf_home",
                           snapshot=hub / "snapshots" / rev, repo_id=REPO_ID)


@pytest.fixture(scope="session")
def gemma(realshape):
    """The fixture loaded the way `--model google/diffusiongemma-26B-A4B-it` loads it."""
    from dgterm.engine.local import loading

    return loading.load(str(realshape.snapshot))



@pytest.fixture(scope="session")
def served_gemma(realshape):
    """The fixture behind a real `dgterm serve` (``--thinking on``), stopped at the end."""
    from dgterm.server.spawn import spawn

    server = spawn("--model", str(realshape.snapshot), "--thinking", "on")
    yield server
    server.stop()
