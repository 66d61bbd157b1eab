"""The static step: what a canvas's steps need so that the device never waits for the host.

Inside a canvas every step has the same shapes (the canvas, the cache it reads, the masks
built once per canvas), and nothing a step computes is read on the host before the next
step is queued: :class:`HostMirror` brings the few numbers the loop needs (has every row
finished, how many tokens are decided) to the host by a non-blocking copy, read ``lag``
steps later on CUDA (at once on the CPU, where there is nothing to wait for).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import numpy as np
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

    def ready(self, everything: bool = False) -> Iterator[tuple[np.ndarray, Any]]:
        """The values that are ``lag`` steps old (``everything``: all, at a canvas's end)."""
        while self.queue and (everything or len(self.queue) > self.lag):
            host, done, payload = self.queue.popleft()
            if done is not None:
                done.synchronize()  # an older step's copy: the newer steps stay queued
            yield host.numpy(), payload

    def clear(self) -> None:
        self.queue.clear()
