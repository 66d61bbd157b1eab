"""Runs on a remote engine: windows as requests, their news merged into StepEvents; the lens as read-only reads.

Each candidate runs on its own thread (its requests follow each other: a window's prompt
holds the canvas before it). The merger hands out a StepEvent per step for every
candidate at once, as the in-process loop does: a candidate that stopped early in a
window shows its last frame, marked finished, until the others are done with it.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from dgterm.engine.events import RunResult, StepEvent, seeds_for
from dgterm.errors import DgtermError, RemoteError

LENS_LOGPROBS = 20  # vLLM's default --max-logprobs


def run_remote(engine, windows, params, batch, cancel, stop_at_eos):
    C = engine.canvas_length
    news: queue.Queue = queue.Queue()
    stop = threading.Event()
    responses: list = []
    plain = all(w.pinned is None for w in windows) and not any(w.prefix for w in windows[1:])
    seeds = seeds_for(params, batch)  # as in-process: the same candidate, the same seed

    def commit(b, w, ids, eos=False):
        canvas = (list(ids) + [engine.pad_id] * C)[:C]
        if not engine.live_steps:  # vLLM: one frame per canvas, its texts fetched now (off the UI thread)
            engine.tokenizer.learn_ids(canvas)
        news.put((b, "canvas", (w, canvas, eos)))

    def stream(b, body, first_window):
        """Run one streamed request; returns (ids committed, whether it ended at EOS, the random
        state `dgterm serve` ended with when asked)."""
        ids, w, eos, state = [], first_window, False, None
        for chunk in engine.http.stream(body, responses):
            if stop.is_set():
                break
            state = chunk.get("dgterm_rng_state", state)
            frame = chunk.get("dgterm_frame")
            if frame and "step" in frame:
                engine.tokenizer.learn(frame.get("texts", {}), frame.get("bytes"))
                news.put((b, "frame", (first_window + frame["window"], frame)))
            for choice in chunk.get("choices", []):
                ids += logprob_ids(choice.get("logprobs") or {})
                eos = eos or choice.get("finish_reason") == "stop"
            while len(ids) >= (w - first_window + 1) * C:
                commit(b, w, ids[(w - first_window) * C : (w - first_window + 1) * C])
                w += 1
        if len(ids) > (w - first_window) * C and not stop.is_set():
            commit(b, w, ids[(w - first_window) * C :], eos)
        return ids, eos, state

    def row(b):
        try:
            if plain:
                body = engine.request(windows[0].prefix, len(windows) * C, params, seeds[b], frames=engine.live_steps,
                                      ignore_eos=not stop_at_eos)
                stream(b, body, 0)
            else:
                noise = torch.randint(0, engine.vocab_size, (C,), generator=torch.Generator().manual_seed(seeds[b]))
                prompt: list[int] = []
                state = True  # dgterm serve draws the noise and carries its random stream window to window
                for w, window in enumerate(windows):
                    if stop.is_set():
                        return
                    prompt += window.prefix
                    known = window.known if window.known.dim() == 1 else window.known[b]
                    pinned = window.pinned if window.pinned.dim() == 1 else window.pinned[b]
                    xargs = {"diffusion_seed_canvas": torch.where(pinned, known, noise).tolist(),
                             "diffusion_pinned": pinned.nonzero()[:, 0].tolist()}
                    if not engine.speaks_dgterm and window.allowed:
                        heal_by_reading(engine, prompt, xargs, window.allowed, params)
                    body = engine.request(prompt, C, params, seeds[b], frames=engine.live_steps, ignore_eos=True,
                                          xargs=xargs, rng_state=state, allowed=window.allowed)
                    ids, _, state = stream(b, body, w)
                    prompt += (ids + [engine.pad_id] * C)[:C]
            news.put((b, "end", None))
        except DgtermError as e:
            news.put((b, "error", str(e)))
        except Exception as e:  # noqa: BLE001 - a broken answer is one sentence, never a thread's traceback
            news.put((b, "error", f"The remote run failed ({type(e).__name__}: {e})."))

    threads = [threading.Thread(target=row, args=(b,), daemon=True, name=f"dgterm-remote-{b}") for b in range(batch)]
    for t in threads:
        t.start()
    merge = Merge(engine, windows, params, batch, time.perf_counter())

    def halt():
        stop.set()
        for r in list(responses):
            r.close()

    try:
        while True:
            yield from merge.ready()
            if merge.over():
                return merge.result()
            if cancel is not None and cancel.is_set():
                halt()
                return merge.result(cancelled=True)
            try:
                b, kind, payload = news.get(timeout=0.05)
            except queue.Empty:
                continue
            if kind == "error":
                halt()
                raise RemoteError(payload)
            merge.take(b, kind, payload)
    finally:
        halt()


class Merge:
    """The news of every candidate, handed out step by step for all of them at once."""

    def __init__(self, engine, windows, params, batch, t0):
        self.engine, self.windows, self.params, self.batch, self.t0 = engine, windows, params, batch, t0
        self.frames = [dict() for _ in range(batch)]  # window -> frames
        self.finals = [dict() for _ in range(batch)]  # window -> canvas ids
        self.ended = [False] * batch
        self.eos = [False] * batch
        self.w, self.s = 0, 1
        self.canvases, self.steps = [], []
        self.forwards = [0] * batch

    def take(self, b, kind, payload):
        if kind == "frame":
            w, frame = payload
            self.frames[b].setdefault(w, []).append(frame)
        elif kind == "canvas":
            w, ids, eos = payload
            self.finals[b][w] = ids
            self.eos[b] = self.eos[b] or eos
            if not self.engine.live_steps:
                n = len(ids)
                self.frames[b].setdefault(w, []).append(
                    {"step": self.params.steps, "max_steps": self.params.steps, "canvas": ids, "argmax": ids,
                     "accepted": [1] * n, "entropy": [0.0] * n, "finished": True})
        elif kind == "end":
            self.ended[b] = True

    def _done_with(self, b, w) -> bool:
        return w in self.finals[b] or self.ended[b]

    def over(self) -> bool:
        return (all(self.ended) and not any(self.w in f for f in self.frames)
                and not any(self.w in f for f in self.finals))

    def ready(self):
        while True:
            w, s = self.w, self.s
            counts = [len(self.frames[b].get(w, ())) for b in range(self.batch)]
            if all(self._done_with(b, w) and counts[b] < s for b in range(self.batch)):
                if not any(w in f for f in self.finals):
                    return
                self._close_window(w, counts)
                continue
            if not all(counts[b] >= s or self._done_with(b, w) for b in range(self.batch)):
                return
            yield self._event(w, s, counts)
            self.s += 1

    def _close_window(self, w, counts):
        pad = [self.engine.pad_id] * self.engine.canvas_length
        self.canvases.append(torch.tensor([self.finals[b].get(w, pad) for b in range(self.batch)]))
        for b in range(self.batch):
            self.forwards[b] += counts[b] if self.engine.live_steps else (self.params.steps if counts[b] else 0)
        self.steps.append(max(counts) if self.engine.live_steps else self.params.steps)
        self.w, self.s = w + 1, 1

    def _pinned(self, w):
        window = self.windows[w] if w < len(self.windows) else None
        if window is None or window.pinned is None:
            return None
        p = window.pinned
        return (p if p.dim() == 2 else p[None]).expand(self.batch, -1)

    def _event(self, w, s, counts) -> StepEvent:
        C = self.engine.canvas_length
        rows, finished = [], []
        for b in range(self.batch):
            frames = self.frames[b].get(w, [])
            frame = frames[min(s, len(frames)) - 1] if frames else None
            if frame is None:
                ids = self.finals[b].get(w, [self.engine.pad_id] * C)
                frame = {"canvas": ids, "argmax": ids, "accepted": [1] * C, "entropy": [0.0] * C}
            rows.append(frame)
            finished.append(self._done_with(b, w) and s >= counts[b])
        pinned = self._pinned(w)
        accepted = torch.tensor([f["accepted"] for f in rows], dtype=torch.bool)
        free = ~pinned[0] if pinned is not None else torch.ones(C, dtype=torch.bool)
        done_before = (sum(int(((c[0] != self.engine.pad_id) & free).sum()) for c in self.canvases)
                       if pinned is None else 0)
        return StepEvent(window=w, step=rows[0].get("step", s), max_steps=rows[0].get("max_steps", self.params.steps),
                         canvas=torch.tensor([f["canvas"] for f in rows]),
                         argmax=torch.tensor([f["argmax"] for f in rows]),
                         accepted=accepted, entropy=torch.tensor([f["entropy"] for f in rows], dtype=torch.float32),
                         pinned=pinned, finished=torch.tensor(finished), elapsed=time.perf_counter() - self.t0,
                         tokens=done_before + int((accepted[0] & free).sum()))

    def result(self, cancelled: bool = False) -> RunResult:
        generated = torch.zeros(self.batch, dtype=torch.long)
        for w, canvas in enumerate(self.canvases):
            pinned = self._pinned(w)
            free = torch.ones_like(canvas, dtype=torch.bool) if pinned is None else ~pinned
            generated += ((canvas != self.engine.pad_id) & free).sum(-1)
        return RunResult(canvases=self.canvases, steps=self.steps, forwards=torch.tensor(self.forwards),
                         generated=generated, elapsed=time.perf_counter() - self.t0, cancelled=cancelled,
                         finished_at_eos=torch.tensor(self.eos), windows=len(self.canvases))


def heal_by_reading(engine, prompt: list[int], xargs: dict, allowed: dict, params) -> None:
    """vLLM restricts a whole canvas, not one position, and lists no vocabulary: a healed
    position is chosen by one read-only step on the window's seed canvas, the likeliest of
    its top logprobs that starts with the healed characters, then pinned in ``xargs``.
    A position none of whose top logprobs starts with them stays free."""
    read = {**xargs, "diffusion_read_only": True, "diffusion_max_steps": 1}
    body = engine.request(prompt, engine.canvas_length, params.replace(steps=1), 0, frames=False, ignore_eos=True,
                          logprobs=LENS_LOGPROBS, xargs=read)
    body["stream"] = False
    tops = engine.http.post("/v1/completions", body)["choices"][0]["logprobs"]["top_logprobs"]
    for p, ids in allowed.items():
        top = top_of(tops[p])
        engine.tokenizer.learn_ids(top)
        prefix = getattr(ids, "prefix", "")  # client.Unlisted: the healed characters
        fits = [i for i in top if prefix and engine.tokenizer.decode([i]).startswith(prefix)]
        if fits:
            xargs["diffusion_seed_canvas"][p] = max(fits, key=top.__getitem__)
            xargs["diffusion_pinned"] = sorted({*xargs["diffusion_pinned"], p})


# ------------------------------------------------------------------ lens


def lens(engine, text, start, end, stride, batch, max_context, seed, cancel):
    from dgterm.engine.tasks.lens import LensToken, lens_region

    tok, C = engine.tokenizer, engine.canvas_length
    end, ids, offsets, head = lens_region(tok, text, start, end, stride, batch, max_context)
    if not ids:
        return []
    gen = torch.Generator().manual_seed(seed)
    params = engine.defaults.replace(steps=1)
    out = []
    with ThreadPoolExecutor(batch) as pool:
        for c0 in range(0, len(ids), C):
            chunk = ids[c0 : c0 + C]
            n = len(chunk)
            known = torch.tensor(chunk + ([engine.eos_ids[0]] + [engine.pad_id] * C)[: C - n])
            prefix = (head + ids[:c0])[-max_context:]
            reads = []
            for r in range(min(stride, n)):
                group = list(range(r, n, stride))
                canvas = known.clone()
                canvas[group] = torch.randint(0, engine.vocab_size, (len(group),), generator=gen)
                body = engine.request(prefix, C, params, seed, frames=False, ignore_eos=True, logprobs=LENS_LOGPROBS,
                                      xargs={"diffusion_seed_canvas": canvas.tolist(), "diffusion_read_only": True,
                                             "diffusion_max_steps": 1})
                body["stream"] = False
                reads.append((group, pool.submit(engine.http.post, "/v1/completions", body)))
            probs, tops, top_probs = [0.0] * n, [0] * n, [0.0] * n
            for group, future in reads:
                if cancel is not None and cancel.is_set():
                    return []
                logprobs = future.result()["choices"][0]["logprobs"]
                chosen = logprob_ids(logprobs)
                for q in group:
                    top = top_of(logprobs["top_logprobs"][q])
                    truth = chunk[q]
                    # the true token outside the top logprobs: its probability is at most the smallest shown
                    probs[q] = math.exp(top[truth]) if truth in top else math.exp(min(top.values())) if top else 0.0
                    tops[q] = chosen[q]
                    top_probs[q] = math.exp(logprobs["token_logprobs"][q])
            tok.learn_ids(set(chunk) | set(tops))
            for k, token_id in enumerate(chunk):
                a, b = offsets[c0 + k]
                out.append(LensToken(start + a, start + b, tok.decode([token_id], skip_special_tokens=False),
                                     probs[k], tok.decode([tops[k]], skip_special_tokens=False), top_probs[k]))
    return out


def logprob_ids(logprobs: dict) -> list[int]:
    """The ids of the tokens of a completions-API logprobs object (``return_tokens_as_token_ids``)."""
    return [int(t.rsplit(":", 1)[1]) for t in logprobs.get("tokens") or []]


def top_of(entry: dict) -> dict[int, float]:
    return {int(k.rsplit(":", 1)[1]): v for k, v in (entry or {}).items()}
