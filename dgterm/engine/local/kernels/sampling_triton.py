"""Triton kernel of the fused sampling pass: one program per row (canvas position).

The program streams its row of logits once in blocks of ``BLOCK`` entries: it divides
by the temperature (IEEE division, so the argmax is the reference's), writes the
processed logits (the next step's self-conditioning input) in the output's dtype, and
keeps running statistics: the max and its first index, ``Z = Σ exp(x - m)`` and
``S = Σ exp(x - m)·(x - m)`` rescaled whenever the max grows (online softmax), and the
best ``x + g`` with Gumbel noise ``g = -log(-log u)``, ``u = tl.rand(seed, v)`` from the
row's Philox seed: a sample from ``softmax(x)`` with no random tensor in memory. Rows
not marked ``work`` (pinned or finished) only get the division and report their
``fill`` id with entropy 0.

The twin is :func:`dgterm.engine.local.kernels.gumbel.gumbel_sample_torch`; the tests run
both under ``TRITON_INTERPRET=1`` on the CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _fused_sample_kernel(x_ptr, out_ptr, seed_ptr, work_ptr, fill_ptr, argmax_ptr, entropy_ptr, sample_ptr,
                         temperature, V, stride_x, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row.to(tl.int64) * stride_x
    o_row = out_ptr + row.to(tl.int64) * stride_o
    work = tl.load(work_ptr + row) != 0
    if work:
        seed = tl.load(seed_ptr + row)
        m = -float("inf")
        z = 0.0
        s = 0.0
        best = -float("inf")
        best_i = 0
        g_best = -float("inf")
        g_i = 0
        for v0 in range(0, V, BLOCK):
            offs = v0 + tl.arange(0, BLOCK)
            inside = offs < V
            x = tl.load(x_row + offs, mask=inside, other=-float("inf")).to(tl.float32)
            x = tl.math.div_rn(x, temperature)
            tl.store(o_row + offs, x.to(out_ptr.dtype.element_ty), mask=inside)
            block_max = tl.max(x, 0)
            block_i = tl.argmax(x, 0)
            if block_max > best:
                best_i = v0 + block_i
                best = block_max
            m_new = tl.maximum(m, block_max)
            d = tl.where(inside, x - m_new, 0.0)
            e = tl.where(inside, tl.exp(d), 0.0)
            shrink = tl.exp(m - m_new)
            grown = tl.where(z > 0, (m - m_new) * z, 0.0)
            s = shrink * (s + grown) + tl.sum(tl.where(e > 0, e * d, 0.0), 0)
            z = shrink * z + tl.sum(e, 0)
            m = m_new
            u = tl.rand(seed, offs)
            y = tl.where(inside, x - tl.log(-tl.log(u)), -float("inf"))
            y_max = tl.max(y, 0)
            y_i = tl.argmax(y, 0)
            if y_max > g_best:
                g_i = v0 + y_i
                g_best = y_max
        # best_i and g_i start as 0 and become Triton scalars in the loop (the JIT types them; mypy sees an int)
        tl.store(argmax_ptr + row, best_i.to(tl.int64))  # type: ignore[attr-defined]
        tl.store(sample_ptr + row, g_i.to(tl.int64))  # type: ignore[attr-defined]
        tl.store(entropy_ptr + row, tl.log(z) - s / z)
    else:
        for v0 in range(0, V, BLOCK):
            offs = v0 + tl.arange(0, BLOCK)
            inside = offs < V
            x = tl.load(x_row + offs, mask=inside, other=0.0).to(tl.float32)
            tl.store(o_row + offs, tl.math.div_rn(x, temperature).to(out_ptr.dtype.element_ty), mask=inside)
        fill = tl.load(fill_ptr + row)
        tl.store(argmax_ptr + row, fill)
        tl.store(sample_ptr + row, fill)
        tl.store(entropy_ptr + row, 0.0)


def gumbel_sample_triton(logits: torch.Tensor, temperature: float, seeds: torch.Tensor, work: torch.Tensor,
                         fill: torch.Tensor, out: torch.Tensor, block: int = 2048):
    """Same contract as :func:`dgterm.engine.local.kernels.gumbel.gumbel_sample_torch`.
    ``out`` may be ``logits`` itself (same dtype): each block is read before it is written."""
    n, vocab = logits.shape
    argmax = torch.empty(n, dtype=torch.long, device=logits.device)
    sample = torch.empty_like(argmax)
    entropy = torch.empty(n, dtype=torch.float32, device=logits.device)
    _fused_sample_kernel[(n,)](logits, out, seeds, work.to(torch.int8), fill, argmax, entropy, sample,
                               float(temperature), vocab, logits.stride(0), out.stride(0), BLOCK=block)
    return argmax, entropy, sample
