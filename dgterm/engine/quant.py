"""Quantization plans for DiffusionGemma (MoE experts included) and the memory planner.

``BitsAndBytesConfig`` quantizes ``nn.Linear`` only, but DiffusionGemma keeps its 128
experts per layer as two fused 3-D parameters (``experts.gate_up_proj`` (E, 2I, H) and
``experts.down_proj`` (E, H, I)): 22.8 B of the 26B-A4B's 25.8 B parameters. Here every
weight is classified into a *component* and a *plan* says which format each component
gets:

==================  ======  ======  ======
component           bf16    int8    nf4
==================  ======  ======  ======
experts             bf16    int8    nf4
attention           bf16    int8    int8
mlp (dense)         bf16    int8    int8
self_conditioning   bf16    int8    int8
router              bf16    bf16    bf16
embed (= lm_head)   bf16    bf16    bf16
vision              bf16    bf16    int8
other (norms, ...)  bf16    bf16    bf16
==================  ======  ======  ======

("bf16" means the compute dtype: bfloat16 on a GPU, float32 on the CPU.) The tied
embedding stays in the compute dtype in every plan: the decoder multiplies the softmax of
the self-conditioning logits by the whole ``embed_tokens.weight`` at every step and the
sampler reads its dtype, and quantizing it costs more quality than anything else per
byte saved (docs/quantization.md has the measurement).

Quantized modules replace the originals with the same forward signature: a
:class:`QuantizedExperts` for each ``DiffusionGemmaTextExperts`` (the encoder and the
decoder layer of the same index share one, as they share the weights) and a
:class:`QuantLinear` for each ``nn.Linear`` whose component is quantized. A dense
checkpoint tensor ``X`` becomes ``X.qweight`` + ``X.absmax`` (nf4) or ``X.qweight`` +
``X.scale`` (int8); formats in :mod:`dgterm.engine.kernels.nf4`.

The planner builds the model on the ``meta`` device, applies a plan with the very code the
loader uses, and adds the runtime buffers::

    cfg = quant.load_config("diffusiongemma-26b-a4b")     # a profile, a directory, 'bundled'
    plan = quant.plan_memory(cfg, "nf4", context=8192, candidates=1)
    plan.total, plan.fits(free_bytes), quant.choose_plan(cfg, free_bytes)

This module imports torch lazily (``dgterm doctor`` imports it to print plans).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dgterm.errors import DgtermError, ModelLoadError

GiB = 1 << 30
PLAN_NAMES = ("bf16", "int8", "nf4")
COMPONENTS = ("experts", "attention", "mlp", "self_conditioning", "router", "embed", "vision", "other")
FORMATS = ("dense", "int8", "nf4")
QUANT_TO_PLAN = {"none": "bf16", "bf16": "bf16", "int8": "int8", "nf4": "nf4"}

# Number of float32 (candidates, canvas, vocab) tensors that dgterm's sampler holds at its
# peak besides the logits it is given: processed, probs, and token_entropy's norm, softmax,
# clamped and product (dgterm/engine/sampler.py, Sampler.step).
SAMPLER_WORKSPACE_FP32 = 6
# Rows (token x top-k pairs) the quantized experts process at once; bounds their activations.
MOE_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class PlanSpec:
    name: str
    experts: str
    attention: str
    mlp: str
    self_conditioning: str
    router: str = "dense"
    embed: str = "dense"
    vision: str = "dense"
    other: str = "dense"
    blocksize: int = 64

    def format_of(self, component: str) -> str:
        return getattr(self, component)

    def formats(self) -> dict:
        return {c: self.format_of(c) for c in COMPONENTS}


PLANS = {
    "bf16": PlanSpec("bf16", experts="dense", attention="dense", mlp="dense", self_conditioning="dense"),
    "int8": PlanSpec("int8", experts="int8", attention="int8", mlp="int8", self_conditioning="int8"),
    "nf4": PlanSpec("nf4", experts="nf4", attention="int8", mlp="int8", self_conditioning="int8", vision="int8"),
}


def get_plan(plan) -> PlanSpec:
    if isinstance(plan, PlanSpec):
        return plan
    name = QUANT_TO_PLAN.get(str(plan))
    if name is None:
        raise DgtermError(f"Unknown quantization plan '{plan}'; use one of {', '.join(PLAN_NAMES)}.")
    return PLANS[name]


_COMPONENT_RULES = (
    (re.compile(r"(^|\.)(lm_head|embed_tokens)(\.|$)"), "embed"),
    (re.compile(r"(^|\.)(vision_tower|embed_vision)(\.|$)"), "vision"),
    (re.compile(r"(^|\.)experts(\.|$)"), "experts"),
    (re.compile(r"(^|\.)router\.proj(\.|$)"), "router"),
    (re.compile(r"(^|\.)self_attn\."), "attention"),
    (re.compile(r"(^|\.)self_conditioning\.(gate|up|down)_proj(\.|$)"), "self_conditioning"),
    (re.compile(r"(^|\.)mlp\.(gate|up|down)_proj(\.|$)"), "mlp"),
)


def component_of(name: str) -> str:
    """The component of a parameter or module name (checkpoint naming)."""
    for rule, component in _COMPONENT_RULES:
        if rule.search(name):
            return component
    return "other"


# ---------------------------------------------------------------- quantized modules


def _torch():
    import torch

    return torch


def _make_modules():
    """Define the nn.Module classes on first use (keeps torch out of `import dgterm.engine.quant`)."""
    torch = _torch()
    from torch import nn
    from torch.nn import functional as F

    from dgterm.engine.kernels import nf4 as K

    class QuantWeight(nn.Module):
        """A block-quantized weight of logical shape (*lead, N, K): buffers ``qweight`` and
        ``absmax`` (nf4) or ``scale`` (int8). Replaces a dense tensor of the same name."""

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
        def load_dense_(self, w, index: slice | None = None) -> None:
            """Quantize the dense ``w`` into place; ``index``: the slice of the leading dim it
            covers. Works through ``w`` a few rows at a time to bound the temporaries
            (2^20 elements on the CPU, 2^24 on a GPU: ~0.3 GB of float32 temporaries, less than
            the runtime buffers the plan reserves and that do not exist yet while loading)."""
            if tuple(w.shape[1:]) != self.shape[1:] or (index is None and w.shape[0] != self.shape[0]):
                raise ValueError(f"shape {tuple(w.shape)} does not match {self.shape}")
            dev = self.qweight.device
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

        def matmul(self, x):
            """``x @ W.T`` for a 2-D weight, dequantizing on the fly."""
            if self.fmt == "nf4":
                if x.device == self.qweight.device and K.pick_impl(x) == "triton":
                    x2 = x.reshape(-1, x.shape[-1])
                    offsets = torch.tensor([0, x2.shape[0]], device=x.device, dtype=torch.int32)
                    y = K.grouped_matmul_nf4(x2, offsets, self.qweight[None], self.absmax[None], self.shape[-1],
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
        kept on another device (``--allow-offload``) are copied over one at a time.
        """

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
            fused = (w.fmt == "nf4" and x.device == w.qweight.device and K.pick_impl(x) == "triton")
            if fused:
                return K.grouped_matmul_nf4(x, offsets, w.qweight, w.absmax, w.shape[-1], w.blocksize)
            out = x.new_empty(x.shape[0], w.shape[1])
            bounds = offsets.tolist()
            for e in range(self.num_experts):
                lo, hi = bounds[e], bounds[e + 1]
                if hi > lo:
                    out[lo:hi] = F.linear(x[lo:hi], w.dequantize(e, dtype=x.dtype, device=x.device))
            return out

        def forward(self, hidden_states, top_k_index, top_k_weights):
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

    return QuantWeight, QuantLinear, QuantizedExperts


_classes = None


def modules():
    """(QuantWeight, QuantLinear, QuantizedExperts), defined on first call."""
    global _classes
    if _classes is None:
        _classes = _make_modules()
    return _classes


def __getattr__(name):  # quant.QuantizedExperts etc. without importing torch at import time
    if name in ("QuantWeight", "QuantLinear", "QuantizedExperts"):
        return dict(zip(("QuantWeight", "QuantLinear", "QuantizedExperts"), modules()))[name]
    raise AttributeError(name)


# ---------------------------------------------------------------- applying a plan


def apply_plan(model, plan, dtype=None, device="meta", offload_experts: str | None = None) -> dict:
    """Replace the experts and linears of ``model`` by quantized modules, per ``plan``.

    Quantized modules are created *empty* on ``device`` (meta when planning); tied
    modules (encoder and decoder layers) get one shared replacement. Returns
    ``{module name: format}`` for every replacement (every alias listed).
    ``offload_experts``: create expert weights there instead (e.g. 'cpu').
    """
    torch = _torch()
    from torch import nn
    from transformers.models.diffusion_gemma import modeling_diffusion_gemma as M

    spec = get_plan(plan)
    dtype = dtype or torch.bfloat16
    _, QuantLinear, QuantizedExperts = modules()
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


# ---------------------------------------------------------------- configs and profiles


def profiles_dir() -> Path:
    here = Path(__file__).resolve().parents[1]
    for root in (here / "runtime", here.parent / "runtime"):
        if (root / "profiles").is_dir():
            return root / "profiles"
    return here.parent / "runtime" / "profiles"


def list_profiles() -> list[str]:
    d = profiles_dir()
    return sorted(p.parent.name for p in d.glob("*/config.json")) if d.is_dir() else []


def config_path(spec: str, download: bool = False) -> Path:
    """The config.json of a profile name (runtime/profiles/NAME), 'bundled', a directory, a
    config.json file, or a Hugging Face id in the local cache."""
    spec = spec or "bundled"
    if spec in list_profiles():
        return profiles_dir() / spec / "config.json"
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ModelLoadError(f"{p} has no config.json; pass a checkpoint or profile directory.")
        return p / "config.json"
    from dgterm.engine import loading

    try:
        return loading.resolve(spec, download) / "config.json"
    except ModelLoadError:
        names = ", ".join(list_profiles()) or "none"
        raise ModelLoadError(
            f"'{spec}' is not a profile ({names}), a directory with config.json, 'bundled', or a cached "
            "Hugging Face id; pass one of those.") from None


def load_config(spec="bundled", download: bool = False):
    """A ``DiffusionGemmaConfig`` from a profile name, a directory, 'bundled', or a config object."""
    if not isinstance(spec, (str, Path)):
        return spec
    path = config_path(str(spec), download)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path} cannot be read as JSON ({e}); restore it.") from None
    if data.get("model_type") != "diffusion_gemma":
        raise ModelLoadError(f"{path} describes a '{data.get('model_type')}' model, not DiffusionGemma; "
                             "dgterm plans DiffusionGemma-architecture models only.")
    from transformers import DiffusionGemmaConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    data = {k: v for k, v in data.items() if k not in ("model_type", "architectures", "quantization_config")}
    return DiffusionGemmaConfig(**data)


# ---------------------------------------------------------------- planner


def build_meta(config, plan="bf16", dtype=None):
    """The model on the meta device with ``plan`` applied (no memory, ~1 s for 26B)."""
    torch = _torch()
    from transformers import DiffusionGemmaForBlockDiffusion
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(config)
    apply_plan(model, plan, dtype=dtype or torch.bfloat16, device="meta")
    return model


def dense_bytes_per_element(dtype) -> int:
    torch = _torch()
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str):
        return {"bf16": 2, "fp16": 2, "fp32": 4, "bfloat16": 2, "float16": 2, "float32": 4}[dtype]
    return torch.empty((), dtype=dtype).element_size()


def weight_bytes(model, dtype=2) -> tuple[dict, dict]:
    """Bytes and parameter counts of every distinct tensor of a (meta) model, by component.
    Float tensors that stay dense count at ``dtype``; quantized buffers at their own size."""
    QuantWeight = modules()[0]
    quant_buffers = {}
    for mname, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, QuantWeight):
            for bname, b in m.named_buffers(prefix=mname):
                quant_buffers[id(b)] = m
    eb = dense_bytes_per_element(dtype)
    by_bytes = {c: 0 for c in COMPONENTS}
    by_params = {c: 0 for c in COMPONENTS}
    counted = set()
    for name, t, _ in unique_tensors(model):
        comp = component_of(name)
        if id(t) in quant_buffers:
            by_bytes[comp] += t.numel() * t.element_size()
            qw = quant_buffers[id(t)]
            if id(qw) not in counted:
                counted.add(id(qw))
                n = 1
                for s in qw.shape:
                    n *= s
                by_params[comp] += n
        else:
            transient = _is_nonpersistent(model, name)  # rotary tables, scales: kept as built (float32)
            size = eb if t.is_floating_point() and not transient else t.element_size()
            by_bytes[comp] += t.numel() * size
            if not transient:
                by_params[comp] += t.numel()
    return by_bytes, by_params


def _is_nonpersistent(model, name: str) -> bool:
    mod_name, _, attr = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    return attr in getattr(mod, "_non_persistent_buffers_set", set())


def parameter_counts(config) -> dict:
    """Parameters by component of the unquantized model, from a meta build (tied counted once)."""
    _, params = weight_bytes(build_meta(load_config(config), "bf16"))
    params["text"] = sum(v for k, v in params.items() if k != "vision")
    params["total"] = params["text"] + params["vision"]
    return params


def kv_cache_bytes(config, context: int, candidates: int = 1, dtype=2) -> int:
    """DynamicCache bytes after encoding ``context`` tokens: K and V per layer, sliding layers
    keep at most ``sliding_window`` tokens, full layers all of them."""
    t = load_config(config).text_config
    eb = dense_bytes_per_element(dtype)
    total = 0
    for i, kind in enumerate(t.layer_types):
        lc = t.per_layer_config[i]
        tokens = min(context, t.sliding_window) if kind == "sliding_attention" else context
        total += 2 * tokens * lc.num_key_value_heads * lc.head_dim * eb
    return total * candidates


def logits_bytes(config, candidates: int = 1, dtype=2) -> tuple[int, int]:
    """(held, workspace): the float32 canvas logits and the self-conditioning logits (compute
    dtype) that live across steps, and the sampler's float32 temporaries at its peak."""
    cfg = load_config(config)
    cv = cfg.canvas_length * cfg.text_config.vocab_size * candidates
    return cv * (4 + dense_bytes_per_element(dtype)), cv * 4 * SAMPLER_WORKSPACE_FP32


def activation_bytes(config, context: int, candidates: int = 1, dtype=2) -> int:
    """Peak transient activations of one forward (estimate, one layer alive at a time).

    The larger of the encoder prefill of ``context`` tokens and a decoder step over the
    canvas reading the cache: the residual stream and layer temporaries (8 x hidden),
    attention (query, K and V repeated to all heads, output, its contiguous copy: 5 x heads
    x head_dim), the dense MLP (3 x width), the boolean masks (2 x T x S) and the
    quantized experts on at most ``MOE_CHUNK_ROWS`` token-expert rows.
    """
    cfg = load_config(config)
    t = cfg.text_config
    eb = dense_bytes_per_element(dtype)
    hd = max(t.per_layer_config[i].head_dim for i in range(t.num_hidden_layers))
    heads = t.num_attention_heads
    per_token = eb * (8 * t.hidden_size + 5 * heads * hd + 3 * t.intermediate_size)
    k = t.top_k_experts or 1
    inter = t.moe_intermediate_size or 0

    def moe(tokens):
        rows = min(tokens * k, MOE_CHUNK_ROWS)
        return rows * eb * (3 * t.hidden_size + 4 * inter) + rows * 16  # x, out, y; gate_up, act; index

    canvas = cfg.canvas_length
    prefill_tokens = context * candidates
    prefill = prefill_tokens * per_token + moe(prefill_tokens) + 2 * context * context * candidates
    kv_len = context + canvas  # the decoder concatenates cache and canvas, then repeats K/V to all heads
    decode = (canvas * candidates * per_token + moe(canvas * candidates)
              + 2 * kv_len * heads * hd * eb * candidates + 2 * canvas * kv_len * candidates)
    return max(prefill, decode)


def runtime_bytes(config, context: int, candidates: int = 1, dtype=2) -> int:
    """Device bytes a run needs besides the weights: KV cache, logits, max(workspace, activations)."""
    held, workspace = logits_bytes(config, candidates, dtype)
    return (kv_cache_bytes(config, context, candidates, dtype) + held
            + max(workspace, activation_bytes(config, context, candidates, dtype)))


def free_bytes(device: str) -> int:
    """Memory a run can still allocate on ``device``: the GPU's free memory, or on the CPU the
    smaller of the available RAM and what an address-space limit (``ulimit -v``) leaves."""
    if str(device).startswith("cuda"):
        return _torch().cuda.mem_get_info(_torch().device(device))[0]
    free = _meminfo("/proc/meminfo", "MemAvailable:")
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            used = _meminfo("/proc/self/status", "VmSize:")
            free = min(free, limit - used) if used is not None else free
    except ImportError:
        pass
    return free if free is not None else 1 << 62  # unknown: nothing refused


def _meminfo(file: str, key: str) -> int | None:
    try:
        with open(file) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_run_fits(lm, candidates: int, context: int) -> None:
    """Refuse, before anything is allocated, a run whose canvases, logits and cache cannot fit
    in the memory left (candidates x canvas x vocab grows fast); says how many would."""
    config, dtype = lm.model.config, lm.dtype
    free = free_bytes(lm.device)
    need = runtime_bytes(config, context, candidates, dtype)
    if need <= free:
        return
    per = max(1, runtime_bytes(config, context, 1, dtype))
    fits = max(0, min(candidates - 1, free // per))
    while fits > 1 and runtime_bytes(config, context, fits, dtype) > free:
        fits -= 1
    where = "the GPU" if str(lm.device).startswith("cuda") else "this machine"
    what = (f"use at most {fits} candidate(s)" if fits >= 1 else
            "shorten the prompt, free memory, or use a bigger device")
    raise OutOfMemory(f"{candidates} candidate(s) at {context} tokens of context need {need / GiB:.1f} GiB for "
                      f"their canvases, logits and cache but {where} has {free / GiB:.1f} GiB free; {what}.")


@dataclass
class MemoryPlan:
    """Bytes a plan needs on the device. ``total`` = weights + kv_cache + logits +
    max(workspace, activations): the sampler's workspace and a forward's activations are
    never alive together."""

    plan: str
    context: int
    candidates: int
    weights: int
    kv_cache: int
    logits: int
    workspace: int
    activations: int
    offloaded: int = 0  # expert bytes kept in host RAM (--allow-offload)
    components: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    formats: dict = field(default_factory=dict)

    @property
    def runtime(self) -> int:
        return self.kv_cache + self.logits + max(self.workspace, self.activations)

    @property
    def total(self) -> int:
        return self.weights + self.runtime

    def fits(self, free_bytes: int, reserve: int = 512 << 20) -> bool:
        """Whether ``total`` plus ``reserve`` (CUDA context slack, fragmentation) fits."""
        return self.total + reserve <= free_bytes

    def as_dict(self) -> dict:
        d = asdict(self)
        d["runtime"], d["total"] = self.runtime, self.total
        d["total_gib"] = round(self.total / GiB, 2)
        return d

    def summary(self) -> str:
        return (f"{self.plan}: {self.total / GiB:.1f} GiB (weights {self.weights / GiB:.1f}, KV cache "
                f"{self.kv_cache / GiB:.2f} at {self.context} tokens, logits {(self.logits + self.workspace) / GiB:.2f} "
                f"for {self.candidates} candidate(s), activations {self.activations / GiB:.2f})")


_meta_cache: dict = {}


def _weights_for(config, plan, dtype) -> tuple[dict, dict]:
    spec = get_plan(plan)
    key = (config.to_json_string(use_diff=False), spec, dense_bytes_per_element(dtype))
    if key not in _meta_cache:
        if len(_meta_cache) > 16:
            _meta_cache.clear()
        _meta_cache[key] = weight_bytes(build_meta(config, spec), dtype)
    return _meta_cache[key]


def plan_memory(config, plan="nf4", context: int = 8192, candidates: int = 1, dtype="bf16",
                offload: bool = False) -> MemoryPlan:
    """Exact weight bytes of ``plan`` (from a meta build) plus runtime buffers at ``context``
    tokens of KV cache and ``candidates`` canvases denoised together. ``offload``: the
    experts stay in host RAM (counted in ``offloaded``, not on the device)."""
    cfg = load_config(config)
    spec = get_plan(plan)
    by_bytes, by_params = _weights_for(cfg, spec, dtype)
    weights = sum(by_bytes.values())
    offloaded = by_bytes["experts"] if offload else 0
    held, workspace = logits_bytes(cfg, candidates, dtype)
    return MemoryPlan(
        plan=spec.name, context=context, candidates=candidates, weights=weights - offloaded,
        kv_cache=kv_cache_bytes(cfg, context, candidates, dtype), logits=held, workspace=workspace,
        activations=activation_bytes(cfg, context, candidates, dtype), offloaded=offloaded,
        components=dict(by_bytes), parameters=dict(by_params), formats=spec.formats(),
    )


def all_plans(config, context: int = 8192, candidates: int = 1, dtype="bf16") -> list[MemoryPlan]:
    cfg = load_config(config)
    return [plan_memory(cfg, p, context, candidates, dtype) for p in PLAN_NAMES]


def choose_plan(config, free_bytes: int, context: int = 8192, candidates: int = 1, dtype="bf16",
                reserve: int = 512 << 20) -> MemoryPlan | None:
    """The highest-quality plan (bf16 > int8 > nf4) that fits ``free_bytes``, or None."""
    for p in all_plans(config, context, candidates, dtype):
        if p.fits(free_bytes, reserve):
            return p
    return None


def max_context(config, plan, free_bytes: int, candidates: int = 1, dtype="bf16", reserve: int = 512 << 20) -> int:
    """The longest context (a multiple of 256) at which ``plan`` fits, 0 if none."""
    cfg = load_config(config)
    lo, hi = 0, cfg.text_config.max_position_embeddings // 256
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if plan_memory(cfg, plan, mid * 256, candidates, dtype).fits(free_bytes, reserve):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


def refusal(config, plan, free_bytes: int, context: int, candidates: int = 1, dtype="bf16", device="the GPU",
            reserve: int = 512 << 20) -> str:
    """One sentence: why ``plan`` does not fit and what would."""
    cfg = load_config(config)
    need = plan_memory(cfg, plan, context, candidates, dtype)
    msg = (f"The {need.plan} plan needs {need.total / GiB:.1f} GiB + {reserve / GiB:.1f} GiB headroom at {context} "
           f"tokens of context but {device} has {free_bytes / GiB:.1f} GiB free")
    better = choose_plan(cfg, free_bytes, context, candidates, dtype, reserve)
    if better is not None and better.plan != need.plan:
        return msg + f"; use --quant {'none' if better.plan == 'bf16' else better.plan} ({better.total / GiB:.1f} GiB)."
    for name in dict.fromkeys((need.plan, "nf4")):
        ctx = max_context(cfg, name, free_bytes, candidates, dtype, reserve)
        if ctx >= 1024:
            how = "" if name == need.plan else f"--quant {name} and "
            return msg + f"; use {how}at most {ctx} tokens of context, or free GPU memory."
    return msg + ("; no plan fits: free GPU memory, use a bigger GPU, or pass --allow-offload to keep the "
                  "experts in host RAM (slow).")


# ---------------------------------------------------------------- out of memory


class OutOfMemory(DgtermError):
    """A run ran out of device memory; the message is one sentence with what to change."""


def is_oom(exc: BaseException) -> bool:
    torch = _torch()
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text.lower() or "can't allocate memory" in text or isinstance(exc, MemoryError))


def explain_oom(exc: BaseException, plan: str | None = None, candidates: int = 1, context: int | None = None) -> str:
    """One sentence for an out-of-memory error, suggesting what to shrink."""
    hints = []
    if candidates > 1:
        hints.append(f"fewer candidates (now {candidates})")
    hints.append("a shorter context" + (f" (now {context} tokens)" if context else ""))
    if plan in (None, "bf16", "none"):
        hints.append("--quant nf4")
    elif plan == "int8":
        hints.append("--quant nf4")
    return ("Out of memory on the device during the run; nothing was changed — try " + ", ".join(hints[:-1])
            + (" or " if len(hints) > 1 else "") + hints[-1] + ".")


@contextlib.contextmanager
def guard_oom(plan: str | None = None, candidates: int = 1, context: int | None = None):
    """Turn an out-of-memory error into :class:`OutOfMemory` (a DgtermError that front ends show
    as one line and go on) after releasing the allocator's cached blocks."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised unless it is an OOM
        if not is_oom(exc):
            raise
        torch = _torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise OutOfMemory(explain_oom(exc, plan, candidates, context)) from None


def table(plans: list[MemoryPlan]) -> str:
    """A markdown table of plans (GiB), component by component."""
    rows = ["| | " + " | ".join(p.plan for p in plans) + " |", "|---|" + "---:|" * len(plans)]
    for c in COMPONENTS:
        rows.append(f"| {c} | " + " | ".join(f"{p.components[c] / GiB:.2f} ({p.formats[c]})" for p in plans) + " |")
    for label, get in (("weights", lambda p: p.weights), ("KV cache", lambda p: p.kv_cache),
                       ("logits (held)", lambda p: p.logits), ("sampler workspace", lambda p: p.workspace),
                       ("activations", lambda p: p.activations), ("**total**", lambda p: p.total)):
        rows.append(f"| {label} | " + " | ".join(f"{get(p) / GiB:.2f}" for p in plans) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    """``python -m dgterm.engine.quant [MODEL] [--context N] [--candidates N] [--json]``: print the plans."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dgterm.engine.quant", description="memory plans of a model")
    ap.add_argument("model", nargs="?", default="diffusiongemma-26b-a4b")
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    plans = all_plans(a.model, a.context, a.candidates)
    if a.json:
        print(json.dumps([p.as_dict() for p in plans], indent=2))
    else:
        print(table(plans))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
