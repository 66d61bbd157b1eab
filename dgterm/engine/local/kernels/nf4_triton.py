"""Triton grouped matmul with NF4 weights dequantized in registers.

``out[r] = x[r] @ dequant(W[e(r)]).T`` for rows ``x`` sorted by expert, the format of
:mod:`dgterm.engine.local.kernels.nf4`. The grid is (tile, N-block): a *tile* is up to
``BLOCK_M`` consecutive rows of one expert. Tiles are laid out on the device from the
expert offsets (no host synchronisation): their number is bounded by ``M // BLOCK_M + E``
and programs past the last tile return at once. Each program streams its expert's packed
codes and absmax for a ``BLOCK_N`` slice of outputs, decodes them through the 16-entry NF4
table, scales by the block's absmax, and accumulates ``tl.dot`` in float32.

The twin is :func:`dgterm.engine.local.kernels.nf4.grouped_matmul_nf4_torch`; the test runs both
under ``TRITON_INTERPRET=1`` on the CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from dgterm.engine.local.kernels.nf4 import BLOCKSIZE, nf4_code


@triton.jit
def _nf4_grouped_mm_kernel(
    x_ptr, out_ptr, packed_ptr, absmax_ptr, code_ptr,
    tile_expert_ptr, tile_row_ptr, offsets_ptr,
    N, K, KH, NB,
    stride_xm, stride_om,
    BS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    tile = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(tile_expert_ptr + tile)
    if e >= 0:
        row0 = tl.load(tile_row_ptr + tile)
        row_end = tl.load(offsets_ptr + e + 1)
        rm = row0 + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = rm < row_end
        mask_n = rn < N
        e64 = e.to(tl.int64)
        w_packed = packed_ptr + e64 * N * KH
        w_absmax = absmax_ptr + e64 * N * NB
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        HALF: tl.constexpr = BLOCK_K // 2
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            mask_k = rk < K
            x = tl.load(x_ptr + rm[:, None].to(tl.int64) * stride_xm + rk[None, :],
                        mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            rh = k0 // 2 + tl.arange(0, HALF)
            byte = tl.load(w_packed + rn[:, None].to(tl.int64) * KH + rh[None, :],
                           mask=mask_n[:, None] & (rh[None, :] < KH), other=0).to(tl.int32)
            idx = tl.interleave(byte >> 4, byte & 0xF)  # (BLOCK_N, BLOCK_K): even k in the high nibble
            vals = tl.load(code_ptr + idx)
            amax = tl.load(w_absmax + rn[:, None].to(tl.int64) * NB + rk[None, :] // BS,
                           mask=mask_n[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
            w = (vals * amax).to(x.dtype)
            acc += tl.dot(x, tl.trans(w))
        out = acc.to(out_ptr.dtype.element_ty)
        tl.store(out_ptr + rm[:, None].to(tl.int64) * stride_om + rn[None, :], out,
                 mask=mask_m[:, None] & mask_n[None, :])


def _tiles(offsets: torch.Tensor, m: int, block_m: int):
    """(tile_expert, tile_row) of length M // BLOCK_M + E, -1 for unused tiles; device-side only."""
    e_count = offsets.numel() - 1
    counts = offsets[1:] - offsets[:-1]
    per = (counts + block_m - 1) // block_m
    cum = torch.cumsum(per, 0)
    t_max = m // block_m + e_count
    t = torch.arange(t_max, device=offsets.device, dtype=cum.dtype)
    e = torch.searchsorted(cum, t, right=True)
    valid = e < e_count
    ec = e.clamp(max=e_count - 1)
    first = cum[ec] - per[ec]
    row = offsets[:-1][ec] + (t - first) * block_m
    return torch.where(valid, ec, -1).to(torch.int32), row.to(torch.int32), t_max


def grouped_matmul_nf4_triton(x: torch.Tensor, offsets: torch.Tensor, packed: torch.Tensor, absmax: torch.Tensor,
                              k: int, blocksize: int = BLOCKSIZE, block_m: int | None = None,
                              block_n: int = 64, block_k: int = 64, num_warps: int = 4) -> torch.Tensor:
    m = x.shape[0]
    e_count, n, kh = packed.shape
    out = x.new_empty(m, n)
    if m == 0:
        return out
    x = x.contiguous()
    if block_m is None:  # few rows per expert in a canvas step (~C*top_k/E); more when prefilling
        block_m = 16 if m <= 16 * e_count else (32 if m <= 64 * e_count else 64)
    offsets = offsets.to(device=x.device, dtype=torch.int32)
    tile_expert, tile_row, t_max = _tiles(offsets, m, block_m)
    grid = (t_max, triton.cdiv(n, block_n))
    with torch.cuda.device(x.device) if x.is_cuda else _null():
        _nf4_grouped_mm_kernel[grid](
            x, out, packed, absmax, nf4_code(x.device),
            tile_expert, tile_row, offsets,
            n, k, kh, absmax.shape[-1],
            x.stride(0), out.stride(0),
            BS=blocksize, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=num_warps,
        )
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
