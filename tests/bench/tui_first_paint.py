"""Benchmark (not part of the test suite): time from launching `dgterm open FILE` in a
terminal to the first paint of the editor, and to the model being ready.

    .venv/bin/python tests/bench/tui_first_paint.py [--runs 5]

Each run starts the real command in a fresh tmux window (120×40) and polls the pane every
10 ms: "first paint" is when the file's first line and the status bar are on screen,
"model ready" when the status bar names the loaded model. Prints the median and the worst
of each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def one_run(folder: Path, i: int) -> tuple[float, float]:
    session = f"dgterm-paint-{i}"
    dgterm = Path(sys.executable).with_name("dgterm")
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    t0 = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    f"cd {folder} && {dgterm} open demo.md"], check=True)
    painted = ready = None
    try:
        while ready is None and time.perf_counter() - t0 < 60:
            screen = pane(session)
            now = time.perf_counter() - t0
            if painted is None and "A tour of dgterm" in screen and "demo.md" in screen.splitlines()[-2]:
                painted = now
            if "stdlib-7m · cpu" in screen:
                ready = now
            time.sleep(0.01)
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], capture_output=True)
        time.sleep(0.5)
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    if painted is None or ready is None:
        raise SystemExit(f"run {i}: the editor did not come up within 60 s:\n{pane(session)}")
    return painted, ready


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp())
    shutil.copy(REPO / "docs" / "demo.md", folder / "demo.md")
    runs = [one_run(folder, i) for i in range(args.runs)]
    paint, ready = [r[0] for r in runs], [r[1] for r in runs]
    print(f"dgterm open, {args.runs} runs: first paint median {statistics.median(paint):.2f} s "
          f"(worst {max(paint):.2f} s); model ready median {statistics.median(ready):.2f} s "
          f"(worst {max(ready):.2f} s)")


if __name__ == "__main__":
    main()
