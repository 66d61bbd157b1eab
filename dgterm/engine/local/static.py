"""The static step: what a canvas's steps need so that the device never waits for the host.

Inside a canvas every step has the same shapes (the canvas, the cache it reads, the masks
built once per canvas), and nothing a step computes is read on the host before the next
step is queued: :class:`HostMirror` brings the few numbers the loop needs (has every row
finished, how many tokens are decided) to the host by a non-blocking copy, read ``lag``
steps later on CUDA (at once on the CPU, where there is nothing to wait for).
"""

from __future__ import annotations

import collections
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


class HostMirror:
    """Per-step values (a small integer tensor) read on the host ``lag`` steps after they
    were computed, each with what the loop kept with it (``payload``)."""

    def __init__(self, device: torch.device | str, lag: int | None = None):
        self.cuda = torch.device(device).type == "cuda"
        self.lag = (1 if self.cuda else 0) if lag is None else lag
        self.queue: collections.deque[tuple[torch.Tensor, Any, Any]] = collections.deque()

    def push(self, values: torch.Tensor, payload: Any) -> None:
        if self.cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self.queue.append((host, done, payload))
        else:
            self.queue.append((values, None, payload))

    def ready(self, everything: bool = False) -> Iterator[tuple[list[int], Any]]:
        """The values that are ``lag`` steps old (``everything``: all, at a canvas's end)."""
        while self.queue and (everything or len(self.queue) > self.lag):
            host, done, payload = self.queue.popleft()
            if done is not None:
                done.synchronize()  # an older step's copy: the newer steps stay queued
            yield read(host), payload

    def clear(self) -> None:
        self.queue.clear()


def read(host: torch.Tensor) -> list[int]:
    """A host buffer's values: by then on the host (the copy's event has completed), so no wait."""
    return host.tolist()


BUCKET = 512  # the cache's capacity grows by this many tokens: one compiled shape per bucket


@dataclass(eq=False)
class _Layer:
    """One layer's keys and values as the decoder reads a compileable cache (what
    transformers' ``append_to_cache`` reads of a StaticCache layer)."""

    keys: torch.Tensor
    values: torch.Tensor
    cumulative_length: torch.Tensor  # 0-dim: the tokens held; the canvas goes right after them
    device: torch.device


class StaticContext:
    """The encoder's cache as the decoder reads it, in buffers whose size changes only when
    the context outgrows a :data:`BUCKET`: every step of every canvas then has the same
    shapes. The encoder keeps its own (dynamic) cache; :meth:`fill` copies it here once per
    canvas and returns the canvas's masks (the filled slots and the canvas; the rest of
    the buffer is masked out). Transformers' decoder takes it for a StaticCache."""

    is_compileable = True

    def __init__(self) -> None:
        self.layers: list[_Layer] = []

    def fill(self, cache: Any, canvas_length: int, layer_types: list[str]) -> dict[str, torch.Tensor]:
        lengths: dict[str, int] = {}
        for i, (layer, kind) in enumerate(zip(cache.layers, layer_types, strict=True)):
            keys, values = layer.keys, layer.values
            n = keys.shape[-2]
            lengths[kind] = n
            if i >= len(self.layers) or self.layers[i].keys.shape[-2] < n or \
                    self.layers[i].keys.shape[0] != keys.shape[0]:
                capacity = -(-max(n, 1) // BUCKET) * BUCKET
                shape = (*keys.shape[:-2], capacity, keys.shape[-1])
                mine = _Layer(keys.new_zeros(shape), values.new_zeros(shape),
                              torch.zeros((), dtype=torch.long, device=keys.device), keys.device)
                self.layers[i:i + 1] = [mine]
            mine = self.layers[i]
            mine.keys[..., :n, :].copy_(keys)
            mine.values[..., :n, :].copy_(values)
            mine.cumulative_length.fill_(n)
        batch = cache.layers[0].keys.shape[0]
        masks = {}
        for kind, n in lengths.items():
            capacity = self.layers[layer_types.index(kind)].keys.shape[-2]
            seen = torch.arange(capacity + canvas_length, device=self.layers[0].device) < n + canvas_length
            masks[kind] = seen.expand(batch, 1, canvas_length, -1)
        return masks


class DecoderForward:
    """The decoder's logits over a canvas and a :class:`StaticContext`, with the
    self-conditioning logits always a tensor (masked out at a canvas's first step), so
    that every step runs one graph: compiled with ``torch.compile`` (``backend``; fixed
    shapes, whole graph) unless ``backend`` is None. The first call of each shape is timed
    apart: its warm-up (compiling), reported by :attr:`warmup`."""

    def __init__(self, model: Any, backend: Any = None):
        from dgterm.engine.local.prefill import _cache_keyword

        self.model, self.keyword = model, _cache_keyword(model)
        # The model's modules and weights do not change under a run: their guards (half a
        # millisecond a step on the bundled model) are skipped; the tensors' shapes are still checked.
        self.fn = self._logits if backend is None else torch.compile(
            self._logits, backend=backend, dynamic=False, fullgraph=True,
            options={"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe})
        self.shapes: set[tuple] = set()
        self.warmup = 0.0

    def _logits(self, canvas, sc, sc_mask, masks, context, positions):
        return self.model(decoder_input_ids=canvas, self_conditioning_logits=sc, self_conditioning_mask=sc_mask,
                          decoder_attention_mask=masks, decoder_position_ids=positions,
                          **{self.keyword: context}).logits

    def __call__(self, canvas: torch.Tensor, sc: torch.Tensor, sc_mask: torch.Tensor, masks: dict,
                 context: StaticContext, positions: torch.Tensor) -> torch.Tensor:
        shape = (tuple(canvas.shape), tuple(context.layers[0].keys.shape), sc.dtype)
        if shape in self.shapes:
            return self.fn(canvas, sc, sc_mask, masks, context, positions)
        t = time.perf_counter()
        logits = self.fn(canvas, sc, sc_mask, masks, context, positions)
        self.warmup += time.perf_counter() - t
        self.shapes.add(shape)
        return logits


_FORWARDS: weakref.WeakKeyDictionary[Any, dict[Any, DecoderForward]] = weakref.WeakKeyDictionary()


def decoder_forward(model: Any, backend: Any = None) -> DecoderForward:
    """The model's :class:`DecoderForward` for ``backend``, made once (what it compiled is kept)."""
    per_model = _FORWARDS.setdefault(model, {})
    if backend not in per_model:
        per_model[backend] = DecoderForward(model, backend)
    return per_model[backend]
