"""Windows and finished canvases as JSON, for what `dgterm serve` computes for a client:
a healed position's ids (``dgterm.allowed`` of a completion) and the scores of a run
(``POST /dgterm/score``). One module writes and reads them, so client and server agree.

A set of allowed ids travels as a bitmap over the vocabulary (base64): a healed position
may take a large part of a 262k vocabulary (every token that starts with a space), which
as a list of numbers would be most of a request body.
"""

from __future__ import annotations

import base64
from typing import Any

import torch

from dgterm.engine.events import RunResult, Window


class WireError(ValueError):
    """A body that does not hold what it should; the message names the field."""


def ids_to_bitmap(ids: list[int], vocab: int) -> str:
    bits = bytearray((vocab + 7) // 8)
    for i in ids:
        bits[i >> 3] |= 1 << (i & 7)
    return base64.b64encode(bytes(bits)).decode()


def bitmap_to_ids(data: Any, vocab: int, name: str) -> list[int]:
    try:
        bits = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except ValueError:
        bits = b""
    if len(bits) != (vocab + 7) // 8:
        raise WireError(f"{name} must be a base64 bitmap of {(vocab + 7) // 8} bytes (one bit per token id).")
    ids = [i for i in range(vocab) if bits[i >> 3] >> (i & 7) & 1]
    if not ids:
        raise WireError(f"{name} allows no token id.")
    return ids


def allowed_to_json(allowed: dict[int, list[int]], vocab: int) -> dict[str, str]:
    return {str(p): ids_to_bitmap(ids, vocab) for p, ids in allowed.items()}


def allowed_from_json(data: Any, vocab: int, size: int, name: str) -> dict[int, list[int]]:
    """``{"position": bitmap}`` -> {position: ids}, positions inside a canvas of ``size``."""
    if not isinstance(data, dict) or len(data) > size:
        raise WireError(f"{name} must be an object of at most {size} canvas positions.")
    out = {}
    for key, bits in data.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < size):
            raise WireError(f"{name} positions must lie inside the canvas (0 to {size - 1}).")
        out[int(key)] = bitmap_to_ids(bits, vocab, name)
    return out


def window_to_json(window: Window, vocab: int) -> dict:
    """A window as it is: its pins one per canvas, or one per candidate (a length search stacks them)."""
    out: dict[str, Any] = {"prefix": list(window.prefix)}
    if (pins := window.pins()) is not None:
        pinned, known = pins
        out["known"] = known.tolist()
        out["pinned"] = ([row.nonzero()[:, 0].tolist() for row in pinned] if pinned.dim() == 2
                         else pinned.nonzero()[:, 0].tolist())
    if window.allowed:
        out["allowed"] = allowed_to_json(window.allowed, vocab)
    return out


def _ids(value: Any, name: str, vocab: int, length: int | None = None) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab
                                              for t in value):
        raise WireError(f"{name} must be a list of token ids in [0, {vocab}).")
    if length is not None and len(value) != length:
        raise WireError(f"{name} must hold exactly {length} ids, got {len(value)}.")
    return value


def _positions(value: Any, canvas: int) -> torch.Tensor:
    if not isinstance(value, list) or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < canvas
                                              for p in value):
        raise WireError(f"windows[].pinned must list canvas positions (0 to {canvas - 1}).")
    pinned = torch.zeros(canvas, dtype=torch.bool)
    pinned[value] = True
    return pinned


def window_from_json(data: Any, vocab: int, canvas: int, rows: int) -> Window:
    """The window :func:`window_to_json` wrote; pins per candidate only for ``rows`` candidates."""
    if not isinstance(data, dict):
        raise WireError("windows must be a list of objects.")
    prefix = _ids(data.get("prefix", []), "windows[].prefix", vocab)
    allowed = allowed_from_json(data.get("allowed", {}), vocab, canvas, "windows[].allowed")
    at, known = data.get("pinned"), data.get("known")
    if at is None:
        return Window(prefix, allowed=allowed)
    if isinstance(at, list) and at and all(isinstance(a, list) for a in at):  # one per candidate
        if len(at) != rows or not isinstance(known, list) or len(known) != rows:
            raise WireError(f"windows[].pinned and known per candidate must hold {rows} rows.")
        return Window(prefix, torch.tensor([_ids(k, "windows[].known", vocab, canvas) for k in known]),
                      torch.stack([_positions(a, canvas) for a in at]), allowed=allowed)
    return Window(prefix, torch.tensor(_ids(known, "windows[].known", vocab, canvas)), _positions(at, canvas),
                  allowed=allowed)


def score_body(model: str, windows: list[Window], run: RunResult, *, skip_pad: bool, seed: int, vocab: int) -> dict:
    """What ``POST /dgterm/score`` takes: the windows of a run and each candidate's final canvases."""
    rows = run.forwards.shape[0]
    return {"model": model, "skip_pad": skip_pad, "seed": seed, "windows": [window_to_json(w, vocab) for w in windows],
            "canvases": [[c[r].tolist() for c in run.canvases] for r in range(rows)]}
