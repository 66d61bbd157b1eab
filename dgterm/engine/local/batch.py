"""Step-level continuous batching: many independent sequences, one decoder forward per step.

A :class:`Sequence` is one candidate of one request: its own windows, sampler settings,
random generator and KV cache. The :class:`Batcher` thread admits sequences (at most
``max_batch`` at once), encodes what each has pending on its own, then runs every
sequence that is denoising through *one* decoder forward per step: the caches are
left-padded to a common length and the padding is masked out. After the step every
sequence samples from its own rows with its own generator, so a sequence draws the
same random numbers whatever else is in the batch. Sequences finish and leave on their
own; new ones join at the next step; a cancelled one is dropped before the next step.

Every sequence carries one masked pad slot ahead of its cache, so a sequence alone and
in a batch take the same attention path. A sequence whose context would not fit the
sliding-window layers' cache runs in a forward of its own.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from dgterm.engine.events import Window
from dgterm.engine.local.denoise import LocalModel, decoder_mask, generated_tokens, pad_after_eos, restriction
from dgterm.engine.local.oom import as_out_of_memory, explain_for_server
from dgterm.engine.local.prefill import _cache_keyword, encode, fork
from dgterm.engine.local.sampler import Pins, Sampler
from dgterm.engine.local.self_conditioning import injected, signal_of
from dgterm.engine.params import SamplerParams

Sink = Callable[[str, Any], None]
LOGPROB_FLOOR = -9999.0  # as vLLM reports the logprob of an impossible token


@dataclass(eq=False)
class Denoising:
    """The canvas a sequence is denoising: set up when its window starts, gone once it is committed."""

    sampler: Sampler
    canvas: torch.Tensor
    argmax: torch.Tensor
    finished: torch.Tensor
    sc: torch.Tensor | None = None  # the self-conditioning logits of the last step
    logits: torch.Tensor | None = None  # the last step's, kept for the logprobs
    step: int = 0
    restrict: Callable[[torch.Tensor], torch.Tensor] | None = None  # the window's positions held to given ids


@dataclass(eq=False)
class Sequence:
    """What to run, and where its news goes: ``sink(kind, payload)`` with kind ``step``
    (a frame dict, only when ``frames``), ``canvas`` (a committed canvas), ``done``,
    ``cancelled`` or ``error``. ``sink`` is called on the batcher's thread."""

    windows: list[Window]
    params: SamplerParams  # seed set: the sequence's own
    sink: Sink
    stop_at_eos: bool = True
    frames: bool = False
    logprobs: int | None = None  # top logprobs of every committed position (temperature 1)
    logprob_ids: list[int] | None = None  # ... or the logprobs of these ids, best first
    width: int | None = None  # canvas positions that hold text; the rest is pad, pinned and hidden
    allowed: torch.Tensor | None = None  # (vocab,) bool: the only ids a position may take (constrained)
    # a generator state to start from (True: from the seed); ``done`` then carries the last
    rng: torch.Tensor | bool | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    # state, owned by the batcher thread; gen, cache and done are set when the first window starts
    wi: int = -1
    gen: torch.Generator | None = None
    cache: Any = None  # a transformers DynamicCache
    cur_len: int = 0
    pending: torch.Tensor | None = None
    now: Denoising | None = None
    done: torch.Tensor | None = None
    generated: int = 0
    forwards: int = 0
    steps: list[int] = field(default_factory=list)
    t0: float = 0.0

    @property
    def denoising(self) -> Denoising:
        """The window being denoised (the batcher steps only sequences that have one)."""
        assert self.now is not None, "no window started"
        return self.now


class Batcher:
    """The thread that owns the model. ``submit`` is safe from any thread."""

    def __init__(self, lm: LocalModel, max_batch: int = 8, on_step: Callable[[int], None] | None = None):
        self.lm, self.max_batch = lm, max_batch
        self.on_step = on_step  # called with the batch size of every forward (metrics)
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.active: list[Sequence] = []
        self.cond = threading.Condition()
        self.stopping = False
        model = lm.model
        text = model.config.get_text_config(decoder=True)
        self.cache_config = text
        window = getattr(text, "sliding_window", None)
        self.batch_limit = (window - 1) if window and "sliding_attention" in (text.layer_types or []) else None
        self.sc_dtype = model.model.decoder.embed_tokens.weight.dtype
        self.eos = torch.tensor(lm.eos_ids, dtype=torch.long, device=lm.device)
        # the group's merged cache: (key, cache, mask, positions)
        self._merged: tuple[tuple[tuple[int, int], ...], Any, Any, torch.Tensor] | None = None
        self.thread = threading.Thread(target=self._loop, name="dgterm-batcher", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ public

    def submit(self, seqs: list[Sequence]) -> None:
        with self.cond:
            self.waiting.extend(seqs)
            self.cond.notify()

    @property
    def depth(self) -> int:
        """Sequences waiting for a place in the batch."""
        return len(self.waiting)

    @property
    def running(self) -> int:
        return len(self.active)

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=10)

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not self.active:
                    self.cond.wait()
                if self.stopping:
                    for seq in [*self.active, *self.waiting]:
                        seq.sink("cancelled", None)
                    return
                while self.waiting and len(self.active) < self.max_batch:
                    self.active.append(self.waiting.popleft())
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - the failing rows end with one sentence; the server stays up
                memory = as_out_of_memory(e, explain_for_server(len(self.active)))
                for seq in self.active:
                    seq.sink("error", str(memory) if memory else f"The run failed ({type(e).__name__}: {e}).")
                self.active = []
                self._merged = None

    @torch.no_grad()
    def _tick(self) -> None:
        # the prompts encoded in this tick: candidates of one request share one prefill
        prompts: dict[tuple[int, ...], Any] = {}
        for seq in list(self.active):
            if seq.cancel.is_set():
                self._leave(seq, "cancelled", None)
            elif seq.now is None and not self._start_window(seq, prompts):
                self._leave(seq, "done", self._stats(seq))
        if self.active:
            self._step(self.active)

    def _leave(self, seq: Sequence, kind: str, payload: Any) -> None:
        self.active.remove(seq)
        self._merged = None
        seq.cache = seq.now = None
        seq.sink(kind, payload)

    def _stats(self, seq: Sequence) -> dict[str, Any]:
        stats: dict[str, Any] = {"steps": seq.steps, "forwards": seq.forwards, "generated": seq.generated,
                                 "finished_at_eos": bool(seq.done.any()) if seq.done is not None else False,
                                 "elapsed": time.perf_counter() - seq.t0}
        if seq.rng is not None:
            assert seq.gen is not None  # the sequence has started (this is its end)
            stats["rng_state"] = seq.gen.get_state()
        return stats

    def _start_window(self, seq: Sequence, prompts: dict[tuple[int, ...], Any]) -> bool:
        """Encode what is pending and set the next window up; False when there is none. A
        first prompt already in ``prompts`` (encoded this tick) is not encoded again: the
        cache is forked from the one that has it."""
        lm, device = self.lm, self.lm.device
        if seq.wi < 0:
            from transformers import DynamicCache

            assert seq.params.seed is not None, "a sequence brings its own seed"
            seq.t0 = time.perf_counter()
            seq.cache = DynamicCache(config=self.cache_config)
            seq.done = torch.zeros(1, dtype=torch.bool, device=device)
            seq.gen = torch.Generator(device=device).manual_seed(seq.params.seed)
            if isinstance(seq.rng, torch.Tensor):  # a window after the first, run by a client window by window
                seq.gen.set_state(seq.rng)
        assert seq.gen is not None and seq.done is not None  # set as the first window started
        seq.wi += 1
        if seq.wi >= len(seq.windows) or (seq.stop_at_eos and bool(seq.done.all())):
            return False
        window = seq.windows[seq.wi]
        parts = [seq.pending] if seq.pending is not None else []
        if window.prefix:
            parts.append(torch.tensor(window.prefix, device=device)[None])
        first = seq.pending is None and seq.cur_len == 0 and tuple(window.prefix)
        if first and first in prompts:
            seq.cache, seq.cur_len = fork(prompts[first]), len(window.prefix)
        elif parts:
            seq.cur_len = encode(lm.model, seq.cache, torch.cat(parts, dim=-1), seq.cur_len)
            if first:
                prompts[first] = seq.cache
        held = _pins(window, seq.width, lm.canvas_length, lm.pad_id)
        pins = None if held is None else Pins(held[0].to(device)[None], held[1].to(device)[None])
        sampler = Sampler(seq.params, lm.vocab_size, [seq.gen], pins)
        canvas = sampler.initial_canvas(1, lm.canvas_length, device)
        if window.start is not None:  # drawn all the same, as in denoise: one random stream
            start = window.start.to(device)[None]
            canvas = start if pins is None else pins.impose(start)
        seq.now = Denoising(sampler, canvas, canvas, torch.zeros(1, dtype=torch.bool, device=device),
                            restrict=restriction(window.allowed, lm.vocab_size, device))
        return True

    # ------------------------------------------------------------ one step for many

    def _step(self, seqs: list[Sequence]) -> None:
        together = [s for s in seqs if self.batch_limit is None or s.cur_len + 1 <= self.batch_limit]
        groups = [together] if together else []
        groups += [[s] for s in seqs if s not in together]
        for group in groups:
            logits = self._forward(group)
            if self.on_step:
                self.on_step(len(group))
            for i, seq in enumerate(group):
                self._advance(seq, logits[i : i + 1])

    def _forward(self, group: list[Sequence]) -> torch.Tensor:
        lm, C, device = self.lm, self.lm.canvas_length, self.lm.device
        alone = self.batch_limit is not None and group[0].cur_len + 1 > self.batch_limit
        if alone:
            seq = group[0]
            cache, cur = seq.cache, seq.cur_len
            mask = decoder_mask(lm.model, seq.denoising.canvas, cache, cur, seq.width)
            positions = torch.arange(cur, cur + C, dtype=torch.int32, device=device)[None]
        else:
            cache, mask, positions = self._merge(group)
        now = [s.denoising for s in group]
        canvas = torch.cat([d.canvas for d in now])
        for s in group:
            s.forwards += 1
        inputs = dict(decoder_input_ids=canvas, decoder_attention_mask=mask, decoder_position_ids=positions,
                      **{_cache_keyword(lm.model): cache})
        if any(s.params.sc_top_k for s in group):  # each row's own signal, put in for this forward
            decoder = lm.model.model.decoder
            signal = torch.cat([signal_of(d.sc, s.params.sc_top_k, decoder.embed_tokens, C)
                                for d, s in zip(now, group, strict=True)])
            with injected(decoder, signal):
                return lm.model(**inputs).logits
        vocab = lm.vocab_size
        sc = torch.cat([d.sc if d.sc is not None else torch.zeros(1, C, vocab, dtype=self.sc_dtype, device=device)
                        for d in now])
        sc_mask = torch.tensor([d.sc is not None for d in now], device=device)
        return lm.model(**inputs, self_conditioning_logits=sc, self_conditioning_mask=sc_mask).logits

    def _merge(self, group: list[Sequence]) -> tuple[Any, Any, torch.Tensor]:
        """One cache for the group, each row left-padded (one pad slot at least), built
        again only when the group or a window changes."""
        key = tuple((id(s), s.wi) for s in group)
        if self._merged is not None and self._merged[0] == key:
            return self._merged[1:]
        from transformers import DynamicCache

        C, device = self.lm.canvas_length, self.lm.device
        length = max(s.cur_len for s in group) + 1
        merged = DynamicCache(config=self.cache_config)
        for layer in range(len(group[0].cache.layers)):
            keys, values = [], []
            for s in group:
                k, v = s.cache.layers[layer].keys, s.cache.layers[layer].values
                pad = length - k.shape[-2]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            merged.update(torch.cat(keys), torch.cat(values), layer)
        attention = torch.zeros(len(group), length + C, dtype=torch.bool, device=device)
        for r, s in enumerate(group):
            attention[r, length - s.cur_len : length + (s.width or C)] = True  # a narrower canvas hides the rest
        canvas = torch.cat([s.denoising.canvas for s in group])
        mask = self.lm.model.model.decoder.create_diffusion_decoder_attention_mask(
            self.lm.model.config, canvas.unsqueeze(-1), merged, attention)
        positions = torch.stack([torch.arange(s.cur_len, s.cur_len + C, dtype=torch.int32, device=device)
                                 for s in group])
        self._merged = (key, merged, mask, positions)
        return merged, mask, positions

    def _advance(self, seq: Sequence, logits: torch.Tensor) -> None:
        p, now = seq.params, seq.denoising
        now.step += 1
        cur_step = p.steps - now.step + 1
        if seq.allowed is not None:  # the unembedding, sampler and self-conditioning see only these ids
            logits = logits.masked_fill(~seq.allowed, torch.finfo(logits.dtype).min / 2)
        if now.restrict is not None:  # as in-process (denoise): a healed edge takes only its ids
            logits = now.restrict(logits)
        now.canvas, now.argmax, now.sc, now.finished, accepted, entropy = now.sampler.step(
            logits, now.canvas, now.argmax, now.sc, now.finished, cur_step, self.sc_dtype)
        if seq.logprobs is not None:
            now.logits = logits
        if seq.frames:
            w = seq.width
            seq.sink("step", {"window": seq.wi, "step": now.step, "max_steps": p.steps,
                              "canvas": now.canvas[0, :w].tolist(), "argmax": now.argmax[0, :w].tolist(),
                              "accepted": accepted[0, :w].int().tolist(),
                              "entropy": [round(x, 4) for x in entropy[0, :w].float().tolist()],
                              "finished": bool(now.finished[0])})
        if bool(now.finished[0]) or now.step >= p.steps:
            self._commit(seq)

    def _commit(self, seq: Sequence) -> None:
        now = seq.denoising
        assert seq.done is not None  # set as the first window started
        final = now.argmax[:, : seq.width].clone()
        if seq.stop_at_eos:
            seq.done = pad_after_eos(final, seq.done, self.eos, self.lm.output_pad)
        pins = now.sampler.pins
        free = torch.ones_like(final, dtype=torch.bool) if pins is None else ~pins.mask[:, : seq.width]
        seq.generated += int(generated_tokens(final, free, self.lm.output_pad).sum())
        seq.steps.append(now.step)
        top = None
        if seq.logprobs is not None and now.logits is not None:
            logp = torch.log_softmax(now.logits[0, : seq.width].float(), dim=-1)
            if seq.logprob_ids is not None:
                ids = torch.tensor(seq.logprob_ids, device=logp.device).expand(logp.shape[0], -1)
                values, order = logp.gather(-1, ids).sort(-1, descending=True)
                ids = ids.gather(-1, order)
            else:
                values, ids = logp.topk(max(1, seq.logprobs), dim=-1)
            chosen = logp.gather(-1, final[0][:, None])[:, 0]
            floor = LOGPROB_FLOOR  # an id a position cannot take (pinned, constrained): JSON has no -inf
            top = {"chosen": chosen.clamp(min=floor).tolist(), "top_ids": ids.tolist(),
                   "top_values": values.clamp(min=floor).tolist()}
        seq.sink("canvas", {"window": seq.wi, "ids": final[0].tolist(), "eos": bool(seq.done.any()), "logprobs": top})
        seq.pending = final
        seq.now = None
        self._merged = None


def _pins(window: Window, width: int | None, C: int, pad: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(pinned, known) of the window's canvas, with the positions past ``width`` held at pad."""
    if width is None or width >= C:
        return window.pins()
    pinned = torch.zeros(C, dtype=torch.bool) if window.pinned is None else window.pinned.clone()
    known = torch.full((C,), pad, dtype=torch.long) if window.known is None else window.known.clone()
    pinned[width:], known[width:] = True, pad
    return pinned, known

