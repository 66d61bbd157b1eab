"""The quantized load path: one device, streamed shards, quantized tensor by tensor.

:func:`load` is what ``loading.load(..., quant="int8"|"nf4")`` and a pre-quantized
checkpoint (a directory with ``dgterm-quant.json``) end up in; it returns the model and
what the load found, and ``loading`` wraps them with the tokenizer in a ``LoadedModel``:

1. The plan's memory is checked against the device's free memory *before* anything is
   loaded; a plan that does not fit is refused with one sentence saying what would fit.
   Nothing is offloaded to the CPU or disk unless the caller asks: ``offload_layers`` N
   (``--offload-experts``) keeps the experts of the last N layers in (pinned) host RAM,
   ``auto`` the fewest layers that let the plan fit, and ``allow_offload=True``
   (``--allow-offload``) all of them when nothing else fits. An offloaded layer's experts
   are streamed to the GPU each step or run on the host's cores, as the offload planner
   (:mod:`dgterm.engine.local.quant.offload`) says is faster.
2. The model is built on the ``meta`` device, the plan's quantized modules replace the
   experts and linears (tied encoder/decoder modules share one), and every tensor is
   allocated on the one target device (``cuda:N`` is made the current device, so no
   other GPU gets an allocation).
3. Safetensors shards are read tensor by tensor with plain reads (no mmap), the fused
   expert tensors a few experts at a time, converted or quantized on the target device
   and written into place: host RAM peaks near one chunk (≤ 128 MiB), not the model.
   A tqdm bar shows bytes and ETA.

Writing a pre-quantized checkpoint is :mod:`dgterm.engine.local.quant.export`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch

from dgterm.engine.local.checkpoint import check_loading_info, load_failure
from dgterm.engine.local.quant import planner
from dgterm.engine.local.quant.modules import (
    QuantizedExperts,
    QuantWeight,
    apply_plan,
    is_nonpersistent,
    unique_tensors,
)
from dgterm.engine.local.quant.plans import GiB, get_plan
from dgterm.engine.local.quant.profiles import load_config
from dgterm.engine.local.quant.shards import CHUNK_BYTES, CPU_CHUNK_BYTES, ShardReader, progress_bar
from dgterm.errors import ModelLoadError

MARKER = "dgterm-quant.json"
FORMAT = "dgterm-quant"
FORMAT_VERSION = 1
DEFAULT_CONTEXT = 8192  # the context the plan check assumes
MIN_CONTEXT = 1024  # below this much context a plan is refused rather than loaded with a note


def is_prequantized(path) -> bool:
    return (Path(path) / MARKER).exists()


def read_marker(path) -> dict:
    try:
        marker = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{Path(path) / MARKER} cannot be read ({e}); re-run `dgterm quantize`.") from None
    if marker.get("format") != FORMAT or marker.get("version", 0) > FORMAT_VERSION:
        raise ModelLoadError(f"{path} was quantized by a newer or different tool ({marker.get('format')} "
                             f"v{marker.get('version')}); update dgterm or re-run `dgterm quantize`.")
    return marker


# ---------------------------------------------------------------- building and filling


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Build a model with its parameters on the meta device but its buffers computed for real
    on the CPU (rotary tables, embedding scale, layer scalars): what a checkpoint does not
    hold keeps the value the model's own constructor and init give it. Parameters are
    allocated (never touched) and moved to meta as they are registered."""
    original = torch.nn.Module.register_parameter

    def register(self, name, param):
        if param is not None and param.device.type != "meta":
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(self, name, param)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]  # patched for the build only
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def build(config, plan, device, dtype, offload_experts: str | None = None, offload_layers: int | None = None,
          offload_mode: str = "stream"):
    """The model with ``plan`` applied on ``device``: parameters and quantized buffers
    allocated uninitialized, the model's computed buffers copied over with their values.
    ``offload_experts``: where the experts of the last ``offload_layers`` layers (default
    all) live instead, reached by ``offload_mode`` ('stream' or 'cpu')."""
    from transformers import DiffusionGemmaForBlockDiffusion

    with _parameters_on_meta():
        model = DiffusionGemmaForBlockDiffusion(config)
    apply_plan(model, plan, dtype=dtype, device="meta")
    expert_ids: set[int] = set()
    layers = config.text_config.num_hidden_layers
    first = layers - (layers if offload_layers is None else offload_layers)
    for name, m in model.named_modules():
        if isinstance(m, QuantizedExperts) and offload_experts is not None and _layer_of(name) >= first:
            expert_ids.update(id(b) for b in m.buffers())
            m.offload = offload_mode
    pin = offload_experts is not None and torch.cuda.is_available()
    made: dict = {}
    for module in model.modules():
        nonpersistent: set[str] = getattr(module, "_non_persistent_buffers_set", set())
        for kind in ("_parameters", "_buffers"):
            for name, t in list(getattr(module, kind).items()):
                if t is None:
                    continue
                if id(t) not in made:
                    if t.device.type != "meta":  # a computed buffer: keep its value (and float32 if transient)
                        keep = not t.is_floating_point() or name in nonpersistent
                        new = t.to(device=device, dtype=t.dtype if keep else dtype)
                    elif id(t) in expert_ids and offload_experts is not None:
                        new = torch.empty(t.shape, dtype=t.dtype, device=offload_experts, pin_memory=pin)
                    else:
                        keep = not t.is_floating_point() or kind == "_buffers"  # quantized buffers keep theirs
                        new = torch.empty(t.shape, dtype=t.dtype if keep else dtype, device=device)
                    if kind == "_parameters":
                        new = torch.nn.Parameter(new, requires_grad=False)
                    made[id(t)] = new
                getattr(module, kind)[name] = made[id(t)]
    model.eval()
    model.requires_grad_(False)
    return model


def _layer_of(name: str) -> int:
    """The layer index in a module name like ``model.decoder.layers.7.experts``."""
    parts = name.split(".")
    return int(parts[parts.index("layers") + 1]) if "layers" in parts else -1


def targets(model):
    """name -> tensor for every parameter/buffer alias, and name -> QuantWeight for dense names."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    qweights = {n: m for n, m in model.named_modules(remove_duplicate=False) if isinstance(m, QuantWeight)}
    return tensors, qweights


def fill(model, reader: ShardReader, dtype, progress: bool | None = None, desc: str = "Loading") -> dict:
    """Copy (or quantize) every checkpoint tensor into ``model``; return load statistics."""
    tensors, qweights = targets(model)
    done: set = set()
    unexpected, quantized, copied = [], 0, 0
    bar = progress_bar(reader.total_bytes, desc, progress)
    gpu = next((t.device for t in tensors.values() if t.is_cuda), None)
    on_gpu = gpu is not None
    chunk_bytes = CHUNK_BYTES if on_gpu else CPU_CHUNK_BYTES
    t0 = time.perf_counter()
    with torch.no_grad():
        for entry in reader.entries:
            target_q = qweights.get(entry.name)
            target = tensors.get(entry.name)
            key = id(target_q) if target_q is not None else id(target)
            if (target_q is None and target is None) or key in done:
                if target_q is None and target is None:
                    unexpected.append(entry.name)
                bar.update(entry.nbytes)
                continue
            if target_q is not None:
                # experts kept in host RAM are still quantized on the GPU, then copied back
                work = gpu if gpu is not None and target_q.device.type == "cpu" else target_q.device
                for rows, chunk in reader.chunks(entry, chunk_bytes):
                    target_q.load_dense_(chunk.to(work, non_blocking=True), index=rows, work_device=work)
                    bar.update(chunk.numel() * chunk.element_size())
                    del chunk
                quantized += 1
                done.update(id(b) for b in target_q.buffers())
            else:
                if tuple(target.shape) != entry.shape:
                    raise ModelLoadError(f"{entry.name} has shape {entry.shape} in the checkpoint but the model "
                                         f"expects {tuple(target.shape)}; "
                                         "the checkpoint does not match its config.json.")
                for rows, chunk in reader.chunks(entry, chunk_bytes):
                    (target if rows is None else target[rows]).copy_(chunk, non_blocking=True)
                    bar.update(chunk.numel() * chunk.element_size())
                    del chunk
                copied += 1
            done.add(key)
            if not on_gpu:
                _trim()
    bar.close()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    missing = [name for name, t, _ in unique_tensors(model) if id(t) not in done and not is_nonpersistent(model, name)]
    # a checkpoint with weights missing or unknown to the architecture does not run: refused
    check_loading_info(reader.files[0].parent, {"missing_keys": missing, "unexpected_keys": unexpected})
    return {"quantized_tensors": quantized, "copied_tensors": copied, "read_bytes": reader.total_bytes,
            "fill_seconds": time.perf_counter() - t0}


def _trim():
    """Hand freed heap memory back to the OS (glibc), so host RSS tracks live tensors."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Callable[[int], int] | Literal[False] | None = None  # glibc's, False where there is none


# ---------------------------------------------------------------- the load path


def _offload_asked(config, plan, free: int, context: int, eb: int, device: str, asked: str) -> int:
    """Layers whose experts stay in host RAM: N as asked, or for 'auto' the fewest that let
    the plan fit the GPU (none on the CPU, where the host is the device)."""
    from dgterm.engine.local.quant import offload

    if str(asked) != "auto":
        return min(int(asked), config.text_config.num_hidden_layers)
    if not device.startswith("cuda"):
        return 0
    n = offload.fewest_layers(config, plan, free, context, 1, eb)
    if n is None:
        raise ModelLoadError(planner.refusal(config, plan, free, context, 1, eb, device))
    return n


def _offload_mode(config, need, device: str) -> str:
    """'stream' or 'cpu', whichever the offload planner estimates faster on this GPU."""
    from dgterm.engine.local.quant import offload

    if not device.startswith("cuda"):
        return "stream"
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    return offload.step_estimate(config, need, offload.card_for(total)).mode


def pin_device(device: str) -> str:
    """'cuda' -> 'cuda:N' of the current device, made current so nothing lands on another GPU."""
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    return device


def load(path: Path, device: str, dtype, quant_name: str, *, allow_offload: bool = False,
         offload_layers: str = "0", context: int | None = None, progress: bool | None = None):
    """Load the weights of ``path`` quantized per ``quant_name`` (or its pre-quantized plan) on
    ``device``: (model, the device it is on ('cuda' pinned to 'cuda:N'), plan name, info).
    ``offload_layers``: 'auto' or N layers whose experts stay in host RAM."""
    from transformers import DiffusionGemmaForBlockDiffusion

    path = Path(path)
    marker = read_marker(path) if is_prequantized(path) else None
    plan = get_plan(marker["plan"] if marker else quant_name)
    notes = []
    if marker and quant_name not in ("none", plan.name):
        notes.append(f"{path.name} is pre-quantized to {plan.name}; --quant {quant_name} was ignored")
    config = load_config(path)
    device = pin_device(device)
    context = context or min(DEFAULT_CONTEXT, config.text_config.max_position_embeddings)
    eb = torch.empty((), dtype=dtype).element_size()
    need = planner.plan_memory(config, plan, context, 1, eb)
    free = planner.free_bytes(device)
    where = device if device != "cpu" else "host RAM"
    offload, layers, mode = None, None, "stream"
    asked = _offload_asked(config, plan, free, context, eb, device, offload_layers)
    if asked:
        need = planner.plan_memory(config, plan, context, 1, eb, offload=asked)
        offload, layers, mode = "cpu", asked, _offload_mode(config, need, device)
        notes.append(f"experts of {asked} layers in host RAM ({need.offloaded / GiB:.1f} GiB, "
                     f"{'streamed' if mode == 'stream' else 'run on the CPU'}): slower")
    max_ctx = planner.max_context(config, plan, free, 1, eb) if not need.fits(free) else None
    if max_ctx is not None and max_ctx >= MIN_CONTEXT and not asked:
        notes.append(f"the {plan.name} plan fits {where} with at most {max_ctx} tokens of context")
    elif max_ctx is not None and not asked:
        if allow_offload and device.startswith("cuda"):
            off = planner.plan_memory(config, plan, context, 1, eb, offload=True)
            if not off.fits(free):
                raise ModelLoadError(planner.refusal(config, plan, free, context, 1, eb, device)) from None
            offload = "cpu"
            notes.append(f"experts offloaded to host RAM ({off.offloaded / GiB:.1f} GiB): slower")
        else:
            raise ModelLoadError(planner.refusal(config, plan, free, context, 1, eb, where))
    elif max_ctx is not None:
        raise ModelLoadError(f"The {plan.name} plan with the experts of {asked} layers in host RAM needs "
                             f"{need.total / GiB:.1f} GiB + 0.5 GiB headroom at {context} tokens of context but "
                             f"{where} has {free / GiB:.1f} GiB free; use --offload-experts auto.")
    try:
        model = build(config, plan, device, dtype, offload_experts=offload, offload_layers=layers, offload_mode=mode)
        reader = ShardReader(path)
        stats = fill(model, reader, dtype, progress, desc=f"Loading {path.name} ({plan.name})")
    except torch.cuda.OutOfMemoryError:
        raise ModelLoadError(planner.refusal(config, plan, planner.free_bytes(device), context, 1, eb, where)) from None
    except ModelLoadError:
        raise
    except Exception as e:
        raise load_failure(path, e) from None
    gen_file = path / "generation_config.json"
    if gen_file.exists():
        try:
            model.generation_config = DiffusionGemmaForBlockDiffusion.generation_config_class.from_pretrained(path)
        except (OSError, ValueError, TypeError) as e:  # transformers says OSError for a file that is not JSON
            notes.append(f"{gen_file.name} cannot be read ({type(e).__name__}); the sampler uses the reference "
                         "defaults")
    info = {"plan": plan.name, "formats": plan.formats(), "prequantized": bool(marker), "offload": offload,
            "offload_layers": layers if offload else 0, "offload_mode": mode if offload else None,
            "max_context": max_ctx,
            "memory_plan": need.as_dict(), "notes": notes, "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            **stats}
    if device.startswith("cuda"):
        info["allocated_bytes"] = torch.cuda.memory_allocated(torch.device(device))
    return model, device, plan.name, info
