"""Benchmark (not part of the test suite): time from launching `dgterm open FILE` in a
terminal to the first paint of the editor, and to the model being ready; with --large, a
generated 20 MB log: first paint, all of it in, and the time a typed key takes to show.

    .venv/bin/python tests/bench/tui_first_paint.py [--runs 5] [--large] [--checkout DIR ...]

Each run starts the real command (this checkout's dgterm) in a fresh tmux window (120×40) on
its own tmux socket and polls the pane every 10 ms: "first paint" is when the file's first
line and the status bar are on screen, "model ready" when the status bar names the loaded
model. Prints the median and the worst of each; with several --checkout folders (e.g. an
older commit unpacked with `git archive`), each in turn, run after run, to compare them on
the same (noisy) machine.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TMUX = ["tmux", "-L", "dgterm-bench"]


def pane(session: str) -> str:
    return subprocess.run([*TMUX, "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def start(session: str, folder: Path, name: str, checkout: Path = REPO) -> float:
    subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True)
    t0 = time.perf_counter()
    subprocess.run([*TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    f"cd {folder} && DGTERM_STATE_DIR={tempfile.mkdtemp()} PYTHONPATH={checkout} "
                    f"{sys.executable} -m dgterm.cli open {name}"], check=True)
    return t0


def stop(session: str) -> None:
    subprocess.run([*TMUX, "send-keys", "-t", session, "C-q"], capture_output=True)
    time.sleep(0.5)
    subprocess.run([*TMUX, "send-keys", "-t", session, "Right", "Enter"], capture_output=True)  # quit unsaved
    time.sleep(0.3)
    subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True)


def wait_for(session: str, t0: float, seen, limit: float = 120) -> float:
    while time.perf_counter() - t0 < limit:
        if seen(pane(session)):
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise SystemExit(f"{session}: nothing after {limit} s:\n{pane(session)}")


def one_run(folder: Path, i: int) -> tuple[float, float]:
    session = f"paint-{i}"
    t0 = start(session, folder, "demo.md")
    try:
        painted = wait_for(session, t0, lambda s: "A tour of dgterm" in s and "demo.md" in s.splitlines()[-2])
        ready = wait_for(session, t0, lambda s: "stdlib-7m · cpu" in s)
    finally:
        stop(session)
    return painted, ready


def write_log(path: Path, lines: int = 250_000) -> str:
    """A 20 MB log of short lines; returns its first line."""
    rng = random.Random(1)
    with open(path, "w") as f:
        for i in range(lines):
            f.write(f"2026-12-02T10:{i % 60:02d}:{i % 60:02d}.{i:06d} INFO worker-{i % 16} request "
                    f"id={rng.getrandbits(64):016x} took {i % 997} ms ok\n")
    return path.read_text()[:40]


def large_run(folder: Path, first: str, i: int, checkout: Path, keys: int = 5) -> tuple[float, float, float]:
    """(first paint, all in, median time from a key to its character on screen)."""
    session = f"large-{i}"
    shutil.copy(folder / "big.log.orig", folder / "big.log")  # as written, whatever the last run did
    t0 = start(session, folder, "big.log", checkout)
    try:
        painted = wait_for(session, t0, lambda s: first[:30] in s)
        loaded = wait_for(session, t0, lambda s: "loading the rest" not in s and "stdlib-7m · cpu" in s)
        waits = []
        for k in range(keys):
            mark = "QWERTY"[: k + 1] + "2026"  # typed at the start of the first line
            t = time.perf_counter()
            subprocess.run([*TMUX, "send-keys", "-t", session, "-l", "QWERTY"[k]], check=True)
            waits.append(wait_for(session, t, lambda s: mark in s, 60))
    finally:
        stop(session)
    return painted, loaded, statistics.median(waits)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--large", action="store_true", help="a generated 20 MB log instead of docs/demo.md")
    p.add_argument("--checkout", type=Path, action="append", help="the dgterm source folder to run (default: this one)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp())
    if args.large:
        first = write_log(folder / "big.log.orig")
        checkouts = args.checkout or [REPO]
        runs: dict[Path, list] = {c: [] for c in checkouts}
        for i in range(args.runs):
            for c in checkouts:
                runs[c].append(large_run(folder, first, i, c))
        for c, got in runs.items():
            paint, loaded, key = ([r[j] for r in got] for j in range(3))
            print(f"{c}: dgterm open big.log (20 MB), {args.runs} runs: first paint median "
                  f"{statistics.median(paint):.2f} s (worst {max(paint):.2f} s); all in median "
                  f"{statistics.median(loaded):.2f} s (worst {max(loaded):.2f} s); a key median "
                  f"{statistics.median(key):.3f} s (worst {max(key):.3f} s)")
        return
    shutil.copy(REPO / "docs" / "demo.md", folder / "demo.md")
    runs = [one_run(folder, i) for i in range(args.runs)]
    paint, ready = [r[0] for r in runs], [r[1] for r in runs]
    print(f"dgterm open, {args.runs} runs: first paint median {statistics.median(paint):.2f} s "
          f"(worst {max(paint):.2f} s); model ready median {statistics.median(ready):.2f} s "
          f"(worst {max(ready):.2f} s)")


if __name__ == "__main__":
    main()
