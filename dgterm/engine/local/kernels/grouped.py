"""The grouped NF4 matmul, whichever way this machine runs it: the Triton kernel
(:mod:`dgterm.engine.local.kernels.nf4_triton`) on CUDA when Triton imports and the kernel
passed its self-check (:mod:`dgterm.engine.local.kernels.selfcheck`), else its pure-torch
twin (:func:`dgterm.engine.local.kernels.nf4.grouped_matmul_nf4_torch`)."""

from __future__ import annotations

import torch

from dgterm.engine.local.kernels.nf4 import BLOCKSIZE, grouped_matmul_nf4_torch


def pick_impl(x: torch.Tensor, impl: str | None = None, kernel: str = "nf4_grouped_matmul") -> str:
    """'triton' or 'torch' for ``kernel`` on ``x``'s device: ``impl`` when given, else the
    kernel mode (``--kernels``, ``DGTERM_KERNELS``) and in ``auto`` the kernel's self-check."""
    from dgterm.engine.local.kernels import selfcheck

    if impl is not None and impl != "auto":
        return impl
    return "triton" if selfcheck.use_triton(kernel, x.device) else "torch"


def grouped_matmul_nf4(x, offsets, packed, absmax, k, blocksize: int = BLOCKSIZE, impl: str | None = None):
    if pick_impl(x, impl) == "triton":
        from dgterm.engine.local.kernels.nf4_triton import grouped_matmul_nf4_triton

        return grouped_matmul_nf4_triton(x, offsets, packed, absmax, k, blocksize)
    return grouped_matmul_nf4_torch(x, offsets, packed, absmax, k, blocksize)
