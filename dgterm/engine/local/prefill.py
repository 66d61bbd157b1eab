"""Prefill: the encoder appends tokens to the KV cache, in chunks, once for all candidates.

Two savings, neither of which changes what the decoder reads:

- **Chunks.** A long prompt goes through the encoder ``CHUNK`` tokens at a time, into the
  same cache, as ``generate`` appends canvases. Attention then holds a (chunk × context)
  score block instead of (prompt × prompt), and a sliding-window layer keeps a slice of a
  chunk-sized tensor instead of one of the whole prompt. The keys agree with a one-piece
  prefill to float rounding (~1e-6); the tokens are the same (tests/engine/local/test_prefill.py).
  After the last chunk a sliding-window layer's keys are copied out of the chunk they
  were cut from, so the cache holds a window, not a window plus a chunk.
- **One row for identical rows.** While every candidate has encoded the same tokens (the
  prompt, and any later window whose pending canvas every candidate committed alike), the
  cache holds one row and the others are broadcast views of it (``expand``: no copy). The
  decoder only reads the cache and the encoder's update concatenates into new tensors, so
  no view is ever written through. The server's batcher forks one prefilled cache
  (:func:`fork`) for the sequences that start from the same prompt in one tick. The keys are
  those of B encoded rows (bit for bit at the bundled model's prompt sizes; a matmul over
  fewer rows may round differently).
"""

from __future__ import annotations

import copy
import inspect

import torch

CHUNK = 1024  # prompt tokens per encoder forward


_CACHE_KEYWORDS: dict[type, str] = {}  # per model class


def _cache_keyword(model: torch.nn.Module) -> str:
    """transformers 5.24 renamed ``past_key_values`` to ``cache``; accept both releases."""
    cls = type(model)
    if cls not in _CACHE_KEYWORDS:
        _CACHE_KEYWORDS[cls] = "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"
    return _CACHE_KEYWORDS[cls]


def encode(model, cache, ids: torch.Tensor, cur_len: int, chunk: int | None = None) -> int:
    """Append ``ids`` (B, n) to the cache at positions cur_len.., ``chunk`` tokens (default
    ``CHUNK``) per encoder forward; returns the new length."""
    chunk = chunk or CHUNK
    for start in range(0, ids.shape[1], chunk):
        cur_len = _encode_piece(model, cache, ids[:, start : start + chunk], cur_len)
    _rows(cache, _compact)
    return cur_len


def _compact(t: torch.Tensor) -> torch.Tensor:
    """A sliding-window layer keeps its last window as a view of the whole chunk it was cut
    from (window - 1 + chunk tokens); a copy of the window frees the rest for the decode steps."""
    return t.clone() if t.untyped_storage().nbytes() > t.numel() * t.element_size() else t


def _encode_piece(model, cache, ids: torch.Tensor, cur_len: int) -> int:
    batch, n = ids.shape
    positions = torch.arange(cur_len, cur_len + n, dtype=torch.int32, device=ids.device)[None]
    attention = torch.ones(batch, cur_len + n, dtype=torch.bool, device=ids.device)
    encoder = model.model.encoder
    empty = torch.empty((batch, n, 0), dtype=model.dtype, device=ids.device)
    masks = encoder.create_masks_for_generate(model.config, empty, attention, cache, positions, None)
    encoder(input_ids=ids.contiguous(), attention_mask=masks, position_ids=positions, **{_cache_keyword(model): cache})
    return cur_len + n


def fork(cache):
    """A second cache over the same tensors, no copy (the server's candidates are sequences
    of their own). Appending to either leaves the other as it was: an update concatenates
    into new tensors."""
    twin = copy.copy(cache)
    twin.layers = [copy.copy(layer) for layer in cache.layers]
    return twin


class SharedPrefill:
    """The cache of a batch of candidates that encodes identical rows once.

    ``uniform`` stays True while every row of the cache holds the same tokens; then an
    ``append`` of identical rows encodes one row and broadcasts it."""

    def __init__(self, model, cache, batch: int):
        self.model, self.cache, self.batch = model, cache, batch
        self.uniform = True

    def append(self, ids: torch.Tensor, cur_len: int) -> int:
        """Append ``ids`` (B, n); returns the new length."""
        same = self.batch == 1 or bool((ids == ids[:1]).all())
        if not (self.uniform and same):
            self.uniform = False
            return encode(self.model, self.cache, ids, cur_len)
        _rows(self.cache, lambda t: t[:1])
        cur_len = encode(self.model, self.cache, ids[:1], cur_len)
        _rows(self.cache, lambda t: t.expand(self.batch, *t.shape[1:]))
        return cur_len


def _rows(cache, change) -> None:
    """Apply ``change`` to the keys and values of every filled layer of ``cache``."""
    for layer in cache.layers:
        if getattr(layer, "is_initialized", False) and layer.keys is not None and layer.keys.numel():
            layer.keys, layer.values = change(layer.keys), change(layer.values)
