"""The CPU paths of the kernels (what runs where Triton does not: the nf4 matmul's torch twin,
the sampler's CPU pass), each checked against plain torch: ``dgterm doctor --selftest``'s CPU
rows. The Triton kernels' own checks are :mod:`dgterm.engine.local.kernels.selfcheck`'s."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def _check_nf4_cpu(device: torch.device) -> str | None:
    """The torch twin against a plain matmul with each expert's weights dequantized whole."""
    from dgterm.engine.local.kernels.nf4 import dequantize_nf4, grouped_matmul_nf4_torch, quantize_nf4

    g = torch.Generator().manual_seed(1)
    packed, absmax = quantize_nf4(torch.randn(3, 32, 100, generator=g))  # K not a multiple of the block: padded
    x = torch.randn(10, 100, generator=g)
    got = grouped_matmul_nf4_torch(x, torch.tensor([0, 4, 4, 10]), packed, absmax, 100)
    w = dequantize_nf4(packed, absmax, 100)
    want = torch.cat([x[:4] @ w[0].T, x[4:] @ w[2].T])
    err = float((got - want).abs().max() / want.abs().max())
    return None if err < 1e-5 else f"mismatch: relative error {err:.2g}"


def _check_sampler_cpu(device: torch.device) -> str | None:
    """The CPU pass against softmax statistics and an inverse CDF computed the plain way."""
    from dgterm.engine.local.kernels.sampling import fused_sample_cpu

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 2048, generator=g) * 3
    u = torch.rand(6, generator=g)
    x = logits / 0.7
    argmax, entropy, sample = fused_sample_cpu(logits.clone(), torch.tensor(0.7), torch.ones(6, dtype=torch.bool), u)
    p = x.double().softmax(-1)
    want = torch.searchsorted(p.cumsum(-1), u.double()[:, None], right=True)[:, 0].clamp(max=2047)
    if not torch.equal(argmax, x.argmax(-1)):
        return "mismatch: argmax differs"
    err = float((entropy.double() - torch.distributions.Categorical(probs=p).entropy()).abs().max())
    if err > 1e-3:
        return f"mismatch: entropy off by {err:.2g}"
    return None if int((sample - want).abs().max()) <= 1 else "mismatch: sample off the inverse CDF"


# The CPU paths that run where Triton does not (their own check, against plain torch).
CPU_PATHS: dict[str, Callable[[torch.device], str | None]] = {"nf4_grouped_matmul": _check_nf4_cpu,
                                                               "fused_sampler": _check_sampler_cpu}


def cpu_row(kernel: str, device: torch.device | None = None) -> dict:
    """The CPU path of ``kernel`` (what runs where Triton does not) against plain torch."""
    device = device or torch.device("cpu")
    t0 = time.perf_counter()
    try:
        problem = CPU_PATHS[kernel](device)
    except Exception as e:  # noqa: BLE001 - reported in the table, not raised
        problem = f"{type(e).__name__}: {e}"
    return {"kernel": kernel, "device": str(device), "ok": problem is None, "path": "torch (CPU)",
            "detail": problem or "agrees with plain torch", "seconds": round(time.perf_counter() - t0, 4)}
