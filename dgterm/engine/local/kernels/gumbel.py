"""The Gumbel-max sample the Triton sampler draws, in torch: Philox-4x32-10 uniforms keyed by a
per-row seed, bit for bit the kernel's stream. The twin of
:func:`dgterm.engine.local.kernels.sampling_triton.gumbel_sample_triton`, for the tests and
the kernel self-check (:mod:`dgterm.engine.local.kernels.selfcheck`)."""

from __future__ import annotations

import torch

PHILOX_KEY_A, PHILOX_KEY_B = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUND_A, PHILOX_ROUND_B = 0xD2511F53, 0xCD9E8D57
MASK32 = 0xFFFFFFFF


def philox_uniform(seed: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``triton.language.rand(seed, offset)`` in torch: Philox-4x32-10 on (offset, 0, 0, 0)
    keyed by the 64-bit seed, the first word mapped to [0, 1) the way Triton maps it.
    ``seed`` broadcasts against ``offset`` (int64 tensors)."""
    seed, offset = torch.broadcast_tensors(seed, offset)
    c0 = offset & MASK32
    c1 = (offset >> 32) & MASK32
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    k0 = seed & MASK32
    k1 = (seed >> 32) & MASK32
    for _ in range(10):
        p0 = PHILOX_ROUND_A * c0  # < 2**64: wraps in int64, the low 64 bits are exact
        p2 = PHILOX_ROUND_B * c2
        c0, c1, c2, c3 = (((p2 >> 32) & MASK32) ^ c1 ^ k0, p2 & MASK32,
                          ((p0 >> 32) & MASK32) ^ c3 ^ k1, p0 & MASK32)
        k0 = (k0 + PHILOX_KEY_A) & MASK32
        k1 = (k1 + PHILOX_KEY_B) & MASK32
    x = torch.where(c0 >= 1 << 31, c0 - (1 << 32), c0).to(torch.int32)  # bitcast to int32
    x = torch.where(x < 0, ~x, x)
    return x.to(torch.float32) * 4.6566127342e-10


def gumbel_sample_torch(logits: torch.Tensor, temperature: float, seeds: torch.Tensor, work: torch.Tensor,
                        fill: torch.Tensor, out: torch.Tensor):
    """Twin of :func:`dgterm.engine.local.kernels.sampling_triton.gumbel_sample_triton`.

    ``logits`` (N, V) any float dtype; ``out`` (N, V) receives ``logits / temperature``
    in its own dtype; ``seeds`` (N,) int64, the Philox key of each row. Rows not in
    ``work`` (N,) bool report ``fill`` (N,) as argmax and sample, and entropy 0.
    Returns (argmax, entropy, sample). The sample is ``argmax(x + g)`` with Gumbel noise
    ``g = -log(-log u)``, ``u`` the row's Philox stream at offsets 0..V-1."""
    n, vocab = logits.shape
    x = logits.to(torch.float32) / temperature
    out.copy_(x)
    m, argmax = x.max(dim=-1, keepdim=True)
    d = x - m
    e = torch.exp(d)
    z = e.sum(-1)
    entropy = torch.log(z) - torch.where(e > 0, e * d, 0.0).sum(-1) / z
    u = philox_uniform(seeds[:, None], torch.arange(vocab, dtype=torch.long)[None, :])
    sample = (x - torch.log(-torch.log(u))).argmax(-1)
    return (torch.where(work, argmax[:, 0], fill), entropy.masked_fill(~work, 0.0), torch.where(work, sample, fill))
