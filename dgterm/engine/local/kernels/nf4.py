"""Block-quantized weight formats and the grouped (per-expert) matmul over them.

Formats, for a weight ``W`` of shape ``(..., N, K)`` (``N`` outputs, ``K`` inputs, the
layout of ``nn.Linear`` and of each expert in DiffusionGemma's fused expert tensors):

``nf4``
    Each row is cut into blocks of ``blocksize`` (64) consecutive inputs; a row whose ``K``
    is not a multiple of the block size is zero-padded to ``Kp``. Each block stores its
    absolute maximum (``absmax``, float16, shape ``(..., N, Kp // blocksize)``) and, per
    element, the index (0..15) of the nearest of the 16 NF4 levels of ``W / absmax``
    (QLoRA's NormalFloat4, the table of bitsandbytes). Two indices share a byte, the
    first (even ``k``) in the high nibble: ``packed`` is uint8 ``(..., N, Kp // 2)``.
    With ``K % 64 == 0`` and a float32 absmax this is, byte for byte, what
    ``bitsandbytes.functional.quantize_4bit(W, blocksize=64, quant_type="nf4")`` stores
    (tested); dgterm keeps absmax in float16 (0.53 bytes per weight instead of 0.56).
``int8``
    Symmetric per-row: ``q`` int8 ``(..., N, K)`` = round(W / scale), ``scale`` float32
    ``(..., N)`` = absmax(row) / 127.

:func:`grouped_matmul_nf4_torch` multiplies rows of ``x`` that are sorted by expert with each
expert's NF4 weight, dequantizing one expert at a time: the twin of the Triton kernel in
:mod:`dgterm.engine.local.kernels.nf4_triton`; :mod:`dgterm.engine.local.kernels.grouped` picks one.
"""

from __future__ import annotations

import torch

BLOCKSIZE = 64

# QLoRA's NormalFloat4 levels (bitsandbytes' table).
NF4_CODE = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)
_FP16_MAX = 65504.0
_cache: dict = {}


def nf4_code(device) -> torch.Tensor:
    key = ("code", str(device))
    if key not in _cache:
        _cache[key] = torch.tensor(NF4_CODE, dtype=torch.float32, device=device)
    return _cache[key]


def _midpoints(device) -> torch.Tensor:
    key = ("mid", str(device))
    if key not in _cache:
        c = nf4_code(device)
        _cache[key] = (c[1:] + c[:-1]) / 2
    return _cache[key]


def padded(k: int, blocksize: int = BLOCKSIZE) -> int:
    return -(-k // blocksize) * blocksize


# ---------------------------------------------------------------- quantize / dequantize


@torch.no_grad()
def quantize_nf4(w: torch.Tensor, blocksize: int = BLOCKSIZE, absmax_dtype=torch.float16):
    """``w`` (..., N, K) -> (packed uint8 (..., N, Kp/2), absmax (..., N, Kp/blocksize))."""
    if blocksize % 2:
        raise ValueError("blocksize must be even")
    *lead, n, k = w.shape
    kp = padded(k, blocksize)
    x = w.float()
    if kp != k:
        x = torch.nn.functional.pad(x, (0, kp - k))
    x = x.reshape(*lead, n, kp // blocksize, blocksize)
    absmax = x.abs().amax(dim=-1)
    if absmax_dtype == torch.float16:
        absmax = absmax.clamp(max=_FP16_MAX)
    absmax = absmax.to(absmax_dtype)
    inv = 1.0 / absmax.float().clamp(min=1e-38)
    scaled = torch.clamp(x * inv.unsqueeze(-1), -1, 1)
    del x
    q = torch.bucketize(scaled, _midpoints(w.device), out_int32=True).to(torch.uint8)
    del scaled
    q = q.reshape(*lead, n, kp)
    packed = (q[..., 0::2] << 4) | q[..., 1::2]
    return packed.contiguous(), absmax.contiguous()


def dequantize_nf4(packed: torch.Tensor, absmax: torch.Tensor, k: int, dtype=torch.float32,
                   blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Inverse of :func:`quantize_nf4` (up to the quantization error): (..., N, K) in ``dtype``."""
    *lead, n, half = packed.shape
    kp = half * 2
    code = nf4_code(packed.device)
    idx = torch.stack(((packed >> 4), (packed & 0xF)), dim=-1).reshape(*lead, n, kp).long()
    vals = code[idx].reshape(*lead, n, kp // blocksize, blocksize)
    out = (vals * absmax.float().unsqueeze(-1)).reshape(*lead, n, kp)
    if kp != k:
        out = out[..., :k]
    return out.to(dtype)


@torch.no_grad()
def quantize_int8(w: torch.Tensor):
    """``w`` (..., N, K) -> (q int8 (..., N, K), scale float32 (..., N))."""
    x = w.float()
    scale = x.abs().amax(dim=-1).clamp(min=1e-12) / 127.0
    q = torch.round(x / scale.unsqueeze(-1)).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    return (q.float() * scale.unsqueeze(-1)).to(dtype)


def quantize_rows(w: torch.Tensor, fmt: str, blocksize: int = BLOCKSIZE, max_elems: int = 1 << 20, device=None):
    """Quantize ``w`` (..., N, K) to ``fmt`` a few leading rows at a time (bounded temporaries);
    returns the two tensors of the format on ``device`` (default: ``w``'s)."""
    device = device or w.device
    row = max(1, w[0].numel()) if w.shape[0] else 1
    step = max(1, max_elems // row)
    qs, ss = [], []
    for r in range(0, w.shape[0], step):
        part = w[r:r + step].to(device)
        q, s = quantize_nf4(part, blocksize) if fmt == "nf4" else quantize_int8(part)
        qs.append(q)
        ss.append(s)
        del part
    if len(qs) == 1:
        return qs[0], ss[0]
    return torch.cat(qs), torch.cat(ss)


# ---------------------------------------------------------------- grouped matmul


def grouped_matmul_nf4_torch(x: torch.Tensor, offsets: torch.Tensor, packed: torch.Tensor, absmax: torch.Tensor,
                             k: int, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Pure-torch twin of the Triton kernel.

    ``x`` (M, K): rows sorted by expert, rows ``offsets[e]:offsets[e+1]`` go to expert ``e``;
    ``packed`` (E, N, Kp/2) and ``absmax`` (E, N, Kp/bs) hold the experts' NF4 weights.
    Returns (M, N) in ``x.dtype``: ``out[r] = x[r] @ dequant(W[e(r)]).T``. Only experts
    that received rows are dequantized, one at a time.
    """
    n = packed.shape[-2]
    out = x.new_empty(x.shape[0], n)
    bounds = offsets.tolist()
    for e in range(len(bounds) - 1):
        lo, hi = bounds[e], bounds[e + 1]
        if hi > lo:
            w = dequantize_nf4(packed[e], absmax[e], k, x.dtype, blocksize)
            out[lo:hi] = torch.nn.functional.linear(x[lo:hi], w)
    return out
