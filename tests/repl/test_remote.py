"""The REPL end to end through --server on the real `dgterm serve` (tests/conftest.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_the_repl_chats_through_the_server(run_repl, served, monkeypatch):
    monkeypatch.setenv("DGTERM_API_KEY", served.key)
    r = run_repl(["What does zip do?", "/stats"], "--server", served.url, "--steps", "2", "--seed", "5")
    assert r.rc == 0, r.err
    assert f"dgterm serve at {served.url[7:]}" in r.err
    answer = r.repl.last.result.best.text
    assert r.repl.messages[-1] == {"role": "assistant", "content": answer}
    assert "tokens per second" in r.out


def test_switching_model_closes_the_remote_engine_it_leaves(run_repl, served, tiny_dir, monkeypatch):
    from dgterm.engine.remote.client import RemoteEngine

    monkeypatch.setenv("DGTERM_API_KEY", served.key)
    closed = []
    close = RemoteEngine.close
    monkeypatch.setattr(RemoteEngine, "close", lambda self: closed.append(self) or close(self))
    r = run_repl([f"/model {tiny_dir}"], "--server", served.url)
    assert r.rc == 0, r.err
    assert len(closed) == 1 and closed[0].http.client.is_closed  # the connection pool is let go
    assert not isinstance(r.repl.lm, RemoteEngine)  # the model loaded here now
