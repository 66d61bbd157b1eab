"""`dgterm serve` throughput with concurrent clients, and the server path against in-process, in one run.

The server is a child process on a free loopback port; the clients are dgterm's own remote
engine (what the editor uses), each continuing the same prompt by one canvas with its own
seed. Throughput is committed tokens over wall time. The overhead compares one client
through the server (live steps on) with the same run in this process, medians of rotating
repetitions so that machine noise hits both alike.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import TYPE_CHECKING

from dgterm.bench.speed import PROMPT

if TYPE_CHECKING:
    from dgterm.engine.args import EngineArgs


def _one(engine, steps: int, seed: int) -> int:
    from dgterm.engine import tasks

    params = engine.defaults.replace(steps=steps, seed=seed, max_new_tokens=engine.canvas_length)
    return int(tasks.continue_text(engine, PROMPT, params).collect().run.generated.sum())


def _timed(fn) -> tuple[float, int]:
    t = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - t, tokens


def _concurrent(engine, steps: int, clients: int, seed: int) -> tuple[float, int]:
    made = [0] * clients

    def client(i):
        made[i] = _one(engine, steps, seed + i)

    def run():
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(made)

    return _timed(run)


def serve_flags(engine_args: EngineArgs) -> list[str]:
    """The flags that make `dgterm serve` load the model ``engine_args`` names, as this process does."""
    s = engine_args.settings
    flags = ["--model", s.model, "--device", s.device, "--dtype", s.dtype, "--quant", s.quant]
    return flags + ["--allow-offload"] * s.allow_offload + ["--download"] * engine_args.download


def measure(engine_args: EngineArgs, steps: int = 16, clients=(1, 4, 8), repeats: int = 3, max_batch: int = 8) -> dict:
    """``engine_args``: the model measured here and served by the child `dgterm serve`."""
    from dgterm.engine.remote.client import RemoteEngine
    from dgterm.server.spawn import spawn

    lm = engine_args.load()
    server = spawn(*serve_flags(engine_args), "--max-batch", str(max_batch))
    try:
        remote, plain = RemoteEngine(server.url), RemoteEngine(server.url, frames=False)
        _one(remote, 2, 0), _one(lm, 2, 0)  # warm-up
        times: dict[str, list[float]] = {"here": [], "there": [], "plain": []}
        where = [("here", lm), ("there", remote), ("plain", plain)]
        for r in range(repeats):
            for name, on in where[r % 3:] + where[: r % 3]:
                times[name].append(_timed(lambda on=on, r=r: _one(on, steps, r))[0])
        rows = []
        for n in clients:
            runs = [_concurrent(remote, steps, n, 100 * r) for r in range(repeats)]  # (wall s, tokens)
            wall = statistics.median(t for t, _ in runs)
            tokens = statistics.median(k for _, k in runs)
            rows.append({"clients": n, "wall_s": wall, "tok_per_s": tokens / wall})
        sequential = [_timed(lambda r=r: sum(_one(remote, steps, 100 * r + i) for i in range(4)))
                      for r in range(repeats)]
        seq_wall = statistics.median(t for t, _ in sequential)
        seq_tokens = statistics.median(k for _, k in sequential)
        remote.close()
        plain.close()
    finally:
        server.stop()
    four = next((row for row in rows if row["clients"] == 4), None)
    here, there, bare = (statistics.median(times[k]) for k in ("here", "there", "plain"))
    return {"steps": steps, "in_process_s": here, "server_s": there, "overhead": there / here - 1,
            "server_no_frames_s": bare, "overhead_no_frames": bare / here - 1, "concurrent": rows,
            "sequential_4_tok_per_s": seq_tokens / seq_wall,
            "four_vs_sequential": four["tok_per_s"] / (seq_tokens / seq_wall) if four else None}
