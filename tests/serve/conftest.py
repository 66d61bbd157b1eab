"""`dgterm serve` as a real subprocess on a free loopback port (bundled model, an API key), once per session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

KEY = "test-key-123"


def start_server(*flags, env_extra=None, timeout=180.0):
    env = {**os.environ, "DGTERM_API_KEY": KEY, **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "dgterm.cli", "serve", "--port", "0", *flags],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if " at http://" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("dgterm serve did not start: " + "".join(lines))
    url = re.search(r"at (http://\S+)/v1", "".join(lines)).group(1)
    return SimpleNamespace(url=url, key=KEY, proc=proc, log=lines)


def stop_server(server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def served():
    """The bundled model behind `dgterm serve` (max batch 4, queue 24), stopped at the end."""
    server = start_server("--max-batch", "4", "--max-queue", "24", "--max-tokens", "512")
    yield server
    stop_server(server)
    assert server.proc.returncode is not None


@pytest.fixture
def remote(served, monkeypatch):
    """dgterm's own remote engine on the served model."""
    from dgterm.engine.remote import RemoteEngine

    engine = RemoteEngine(served.url, served.key)
    yield engine
    engine.close()


def metric(served, name: str) -> float:
    import httpx

    text = httpx.get(served.url + "/metrics", headers={"Authorization": f"Bearer {served.key}"}).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or
               line.startswith(name + "{"))


def wait_idle(served, timeout=60.0) -> None:
    """Bounded: until the server runs no sequence and has none waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(served, "dgterm_running_sequences") == 0 and metric(served, "dgterm_queue_depth") == 0:
            return
        time.sleep(0.2)
    raise AssertionError("sequences were left running on the server")
