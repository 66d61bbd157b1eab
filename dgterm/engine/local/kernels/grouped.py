"""The grouped NF4 matmul, whichever way this machine runs it: the Triton kernel
(:mod:`dgterm.engine.local.kernels.nf4_triton`) on CUDA when Triton imports, else its pure-torch
twin (:func:`dgterm.engine.local.kernels.nf4.grouped_matmul_nf4_torch`)."""

from __future__ import annotations

import os

import torch

from dgterm.engine.local.kernels.nf4 import BLOCKSIZE, grouped_matmul_nf4_torch

_triton: list = []  # [whether Triton imports], once known


def triton_available() -> bool:
    if not _triton:
        try:
            import triton  # noqa: F401

            _triton.append(True)
        except Exception:  # noqa: BLE001 - a broken Triton install means: use the twin
            _triton.append(False)
    return _triton[0]


def pick_impl(x: torch.Tensor, impl: str | None = None) -> str:
    """'triton' on CUDA when Triton imports, else 'torch'; ``DGTERM_KERNELS=torch`` forces the twin."""
    impl = impl or os.environ.get("DGTERM_KERNELS", "auto")
    if impl == "auto":
        return "triton" if x.is_cuda and triton_available() else "torch"
    return impl


def grouped_matmul_nf4(x, offsets, packed, absmax, k, blocksize: int = BLOCKSIZE, impl: str | None = None):
    if pick_impl(x, impl) == "triton":
        from dgterm.engine.local.kernels.nf4_triton import grouped_matmul_nf4_triton

        return grouped_matmul_nf4_triton(x, offsets, packed, absmax, k, blocksize)
    return grouped_matmul_nf4_torch(x, offsets, packed, absmax, k, blocksize)
