"""Self-conditioning over the top k of the previous step's distribution (opt-in, approximate).

transformers' decoder turns the previous step's logits (B, C, V) into soft embeddings as
``softmax(logits) @ embed_tokens.weight * embed_scale``: a vocabulary-sized product per
canvas position, as large as the lm head (docs/benchmarks.md, issue 27). With
``SamplerParams.sc_top_k`` = K the soft embeddings come from the K likeliest tokens only:
the softmax of their logits (renormalised over the K, float32) weighs the K gathered
embedding rows (``torch.nn.functional.embedding_bag``: no (B, C, K, H) temporary).

The decoder takes only logits, so the model is called with no self-conditioning logits
(it then builds zeros) while :func:`injected` replaces the signal its self-conditioning
block receives with these embeddings, for that one forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def soft_embeddings(logits: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, H) soft embeddings of ``logits`` (B, C, V) from their top ``k`` (at most the
    vocabulary) rows of ``weight`` (V, H), in its dtype, times ``scale`` (the decoder's embed_scale)."""
    batch, length, vocab = logits.shape
    values, ids = logits.topk(min(k, vocab), dim=-1, sorted=False)
    weights = values.softmax(dim=-1, dtype=torch.float32).to(weight.dtype)
    flat = torch.nn.functional.embedding_bag(ids.view(batch * length, -1), weight, mode="sum",
                                             per_sample_weights=weights.view(batch * length, -1))
    return flat.view(batch, length, -1) * scale.to(weight.dtype)


def signal_of(logits: torch.Tensor | None, k: int, embed: Any, length: int) -> torch.Tensor:
    """(1, C, H): one batch row's signal from its logits (1, C, V) through ``embed`` (the
    decoder's embed_tokens): none (None: a canvas's first step), exact (``k`` 0: as the
    decoder computes it) or from the top ``k``."""
    weight = embed.weight
    if logits is None:
        return weight.new_zeros(1, length, weight.shape[1])
    if k:
        return soft_embeddings(logits, weight, embed.embed_scale, k)
    return torch.matmul(logits.softmax(dim=-1, dtype=torch.float32).to(weight.dtype), weight) \
        * embed.embed_scale.to(weight.dtype)


@contextmanager
def injected(decoder: Any, signal: torch.Tensor) -> Iterator[None]:
    """Within the block, the decoder's self-conditioning block receives ``signal`` (B, C, H)
    in place of the zeros a forward without self-conditioning logits gives it."""

    def replace(module, args):
        return args[0], signal.to(args[1].dtype)

    handle = decoder.self_conditioning.register_forward_pre_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def top_k_logits(model: Any, k: int, self_conditioning: torch.Tensor | None, **inputs: Any) -> torch.Tensor:
    """One forward of ``model`` (a DiffusionGemmaForBlockDiffusion) with ``inputs``,
    self-conditioned on the top ``k`` of ``self_conditioning`` (None: the first step, none)."""
    if self_conditioning is None:
        return model(**inputs).logits
    decoder = model.model.decoder
    embed = decoder.embed_tokens
    with injected(decoder, soft_embeddings(self_conditioning, embed.weight, embed.embed_scale, k)):
        return model(**inputs).logits
