"""The memory planner: the bytes a plan needs on a device, from a ``meta`` build of the model
(the very code the loader uses) plus the runtime buffers; what fits; the one-sentence
refusal; the memory a device has free. torch is imported when a plan is computed."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dgterm.engine.quant.plans import COMPONENTS, GiB, MOE_CHUNK_ROWS, PLAN_NAMES, component_of, get_plan
from dgterm.engine.quant.profiles import load_config

# Number of float32 (candidates, canvas, vocab) tensors that dgterm's sampler holds at its
# peak besides the logits it is given: processed, probs, and token_entropy's norm, softmax,
# clamped and product (dgterm/engine/sampler.py, Sampler.step).
SAMPLER_WORKSPACE_FP32 = 6


def dense_bytes_per_element(dtype) -> int:
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str):
        return {"bf16": 2, "fp16": 2, "fp32": 4, "bfloat16": 2, "float16": 2, "float32": 4}[dtype]
    return dtype.itemsize  # a torch.dtype


def weight_bytes(model, dtype=2) -> tuple[dict, dict]:
    """Bytes and parameter counts of every distinct tensor of a (meta) model, by component.
    Float tensors that stay dense count at ``dtype``; quantized buffers at their own size."""
    from dgterm.engine.quant.modules import QuantWeight, is_nonpersistent, unique_tensors

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
            transient = is_nonpersistent(model, name)  # rotary tables, scales: kept as built (float32)
            size = eb if t.is_floating_point() and not transient else t.element_size()
            by_bytes[comp] += t.numel() * size
            if not transient:
                by_params[comp] += t.numel()
    return by_bytes, by_params


def parameter_counts(config) -> dict:
    """Parameters by component of the unquantized model, from a meta build (tied counted once)."""
    from dgterm.engine.quant.modules import build_meta

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
        from dgterm.engine.quant.modules import build_meta

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


# ---------------------------------------------------------------- what a device has free


def host_memory() -> dict:
    """Host RAM: {"total": bytes, "available": bytes}, from /proc/meminfo where there is one."""
    meminfo = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            meminfo[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass  # not Linux: sysconf below
    total = meminfo.get("MemTotal") or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    available = meminfo.get("MemAvailable") or os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"total": total, "available": available}


def free_bytes(device: str) -> int:
    """Memory free on ``device``: the GPU's, or on the CPU the smaller of the available RAM
    and what an address-space limit (``ulimit -v``) leaves."""
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    free = host_memory()["available"]
    try:
        import resource
    except ImportError:
        return free
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    used = _vm_size()
    if limit != resource.RLIM_INFINITY and used is not None:
        free = min(free, limit - used)
    return free


def _vm_size() -> int | None:
    """This process's address space in bytes (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def runtime_bytes(config, context: int, candidates: int = 1, dtype=2) -> int:
    """Device bytes a run needs besides the weights: KV cache, logits, max(workspace, activations)."""
    held, workspace = logits_bytes(config, candidates, dtype)
    return (kv_cache_bytes(config, context, candidates, dtype) + held
            + max(workspace, activation_bytes(config, context, candidates, dtype)))


def check_run_fits(lm, candidates: int, context: int) -> None:
    """Refuse, before anything is allocated, a run whose canvases, logits and cache cannot fit
    in the memory left (candidates x canvas x vocab grows fast); says how many would."""
    from dgterm.errors import OutOfMemory

    config, dtype = lm.model.config, lm.dtype
    free = free_bytes(lm.device)
    need = runtime_bytes(config, context, candidates, dtype)
    if need <= free:
        return
    fits = max(0, min(candidates - 1, free // max(1, runtime_bytes(config, context, 1, dtype))))
    while fits > 1 and runtime_bytes(config, context, fits, dtype) > free:
        fits -= 1
    where = "the GPU" if str(lm.device).startswith("cuda") else "this machine"
    what = f"use at most {fits} candidate(s)" if fits >= 1 else "shorten the prompt, free memory, or use a bigger device"
    raise OutOfMemory(f"{candidates} candidate(s) at {context} tokens of context need {need / GiB:.1f} GiB for "
                      f"their canvases, logits and cache but {where} has {free / GiB:.1f} GiB free; {what}.")
