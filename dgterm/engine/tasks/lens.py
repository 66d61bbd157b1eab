"""The confidence lens as a request: the region checked and tokenized, and what comes back
per token. Every engine answers it (``Engine.confidence``): the local one with
:mod:`dgterm.engine.local.lens`, the remote one with read-only requests."""

from __future__ import annotations

from dataclasses import dataclass

from dgterm.engine.params import CHARS_PER_TOKEN_BOUND
from dgterm.errors import InputError


@dataclass(frozen=True)
class LensToken:
    start: int  # character offsets of the token in the text, end exclusive
    end: int
    token: str
    prob: float  # probability of this token with it hidden (its group noised)
    top: str  # the model's most likely token at this position
    top_prob: float


def lens_region(tok, text: str, start: int, end: int | None, stride: int, batch: int, max_context: int):
    """Check a lens request and tokenize it: (end, ids of the region, their character
    offsets, the ids of the context before it, BOS first when the context starts the text).
    Shared by the in-process lens and the remote one."""
    end = len(text) if end is None else end
    if not 0 <= start <= end <= len(text):
        raise InputError(f"Lens region {start}:{end} is outside the text (0:{len(text)}).")
    if stride < 1 or batch < 1:
        raise InputError("The lens stride and batch must be at least 1.")
    enc = tok(text[start:end], add_special_tokens=False, return_offsets_mapping=True)
    head_from = max(0, start - max_context * CHARS_PER_TOKEN_BOUND)
    head = tok(text[head_from:start], add_special_tokens=False)["input_ids"] if start > head_from else []
    if head_from == 0 and tok.bos_token_id is not None:
        head = [tok.bos_token_id] + head
    return end, enc["input_ids"], enc["offset_mapping"], head
