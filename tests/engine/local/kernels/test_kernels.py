"""The NF4/int8 formats and the grouped matmul: round trips, bitsandbytes compatibility,
the torch twin against a dense reference, and the Triton kernel against its twin."""

from __future__ import annotations

import pytest
import torch

from dgterm.engine.local.kernels import nf4 as K
from tests.helpers.interpreter import run_interpreted


def test_nf4_round_trip_is_the_nearest_level():
    torch.manual_seed(0)
    w = torch.randn(3, 10, 128)
    q, a = K.quantize_nf4(w)
    assert q.dtype == torch.uint8 and q.shape == (3, 10, 64) and a.shape == (3, 10, 2) and a.dtype == torch.float16
    d = K.dequantize_nf4(q, a, 128)
    code = torch.tensor(K.NF4_CODE)
    scaled = (w.reshape(3, 10, 2, 64) / a.float().unsqueeze(-1)).clamp(-1, 1)
    nearest = code[(scaled.unsqueeze(-1) - code).abs().argmin(-1)]
    expect = (nearest * a.float().unsqueeze(-1)).reshape(3, 10, 128)
    torch.testing.assert_close(d, expect, rtol=0, atol=1e-6)
    # Gaussian weights: NF4's relative RMS error is ~9% (the price of 4 bits).
    assert 0.05 < ((d - w).norm() / w.norm()).item() < 0.12


def test_nf4_pads_rows_that_are_not_a_multiple_of_the_block():
    w = torch.randn(5, 100)
    q, a = K.quantize_nf4(w)
    assert q.shape == (5, 64) and a.shape == (5, 2)
    d = K.dequantize_nf4(q, a, 100)
    assert d.shape == (5, 100)
    assert ((d - w).norm() / w.norm()).item() < 0.12
    zero = K.dequantize_nf4(*K.quantize_nf4(torch.zeros(2, 64)), 64)
    assert torch.equal(zero, torch.zeros(2, 64))


def test_nf4_matches_bitsandbytes_byte_for_byte():
    bnb_f = pytest.importorskip("bitsandbytes.functional")
    torch.manual_seed(1)
    w = torch.randn(16, 256)
    q, a = K.quantize_nf4(w, absmax_dtype=torch.float32)
    bq, state = bnb_f.quantize_4bit(w, blocksize=64, quant_type="nf4")
    assert torch.equal(q.reshape(-1), bq.reshape(-1))
    torch.testing.assert_close(a.reshape(-1), state.absmax.reshape(-1))
    torch.testing.assert_close(K.dequantize_nf4(q, a, 256), bnb_f.dequantize_4bit(bq, state))


def test_int8_round_trip():
    w = torch.randn(4, 7, 33)
    q, s = K.quantize_int8(w)
    assert q.dtype == torch.int8 and s.shape == (4, 7)
    d = K.dequantize_int8(q, s)
    assert ((d - w).abs() <= s.unsqueeze(-1) / 2 + 1e-7).all()


def test_quantize_rows_equals_one_shot():
    w = torch.randn(9, 12, 64)
    for fmt in ("nf4", "int8"):
        one = K.quantize_nf4(w) if fmt == "nf4" else K.quantize_int8(w)
        rows = K.quantize_rows(w, fmt, max_elems=12 * 64 * 2)
        assert all(torch.equal(x, y) for x, y in zip(one, rows))


def _grouped_case(seed=0, e=6, n=48, k=128, counts=(3, 0, 17, 1, 0, 9)):
    torch.manual_seed(seed)
    w = torch.randn(e, n, k) * 0.05
    q, a = K.quantize_nf4(w)
    counts = torch.tensor(counts)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    x = torch.randn(int(counts.sum()), k)
    return x, offsets, q, a, k


def test_grouped_matmul_twin_matches_dense_reference():
    x, offsets, q, a, k = _grouped_case()
    y = K.grouped_matmul_nf4_torch(x, offsets, q, a, k)
    w = K.dequantize_nf4(q, a, k)
    expert = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets[1:] - offsets[:-1])
    ref = torch.einsum("mk,mnk->mn", x, w[expert])
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


TRITON_SCRIPT = r"""
import json, torch
from dgterm.engine.local.kernels import nf4 as K
from dgterm.engine.local.kernels.nf4_triton import grouped_matmul_nf4_triton
out = {}
for name, (e, n, k, counts) in {"experts": (6, 48, 128, (3, 0, 17, 1, 0, 9)),
                                "padded_k": (3, 40, 100, (5, 2, 0)),
                                "linear": (1, 70, 64, (37,))}.items():
    torch.manual_seed(0)
    w = torch.randn(e, n, k) * 0.05
    q, a = K.quantize_nf4(w)
    counts = torch.tensor(counts)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    x = torch.randn(int(counts.sum()), k)
    twin = K.grouped_matmul_nf4_torch(x, offsets, q, a, k)
    tri = grouped_matmul_nf4_triton(x, offsets, q, a, k, block_m=16, block_n=32, block_k=64)
    out[name] = float((twin - tri).abs().max() / twin.abs().max())
print(json.dumps(out))
"""


def test_triton_kernel_matches_torch_twin_in_the_interpreter():
    errors = run_interpreted(TRITON_SCRIPT)
    assert set(errors) == {"experts", "padded_k", "linear"}
    assert all(v < 1e-5 for v in errors.values()), errors
