"""The quantized modules that replace DiffusionGemma's experts and linears, and applying a
plan to a model. Imports torch: its users import it inside the functions that need it.

A dense checkpoint tensor ``X`` becomes ``X.qweight`` + ``X.absmax`` (nf4) or ``X.qweight`` +
``X.scale`` (int8); formats in :mod:`dgterm.engine.local.kernels.nf4`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dgterm.engine.local.kernels import nf4 as K
from dgterm.engine.local.kernels.grouped import grouped_matmul_nf4, pick_impl
from dgterm.engine.local.quant.plans import MOE_CHUNK_ROWS, component_of, get_plan


class QuantWeight(nn.Module):
    """A block-quantized weight of logical shape (*lead, N, K): buffers ``qweight`` and
    ``absmax`` (nf4) or ``scale`` (int8). Replaces a dense tensor of the same name."""

    qweight: torch.Tensor
    absmax: torch.Tensor  # nf4
    scale: torch.Tensor  # int8

    def __init__(self, shape, fmt: str, dtype, device="meta", blocksize: int = K.BLOCKSIZE):
        super().__init__()
        if fmt not in ("int8", "nf4"):
            raise ValueError(f"unknown format {fmt}")
        *lead, n, k = shape
        self.shape = tuple(shape)
        self.fmt = fmt
        self.blocksize = blocksize
        self.compute_dtype = dtype
        if fmt == "nf4":
            kp = K.padded(k, blocksize)
            self.register_buffer("qweight", torch.empty(*lead, n, kp // 2, dtype=torch.uint8, device=device))
            self.register_buffer("absmax", torch.empty(*lead, n, kp // blocksize, dtype=torch.float16, device=device))
        else:
            self.register_buffer("qweight", torch.empty(*lead, n, k, dtype=torch.int8, device=device))
            self.register_buffer("scale", torch.empty(*lead, n, dtype=torch.float32, device=device))

    @property
    def dtype(self):
        return self.compute_dtype

    @property
    def device(self):
        return self.qweight.device

    @property
    def in_features(self) -> int:
        return self.shape[-1]

    def extra_repr(self) -> str:
        return f"shape={self.shape}, fmt={self.fmt}"

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())

    @torch.no_grad()
    def load_dense_(self, w, index: slice | None = None, work_device=None) -> None:
        """Quantize the dense ``w`` into place; ``index``: the slice of the leading dim it
        covers. Works through ``w`` a few rows at a time to bound the temporaries
        (2^20 elements on the CPU, 2^24 on a GPU: ~0.3 GB of float32 temporaries, less than
        the runtime buffers the plan reserves and that do not exist yet while loading).
        ``work_device``: quantize there instead (a GPU, for experts kept in host RAM)."""
        if tuple(w.shape[1:]) != self.shape[1:] or (index is None and w.shape[0] != self.shape[0]):
            raise ValueError(f"shape {tuple(w.shape)} does not match {self.shape}")
        dev = torch.device(work_device) if work_device is not None else self.qweight.device
        base = 0 if index is None else (index.start or 0)
        row = max(1, w[0].numel()) if w.shape[0] else 1
        step = max(1, (1 << (24 if dev.type == "cuda" else 20)) // row)
        for r in range(0, w.shape[0], step):
            part = w[r:r + step].to(dev, non_blocking=True)
            sel = slice(base + r, base + r + part.shape[0])
            if self.fmt == "nf4":
                q, a = K.quantize_nf4(part, self.blocksize)
                self.qweight[sel].copy_(q)
                self.absmax[sel].copy_(a)
            else:
                q, s = K.quantize_int8(part)
                self.qweight[sel].copy_(q)
                self.scale[sel].copy_(s)
            del part, q

    def dequantize(self, index=None, dtype=None, device=None):
        dtype = dtype or self.compute_dtype
        q = self.qweight if index is None else self.qweight[index]
        if self.fmt == "nf4":
            a = self.absmax if index is None else self.absmax[index]
            if device is not None:
                q, a = q.to(device, non_blocking=True), a.to(device, non_blocking=True)
            return K.dequantize_nf4(q, a, self.shape[-1], dtype, self.blocksize)
        s = self.scale if index is None else self.scale[index]
        if device is not None:
            q, s = q.to(device, non_blocking=True), s.to(device, non_blocking=True)
        return K.dequantize_int8(q, s, dtype)

    def staged(self, device) -> QuantWeight:
        """A copy of this weight with its buffers on ``device`` (host-RAM experts, streamed)."""
        import copy

        twin = copy.copy(self)
        twin._buffers = {k: b.to(device, non_blocking=True) for k, b in self._buffers.items() if b is not None}
        return twin

    def matmul(self, x):
        """``x @ W.T`` for a 2-D weight, dequantizing on the fly."""
        if self.fmt == "nf4":
            if x.device == self.qweight.device and pick_impl(x) == "triton":
                x2 = x.reshape(-1, x.shape[-1])
                offsets = torch.tensor([0, x2.shape[0]], device=x.device, dtype=torch.int32)
                y = grouped_matmul_nf4(x2, offsets, self.qweight[None], self.absmax[None], self.shape[-1],
                                         self.blocksize)
                return y.reshape(*x.shape[:-1], self.shape[0])
            return F.linear(x, self.dequantize(dtype=x.dtype, device=x.device))
        q, s = self.qweight, self.scale
        if q.device != x.device:
            q, s = q.to(x.device, non_blocking=True), s.to(x.device, non_blocking=True)
        return F.linear(x, q.to(x.dtype)) * s.to(x.dtype)

class QuantLinear(nn.Module):
    """``nn.Linear`` with a :class:`QuantWeight` as ``weight`` (same forward)."""

    def __init__(self, in_features: int, out_features: int, fmt: str, dtype, bias: bool = False,
                 device="meta", blocksize: int = K.BLOCKSIZE):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = QuantWeight((out_features, in_features), fmt, dtype, device, blocksize)
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype, device=device), requires_grad=False) \
            if bias else None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.weight.fmt}"

    def forward(self, x):
        y = self.weight.matmul(x)
        return y + self.bias.to(y.dtype) if self.bias is not None else y

class QuantizedExperts(nn.Module):
    """Drop-in for ``DiffusionGemmaTextExperts``: the same forward
    ``(hidden_states (T, H), top_k_index (T, k), top_k_weights (T, k)) -> (T, H)``.

    Token-expert pairs are sorted by expert; each expert that received tokens has its
    weights dequantized on the fly (the Triton kernel on CUDA dequantizes in registers;
    its torch twin one expert at a time), so only routed experts are touched. Experts
    kept in host RAM (``--offload-experts``, ``--allow-offload``) are either streamed
    (``offload = 'stream'``: the packed weights copied to the GPU for the step) or run
    where they are (``'cpu'``: the tokens go to the host and back).
    """

    offload = "stream"

    def __init__(self, num_experts: int, hidden_dim: int, intermediate_dim: int, fmt: str, dtype, act_fn,
                 device="meta", blocksize: int = K.BLOCKSIZE):
        super().__init__()
        self.num_experts, self.hidden_dim, self.intermediate_dim = num_experts, hidden_dim, intermediate_dim
        self.gate_up_proj = QuantWeight((num_experts, 2 * intermediate_dim, hidden_dim), fmt, dtype, device, blocksize)
        self.down_proj = QuantWeight((num_experts, hidden_dim, intermediate_dim), fmt, dtype, device, blocksize)
        self.act_fn = act_fn
        self.chunk_rows = MOE_CHUNK_ROWS

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, fmt={self.gate_up_proj.fmt}"

    def _grouped(self, w, x, offsets):
        if w.device != x.device and w.fmt == "nf4" and pick_impl(x) == "triton":
            w = w.staged(x.device)  # the layer's packed experts over PCIe, then the fused kernel
        fused = (w.fmt == "nf4" and x.device == w.qweight.device and pick_impl(x) == "triton")
        if fused:
            return grouped_matmul_nf4(x, offsets, w.qweight, w.absmax, w.shape[-1], w.blocksize)
        out = x.new_empty(x.shape[0], w.shape[1])
        bounds = offsets.tolist()
        for e in range(self.num_experts):
            lo, hi = bounds[e], bounds[e + 1]
            if hi > lo:
                out[lo:hi] = F.linear(x[lo:hi], w.dequantize(e, dtype=x.dtype, device=x.device))
        return out

    def forward(self, hidden_states, top_k_index, top_k_weights):
        home = self.gate_up_proj.device
        if self.offload == "cpu" and hidden_states.device != home:
            out = self._forward(hidden_states.to(home), top_k_index.to(home), top_k_weights.to(home))
            return out.to(hidden_states.device, non_blocking=True)
        return self._forward(hidden_states, top_k_index, top_k_weights)

    def _forward(self, hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        k = top_k_index.shape[-1]
        step = max(1, self.chunk_rows // k)
        for t0 in range(0, hidden_states.shape[0], step):
            sl = slice(t0, t0 + step)
            self._chunk(hidden_states[sl], top_k_index[sl], top_k_weights[sl], out[sl])
        return out

    def _chunk(self, hidden, index, weights, out):
        k = index.shape[-1]
        flat = index.reshape(-1)
        order = torch.argsort(flat, stable=True)
        tokens = order // k
        counts = torch.bincount(flat, minlength=self.num_experts)[: self.num_experts]
        offsets = torch.zeros(self.num_experts + 1, dtype=torch.long, device=hidden.device)
        offsets[1:] = torch.cumsum(counts, 0)
        x = hidden[tokens]
        gate, up = self._grouped(self.gate_up_proj, x, offsets).chunk(2, dim=-1)
        h = self.act_fn(gate) * up
        del gate, up, x
        y = self._grouped(self.down_proj, h, offsets)
        y = y * weights.reshape(-1)[order, None].to(y.dtype)
        out.index_add_(0, tokens, y.to(out.dtype))


# ---------------------------------------------------------------- applying a plan


def apply_plan(model, plan, dtype=None, device="meta", offload_experts: str | None = None) -> dict:
    """Replace the experts and linears of ``model`` by quantized modules, per ``plan``.

    Quantized modules are created *empty* on ``device`` (meta when planning); tied
    modules (encoder and decoder layers) get one shared replacement. Returns
    ``{module name: format}`` for every replacement (every alias listed).
    ``offload_experts``: create expert weights there instead (e.g. 'cpu').
    """
    from transformers.models.diffusion_gemma import modeling_diffusion_gemma as M

    spec = get_plan(plan)
    dtype = dtype or torch.bfloat16
    shared: dict = {}
    done: dict = {}
    for parent_name, parent in list(model.named_modules(remove_duplicate=False)):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, M.DiffusionGemmaTextExperts):
                fmt = spec.experts
                key = id(child.gate_up_proj)
            elif isinstance(child, nn.Linear):
                fmt = spec.format_of(component_of(full))
                key = id(child.weight)
            else:
                continue
            if fmt == "dense":
                continue
            if key not in shared:
                if isinstance(child, M.DiffusionGemmaTextExperts):
                    assert child.num_experts is not None and child.intermediate_dim is not None  # set for an MoE layer
                    where = offload_experts or device
                    shared[key] = QuantizedExperts(child.num_experts, child.hidden_dim, child.intermediate_dim, fmt,
                                                   dtype, child.act_fn, device=where, blocksize=spec.blocksize)
                else:
                    shared[key] = QuantLinear(child.in_features, child.out_features, fmt, dtype,
                                              bias=child.bias is not None, device=device, blocksize=spec.blocksize)
            setattr(parent, child_name, shared[key])
            done[full] = fmt
    return done


def unique_tensors(model):
    """(name, tensor, is_buffer) for each distinct parameter and buffer (first name wins)."""
    seen = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p, False
    for name, b in model.named_buffers(remove_duplicate=False):
        if id(b) not in seen:
            seen.add(id(b))
            yield name, b, True


def is_nonpersistent(model, name: str) -> bool:
    """A buffer the checkpoint does not hold (rotary tables): built by the model, never loaded."""
    mod_name, _, attr = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    return attr in getattr(mod, "_non_persistent_buffers_set", set())


def build_meta(config, plan="bf16", dtype=None):
    """The model on the meta device with ``plan`` applied (no memory, ~1 s for 26B)."""
    from transformers import DiffusionGemmaForBlockDiffusion
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(config)
    apply_plan(model, plan, dtype=dtype or torch.bfloat16, device="meta")
    return model
