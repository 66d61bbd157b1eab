"""The memory planner: the bytes a plan needs on a device, from a ``meta`` build of the model
(the very code the loader uses) plus the runtime buffers; what fits; the one-sentence
refusal; the memory a device has free. torch is imported when a plan is computed."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dgterm.engine.local.quant.plans import COMPONENTS, MOE_CHUNK_ROWS, PLAN_NAMES, GiB, component_of, get_plan
from dgterm.engine.local.quant.profiles import load_config

# Float32 (candidates, canvas, vocab) tensors the reference sampler holds at its peak
# besides the logits it is given: processed, probs, and token_entropy's norm, softmax,
# clamped and product (dgterm/engine/local/sampler.py, Sampler._draw_reference).
SAMPLER_WORKSPACE_FP32 = 6
# The engine's own sizes, restated so that planning imports no torch (a test holds them equal):
PREFILL_CHUNK = 1024  # dgterm.engine.local.prefill.CHUNK
SAMPLER_ROW_BLOCK = 1 << 21  # dgterm.engine.local.kernels.sampling.ROW_BLOCK_BYTES: the CPU pass's two row buffers
SAMPLER_CDF_CHUNK = 1024  # dgterm.engine.local.kernels.sampling.CDF_CHUNK: its inverse-CDF search, two pieces a row


def dense_bytes_per_element(dtype) -> int:
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str):
        return {"bf16": 2, "fp16": 2, "fp32": 4, "bfloat16": 2, "float16": 2, "float32": 4}[dtype]
    return dtype.itemsize  # a torch.dtype


def weight_bytes(model, dtype=2) -> tuple[dict, dict]:
    """Bytes and parameter counts of every distinct tensor of a (meta) model, by component.
    Float tensors that stay dense count at ``dtype``; quantized buffers at their own size."""
    from dgterm.engine.local.quant.modules import QuantWeight, is_nonpersistent, unique_tensors

    quant_buffers = {}
    for mname, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, QuantWeight):
            for _, b in m.named_buffers(prefix=mname):
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
    from dgterm.engine.local.quant.modules import build_meta

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


def logits_bytes(config, candidates: int = 1, dtype=2, sampler: str = "fused") -> tuple[int, int]:
    """(held, workspace). Held across steps: the self-conditioning logits (compute dtype).
    At the sampler: the decoder's float32 logits, plus the fused pass's one buffer in the
    compute dtype (the processed logits, when they cannot be written over float32 ones) and
    the CPU pass's two row blocks, or the reference's six float32 temporaries."""
    cfg = load_config(config)
    cv = cfg.canvas_length * cfg.text_config.vocab_size * candidates
    eb = dense_bytes_per_element(dtype)
    if sampler == "reference":
        extra = cv * 4 * SAMPLER_WORKSPACE_FP32
    else:
        vocab = cfg.text_config.vocab_size
        block = min(SAMPLER_ROW_BLOCK, cv * 4)
        extra = cv * eb * (eb != 4) + 2 * block + 2 * block * min(SAMPLER_CDF_CHUNK, vocab) // vocab
    return cv * eb, cv * 4 + extra


def forward_bytes(config, rows: int, new: int, keys: int, dtype=2, encoder: bool = False) -> int:
    """Peak transient bytes of one forward of ``rows`` x ``new`` tokens attending to ``keys``
    positions (cached + new), one layer alive at a time, besides the cache it reads.

    The boolean masks: the encoder's causal ones for both layer kinds; the decoder sees the
    whole context, so only its sliding layers get one. Then the larger of

    * the attention of the costliest layer: for a masked layer the float mask SDPA makes of
      the boolean one, and K and V repeated to all query heads when the layer has fewer
      (SDPA takes grouped heads itself only unmasked and up to 256 dims); in the decoder,
      K and V concatenated with the cache (the encoder's concatenation is the new cache);
      the query, the output and its contiguous copy, the residual stream;
    * the feed-forward: the dense MLP (gate, up, their product) beside the residual stream,
      and the experts on one expert's tokens at a time (``MOE_CHUNK_ROWS`` at most).

    The encoder's sliding layers also keep their new tokens' K and V past the window until
    the encode ends (dgterm.engine.local.prefill compacts them then).
    """
    t = load_config(config).text_config
    eb = dense_bytes_per_element(dtype)
    heads, hidden = t.num_attention_heads, t.hidden_size
    window = t.sliding_window or keys
    sliding_keys = min(keys, window - 1 + new)
    kinds = t.layer_types
    masks = new * (sliding_keys * ("sliding_attention" in kinds) + keys * (encoder and "full_attention" in kinds))
    spill = sum(2 * new * lc.num_key_value_heads * lc.head_dim * eb for lc, kind in zip(t.per_layer_config, kinds)
                if encoder and kind == "sliding_attention" and keys > window)

    def attention(i):
        lc = t.per_layer_config[i]
        sliding = kinds[i] == "sliding_attention"
        s = sliding_keys if sliding else keys
        masked = encoder or sliding
        repeated = heads * lc.head_dim if heads != lc.num_key_value_heads and (masked or lc.head_dim > 256) else 0
        concatenated = 0 if encoder else lc.num_key_value_heads * lc.head_dim
        scores = new * s * masked + 2 * s * (repeated + concatenated)
        return eb * (scores + new * (3 * heads * lc.head_dim + 2 * hidden))

    inter = t.moe_intermediate_size or 0
    mlp = rows * new * eb * (3 * hidden + 3 * t.intermediate_size)
    experts = min(new * rows, MOE_CHUNK_ROWS) * eb * (2 * hidden + 3 * inter) if t.num_experts else 0
    return rows * (masks + spill) + max(rows * max(attention(i) for i in range(t.num_hidden_layers)), mlp + experts)


def activation_bytes(config, context: int, candidates: int = 1, dtype=2) -> int:
    """Peak transient bytes of a decoder step over every candidate's canvas reading the cache
    of ``context`` tokens, or of encoding the last canvas of every candidate into it before
    the next window: the forward (:func:`forward_bytes`), the self-conditioning
    softmax that starts it (float32, then the compute dtype) or the logits it ends with
    (the lm head's output, then float32 soft-capping, two at a time), whichever is larger.
    A likelihood-scoring forward (dgterm.engine.local.scoring) holds no more: the same rows and
    cache, no self-conditioning, a float32 log-softmax the size of the logits."""
    cfg = load_config(config)
    eb = dense_bytes_per_element(dtype)
    canvas = cfg.canvas_length
    logits = candidates * canvas * cfg.text_config.vocab_size
    step = forward_bytes(cfg, candidates, canvas, context + canvas, dtype)
    pending = forward_bytes(cfg, candidates, canvas, context, dtype, encoder=True)
    return max(step, pending, logits * (4 + eb), logits * (eb + 8))


def prefill_bytes(config, context: int, dtype=2) -> int:
    """Peak bytes of prefilling ``context`` tokens (dgterm.engine.local.prefill): one row for every
    candidate, ``PREFILL_CHUNK`` tokens per forward; the worst of the last two chunks, each
    with the cache it attends to."""
    cfg = load_config(config)
    last = (context - 1) // PREFILL_CHUNK * PREFILL_CHUNK
    chunks = [(context - last, context)] + ([(PREFILL_CHUNK, last)] if last else [])
    return max(kv_cache_bytes(cfg, keys, 1, dtype) + forward_bytes(cfg, 1, new, keys, dtype, encoder=True)
               for new, keys in chunks)


@dataclass
class MemoryPlan:
    """Bytes a plan needs on the device: ``total`` = weights (+ ``staging``, one offloaded
    layer's experts) + the larger of the prefill's peak and a decoder step's,
    kv_cache + logits + max(workspace, activations) (the
    sampler's workspace and a forward's activations are never alive together)."""

    plan: str
    context: int
    candidates: int
    weights: int
    kv_cache: int
    logits: int
    workspace: int
    activations: int
    prefill: int = 0
    offloaded: int = 0  # expert bytes kept in host RAM (--allow-offload, --offload-experts)
    offloaded_layers: int = 0  # the layers whose experts those are
    staging: int = 0  # one offloaded layer's experts on the device while a step streams them
    components: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    formats: dict = field(default_factory=dict)

    @property
    def runtime(self) -> int:
        return max(self.prefill, self.kv_cache + self.logits + max(self.workspace, self.activations))

    @property
    def total(self) -> int:
        return self.weights + self.staging + self.runtime

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
                f"{self.kv_cache / GiB:.2f} at {self.context} tokens, "
                f"logits {(self.logits + self.workspace) / GiB:.2f} "
                f"for {self.candidates} candidate(s), activations {self.activations / GiB:.2f}, "
                f"prefill peak {self.prefill / GiB:.2f})")


_meta_cache: dict = {}


def _weights_for(config, plan, dtype) -> tuple[dict, dict]:
    spec = get_plan(plan)
    key = (config.to_json_string(use_diff=False), spec, dense_bytes_per_element(dtype))
    if key not in _meta_cache:
        if len(_meta_cache) > 16:
            _meta_cache.clear()
        from dgterm.engine.local.quant.modules import build_meta

        _meta_cache[key] = weight_bytes(build_meta(config, spec), dtype)
    return _meta_cache[key]


def plan_memory(config, plan="nf4", context: int = 8192, candidates: int = 1, dtype="bf16",
                offload: bool | int = False, sampler: str = "fused") -> MemoryPlan:
    """Exact weight bytes of ``plan`` (from a meta build) plus runtime buffers at ``context``
    tokens of KV cache and ``candidates`` canvases denoised together. ``offload``: the
    experts of every layer (True) or of that many layers stay in host RAM (counted in
    ``offloaded``, not on the device)."""
    cfg = load_config(config)
    spec = get_plan(plan)
    by_bytes, by_params = _weights_for(cfg, spec, dtype)
    weights = sum(by_bytes.values())
    layers = cfg.text_config.num_hidden_layers
    n = layers if offload is True else min(int(offload), layers)
    offloaded = by_bytes["experts"] * n // layers
    return MemoryPlan(
        plan=spec.name, context=context, candidates=candidates, weights=weights - offloaded, offloaded=offloaded,
        offloaded_layers=n, staging=by_bytes["experts"] // layers if n else 0,
        **_runtime_parts(cfg, context, candidates, dtype, sampler),
        components=dict(by_bytes), parameters=dict(by_params), formats=spec.formats(),
    )


def _runtime_parts(config, context: int, candidates: int, dtype, sampler: str) -> dict:
    """The MemoryPlan fields besides the weights."""
    held, workspace = logits_bytes(config, candidates, dtype, sampler)
    return {"kv_cache": kv_cache_bytes(config, context, candidates, dtype), "logits": held, "workspace": workspace,
            "activations": activation_bytes(config, context, candidates, dtype),
            "prefill": prefill_bytes(config, context, dtype)}


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
    return msg + ("; no plan fits: free GPU memory, use a bigger GPU, or pass --offload-experts auto to keep "
                  "some layers' experts in host RAM (slower).")


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


def runtime_bytes(config, context: int, candidates: int = 1, dtype=2, sampler: str = "fused") -> int:
    """Device bytes a run needs besides the weights (``MemoryPlan.runtime``), without building
    the model to count them."""
    parts = _runtime_parts(load_config(config), context, candidates, dtype, sampler)
    return MemoryPlan(plan="runtime", context=context, candidates=candidates, weights=0, **parts).runtime


def check_run_fits(lm, candidates: int, context: int, sampler: str = "fused") -> None:
    """Refuse, before anything is allocated, a run whose canvases, logits and cache cannot fit
    in the memory left (candidates x canvas x vocab grows fast); says how many would."""
    from dgterm.errors import OutOfMemory

    config, dtype = lm.model.config, lm.dtype
    free = free_bytes(lm.device)
    need = runtime_bytes(config, context, candidates, dtype, sampler)
    if need <= free:
        return
    fits = max(0, min(candidates - 1, free // max(1, runtime_bytes(config, context, 1, dtype, sampler))))
    while fits > 1 and runtime_bytes(config, context, fits, dtype, sampler) > free:
        fits -= 1
    where = "the GPU" if str(lm.device).startswith("cuda") else "this machine"
    what = (f"use at most {fits} candidate(s)" if fits >= 1
            else "shorten the prompt, free memory, or use a bigger device")
    raise OutOfMemory(f"{candidates} candidate(s) at {context} tokens of context need {need / GiB:.1f} GiB for "
                      f"their canvases, logits and cache but {where} has {free / GiB:.1f} GiB free; {what}.")
