"""The peak of tensor memory inside a block of code, on any device.

What ``torch.cuda.max_memory_allocated`` reports on a GPU, counted on the CPU too: a
dispatch mode sees every tensor an operator creates, keeps a weak reference to its
storage and adds its bytes while it lives. Storages made before the block (the weights)
and the outputs that alias an input (views, in-place and ``out=`` results) are not new
memory and are not counted, so the peak is what a run needs on top of its model: the
planner's ``runtime`` (dgterm.engine.local.quant.planner), measured.
"""

from __future__ import annotations

import functools
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from dgterm.bench.prompts import long_prompt_ids


class TensorPeak(TorchDispatchMode):
    """``with TensorPeak() as m: ...``; then ``m.peak`` (bytes) and ``m.live`` (bytes still held)."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        for i, t in enumerate(tree_flatten(out)[0]):
            aliased = i < len(returns) and returns[i].alias_info is not None
            if isinstance(t, torch.Tensor) and not aliased:
                self._track(t.untyped_storage())
        return out

    def _track(self, storage) -> None:
        key = storage._cdata
        size = storage.nbytes()
        if key not in self._sizes:
            self._refs[key] = weakref.ref(storage, functools.partial(self._freed, key))
            self._sizes[key] = 0
        self.live += size - self._sizes[key]
        self._sizes[key] = size
        self.peak = max(self.peak, self.live)

    def _freed(self, key: int, _ref: weakref.ref) -> None:
        self.live -= self._sizes.pop(key, 0)
        self._refs.pop(key, None)


# (prompt tokens, candidates, windows, sampler): each way a run can peak on the bundled model
SHAPES = [(257, 1, 1, "fused"), (257, 1, 2, "reference"), (1001, 2, 2, "fused"), (2001, 4, 2, "fused"),
          (2001, 4, 2, "reference"), (4001, 4, 2, "fused"), (8001, 1, 1, "fused"), (8001, 2, 2, "fused"),
          (16001, 1, 1, "fused")]


def against_planner(lm, prompt: int, candidates: int, windows: int, sampler: str, steps: int = 4) -> dict:
    """One continuation task of ``windows`` canvases after a ``prompt``-token prompt, under
    :class:`TensorPeak`: its measured peak, and the planner's ``runtime_bytes`` at the
    context the last canvas is denoised over."""
    from dgterm.engine import tasks
    from dgterm.engine.local.quant import planner

    params = lm.defaults.replace(steps=steps, seed=0, max_new_tokens=lm.canvas_length * windows, mode=sampler)
    task = tasks.continue_ids(lm, long_prompt_ids(lm, prompt), params, candidates=candidates)
    with TensorPeak() as meter:
        result = task.collect()
    cached = prompt + lm.canvas_length * (windows - 1)
    planned = planner.runtime_bytes(lm.model.config, cached, candidates, lm.dtype, sampler)
    return {"prompt": prompt, "candidates": candidates, "windows": result.run.windows, "sampler": sampler,
            "measured": meter.peak, "planned": planned, "live_after": meter.live}
