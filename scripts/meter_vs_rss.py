#!/usr/bin/env python
"""TensorPeak (dgterm.bench.memory) against the kernel's count of the same run.

    python scripts/meter_vs_rss.py        # 8,000 tokens x 1 candidate, 4,000 x 4, one window each

For each shape: one warm-up task, then the rise of the resident-memory high-water mark
(``VmHWM`` reset through ``/proc/self/clear_refs``) over a second one, then the meter's
peak over a third. glibc is told to return freed blocks at once (the script re-runs itself
with ``MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=0``), so resident memory
follows what is live. Linux only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def main() -> int:
    if any(os.environ.get(k) != v for k, v in ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ENV})
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from dgterm.bench.memory import TensorPeak
    from dgterm.bench.prompts import long_prompt_ids
    from dgterm.engine import tasks
    from dgterm.engine.local import loading

    torch.set_grad_enabled(False)
    lm = loading.load("bundled")
    for tokens, candidates in ((8000, 1), (4000, 4)):
        ids = long_prompt_ids(lm, tokens)

        def task(ids=ids, candidates=candidates):
            params = lm.defaults.replace(steps=4, seed=0, max_new_tokens=lm.canvas_length)
            return tasks.continue_ids(lm, ids, params, candidates=candidates)

        task().collect()
        base = status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        task().collect()
        rss = status("VmHWM") - base
        with TensorPeak() as meter:
            task().collect()
        print(f"{tokens:,} tokens x {candidates}: resident memory rose {rss / 2**20:.1f} MiB, "
              f"TensorPeak {meter.peak / 2**20:.1f} MiB ({rss / meter.peak:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
