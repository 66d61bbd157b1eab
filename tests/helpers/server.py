"""Reading a running `dgterm serve`: its metrics, and waiting until it is idle."""

from __future__ import annotations

import time


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
