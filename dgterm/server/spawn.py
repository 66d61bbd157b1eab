"""Start `dgterm serve` as a child process on a free loopback port and wait until it listens (tests, bench)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Spawned:
    url: str
    proc: subprocess.Popen
    log: list = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spawn(*flags: str, env: dict | None = None, timeout: float = 180.0) -> Spawned:
    """``dgterm serve --port 0 FLAGS``; raises RuntimeError with its output if it does not come up."""
    proc = subprocess.Popen([sys.executable, "-m", "dgterm.cli", "serve", "--port", "0", *flags],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, **(env or {})})
    lines: list[str] = []
    up = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if " at http://" in line:
                up.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not up.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("dgterm serve did not start: " + "".join(lines))
    found = re.search(r"at (http://\S+)/v1", "".join(lines))
    if found is None:
        proc.kill()
        raise RuntimeError("dgterm serve named no address: " + "".join(lines))
    return Spawned(found.group(1), proc, lines)
