"""``POST /dgterm/score``: the model's pseudo-log-likelihood of a client's finished run.

A client ranks candidates by how likely the model finds them (the local engine's
``score_run``); through `dgterm serve` the client holds no model, so it sends the windows it
ran and each candidate's final canvases (:mod:`dgterm.engine.remote.wire`) and the server
calls the same ``score_run`` of its engine: the same seed gives the score the in-process
run gives. One scoring at a time, off the event loop (it runs decoder forwards beside the
batcher's).
"""

from __future__ import annotations

import asyncio
import threading

import torch

from dgterm.engine.events import RunResult
from dgterm.engine.remote.wire import WireError, window_from_json
from dgterm.server.protocol import ApiError, Limits

MAX_ROWS = 64  # candidates x lengths of a search, more than any front end asks for


class Scorer:
    def __init__(self, lm, limits: Limits, names: list[str]):
        self.lm, self.limits, self.names = lm, limits, names
        self.lock = threading.Lock()

    def check(self, body) -> tuple[list, RunResult, bool, int]:
        """(windows, a RunResult of the canvases, skip_pad, seed) of a body, or an ApiError."""
        lm, C = self.lm, self.lm.canvas_length
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        if body.get("model") is not None and body["model"] not in self.names:
            raise ApiError(404, f"The model '{body['model']}' does not exist; this server serves "
                                f"'{self.names[0]}'.", "model", "model_not_found")
        canvases, windows = body.get("canvases"), body.get("windows")
        if not isinstance(windows, list) or not windows or not isinstance(canvases, list) or not canvases:
            raise ApiError(400, "windows and canvases must be non-empty lists.", "windows")
        rows = len(canvases)
        if rows > MAX_ROWS:
            raise ApiError(400, f"At most {MAX_ROWS} candidates are scored at once, got {rows}.", "canvases")
        if not all(isinstance(c, list) and len(c) == len(windows) and all(
                isinstance(w, list) and len(w) == C and all(isinstance(t, int) and not isinstance(t, bool)
                                                            and 0 <= t < lm.vocab_size for t in w) for w in c)
                   for c in canvases):
            raise ApiError(400, f"canvases must hold, per candidate, one list of {C} token ids in "
                                f"[0, {lm.vocab_size}) per window.", "canvases")
        try:
            parsed = [window_from_json(w, lm.vocab_size, C, rows) for w in windows]
        except WireError as e:
            raise ApiError(400, str(e), "windows") from None
        tokens = sum(len(w.prefix) for w in parsed) + C * len(parsed)
        if tokens > min(lm.max_positions, self.limits.max_prompt + self.limits.max_tokens):
            raise ApiError(400, f"The run holds {tokens} tokens, more than this server scores.", "windows")
        seed, skip_pad = body.get("seed", 0), body.get("skip_pad", False)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
            raise ApiError(400, "seed must be an integer of at least 0.", "seed")
        if not isinstance(skip_pad, bool):
            raise ApiError(400, "skip_pad must be a boolean.", "skip_pad")
        stacked = torch.tensor(canvases)  # (rows, windows, C)
        run = RunResult(canvases=[stacked[:, w] for w in range(len(parsed))], steps=[],
                        forwards=torch.zeros(rows, dtype=torch.int), generated=torch.zeros(rows, dtype=torch.long),
                        elapsed=0.0)
        return parsed, run, skip_pad, seed

    def _score(self, windows, run, skip_pad, seed) -> list[float]:
        with self.lock:
            return self.lm.score_run(windows, run, skip_pad=skip_pad, seed=seed)

    async def score(self, body) -> dict:
        windows, run, skip_pad, seed = self.check(body)
        try:
            scores = await asyncio.to_thread(self._score, windows, run, skip_pad, seed)
        except Exception as e:  # noqa: BLE001 - one sentence to the client; the server stays up
            raise ApiError(500, f"Scoring failed ({type(e).__name__}: {e}).", kind="server_error") from None
        return {"object": "dgterm.score", "model": self.names[0], "scores": scores}
