"""The quantized load path: one device, streamed shards, quantized tensor by tensor.

:func:`load` is what ``loading.load(..., quant="int8"|"nf4")`` and a pre-quantized
checkpoint (a directory with ``dgterm-quant.json``) end up in:

1. The plan's memory is checked against the device's free memory *before* anything is
   loaded; a plan that does not fit is refused with one sentence saying what would fit.
   Nothing is offloaded to the CPU or disk unless the caller allows it
   (``allow_offload=True``: ``--allow-offload``, ``DGTERM_ALLOW_OFFLOAD=1`` or the config file): then the expert weights stay in
   (pinned) host RAM and each routed expert is copied to the GPU when used.
2. The model is built on the ``meta`` device, the plan's quantized modules replace the
   experts and linears (tied encoder/decoder modules share one), and every tensor is
   allocated on the one target device (``cuda:N`` is made the current device, so no
   other GPU gets an allocation).
3. Safetensors shards are read tensor by tensor with plain reads (no mmap), the fused
   expert tensors a few experts at a time, converted or quantized on the target device
   and written into place: host RAM peaks near one chunk (≤ 128 MiB), not the model.
   A tqdm bar shows bytes and ETA.

:func:`quantize_checkpoint` (``dgterm quantize MODEL OUT``) writes a pre-quantized
checkpoint the same way, shard by shard; loading it copies the quantized tensors as they
are.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path

from dgterm.errors import ModelLoadError

MARKER = "dgterm-quant.json"
FORMAT = "dgterm-quant"
FORMAT_VERSION = 1
CHUNK_BYTES = 128 << 20  # host-side read size when the target is a GPU
CPU_CHUNK_BYTES = 16 << 20  # ... and when it is the CPU (quantization temporaries are host RAM too)
DEFAULT_CONTEXT = 8192  # the context the plan check assumes
MIN_CONTEXT = 1024  # below this much context a plan is refused rather than loaded with a note

_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


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


# ---------------------------------------------------------------- safetensors, streamed


class Entry:
    __slots__ = ("name", "file", "dtype", "shape", "start", "nbytes")

    def __init__(self, name, file, dtype, shape, start, nbytes):
        self.name, self.file, self.dtype, self.shape, self.start, self.nbytes = name, file, dtype, shape, start, nbytes


class ShardReader:
    """The tensors of a checkpoint's safetensors files, read with plain file reads."""

    def __init__(self, path):
        path = Path(path)
        index = path / "model.safetensors.index.json"
        if index.exists():
            files = sorted({path / f for f in json.loads(index.read_text())["weight_map"].values()})
        else:
            files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"{path} has no *.safetensors weights; re-download the checkpoint.")
        self.files = files
        self.entries: list[Entry] = []
        for f in files:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            for name, v in header.items():
                if name == "__metadata__":
                    continue
                a, b = v["data_offsets"]
                self.entries.append(Entry(name, f, _ST_DTYPES[v["dtype"]], tuple(v["shape"]), 8 + n + a, b - a))
        self.entries.sort(key=lambda e: (str(e.file), e.start))
        self.by_name = {e.name: e for e in self.entries}

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    def read(self, entry: Entry, rows: slice | None = None):
        """The tensor (or rows ``rows`` of its leading dim) as a CPU tensor of its own dtype."""
        import torch

        dtype = getattr(torch, entry.dtype)
        shape = list(entry.shape)
        start, nbytes = entry.start, entry.nbytes
        if rows is not None and shape:
            row_bytes = nbytes // max(shape[0], 1)
            r0, r1, _ = rows.indices(shape[0])
            start += r0 * row_bytes
            nbytes = (r1 - r0) * row_bytes
            shape[0] = r1 - r0
        buf = torch.empty(nbytes, dtype=torch.uint8)
        with entry.file.open("rb", buffering=0) as fh:
            fh.seek(start)
            view = memoryview(buf.numpy())
            got = 0
            while got < nbytes:
                n = fh.readinto(view[got:])
                if not n:
                    raise ModelLoadError(f"Weights file {entry.file} ends early; re-download the checkpoint.")
                got += n
        return buf.view(dtype).reshape(shape)

    def chunks(self, entry: Entry, chunk_bytes: int = CHUNK_BYTES):
        """(row slice, tensor) pieces of at most ~chunk_bytes along the leading dim."""
        if len(entry.shape) < 2 or entry.nbytes <= chunk_bytes:
            yield None, self.read(entry)
            return
        rows = entry.shape[0]
        per = max(1, chunk_bytes // max(entry.nbytes // rows, 1))
        for r in range(0, rows, per):
            sl = slice(r, min(rows, r + per))
            yield sl, self.read(entry, sl)


def _progress(total: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                dynamic_ncols=True, leave=False)


# ---------------------------------------------------------------- building and filling


@contextlib.contextmanager
def _parameters_on_meta():
    """Build a model with its parameters on the meta device but its buffers computed for real
    on the CPU (rotary tables, embedding scale, layer scalars): what a checkpoint does not
    hold keeps the value the model's own constructor and init give it. Parameters are
    allocated (never touched) and moved to meta as they are registered."""
    import torch

    original = torch.nn.Module.register_parameter

    def register(self, name, param):
        if param is not None and param.device.type != "meta":
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(self, name, param)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def build(config, plan, device, dtype, offload_experts: str | None = None):
    """The model with ``plan`` applied on ``device``: parameters and quantized buffers
    allocated uninitialized, the model's computed buffers copied over with their values."""
    import torch
    from transformers import DiffusionGemmaForBlockDiffusion

    from dgterm.engine import quant

    with _parameters_on_meta():
        model = DiffusionGemmaForBlockDiffusion(config)
    quant.apply_plan(model, plan, dtype=dtype, device="meta")
    QuantWeight, _, QuantizedExperts = quant.modules()
    expert_ids = set()
    for m in model.modules():
        if isinstance(m, QuantizedExperts):
            expert_ids.update(id(b) for b in m.buffers())
    pin = offload_experts is not None and torch.cuda.is_available()
    made: dict = {}
    for module in model.modules():
        nonpersistent = getattr(module, "_non_persistent_buffers_set", set())
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


def _targets(model):
    """name -> tensor for every parameter/buffer alias, and name -> QuantWeight for dense names."""
    from dgterm.engine import quant

    QuantWeight = quant.modules()[0]
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    qweights = {n: m for n, m in model.named_modules(remove_duplicate=False) if isinstance(m, QuantWeight)}
    return tensors, qweights


def fill(model, reader: ShardReader, dtype, progress: bool | None = None, desc: str = "Loading") -> dict:
    """Copy (or quantize) every checkpoint tensor into ``model``; return load statistics."""
    import torch

    tensors, qweights = _targets(model)
    done: set = set()
    unexpected, quantized, copied = [], 0, 0
    bar = _progress(reader.total_bytes, desc, progress)
    on_gpu = any(t.is_cuda for t in tensors.values())
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
                for rows, chunk in reader.chunks(entry, chunk_bytes):
                    target_q.load_dense_(chunk.to(target_q.device, non_blocking=True), index=rows)
                    bar.update(chunk.numel() * chunk.element_size())
                    del chunk
                quantized += 1
                done.update(id(b) for b in target_q.buffers())
            else:
                if tuple(target.shape) != entry.shape:
                    raise ModelLoadError(f"{entry.name} has shape {entry.shape} in the checkpoint but the model "
                                         f"expects {tuple(target.shape)}; the checkpoint does not match its config.json.")
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
    missing = []
    for name, t, is_buffer in _unique(model):
        if id(t) in done:
            continue
        mod_name, _, attr = name.rpartition(".")
        mod = model.get_submodule(mod_name) if mod_name else model
        if attr in getattr(mod, "_non_persistent_buffers_set", set()):
            continue
        missing.append(name)
    _check_missing(model, missing)
    return {"quantized_tensors": quantized, "copied_tensors": copied, "unexpected": unexpected[:20],
            "missing": missing[:20], "read_bytes": reader.total_bytes, "fill_seconds": time.perf_counter() - t0}


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


_malloc_trim = None


def _unique(model):
    from dgterm.engine import quant

    return quant.unique_tensors(model)


def _check_missing(model, missing):
    """Quantized weights must all be present; a missing dense tensor gets the model's own init."""
    from dgterm.engine import quant

    QuantWeight = quant.modules()[0]
    for name in missing:
        mod_name = name.rpartition(".")[0]
        mod = model.get_submodule(mod_name) if mod_name else model
        if isinstance(mod, QuantWeight):
            raise ModelLoadError(f"The checkpoint has no weights for {mod_name}; re-download or re-quantize it.")
        model._init_weights(mod)


def random_init_(model, std: float = 0.02, seed: int = 0) -> None:
    """Fill a built model with random weights (the benchmark's stand-in for a checkpoint):
    the model's own init for dense modules, N(0, std) quantized in place for quantized ones."""
    import torch

    from dgterm.engine import quant

    QuantWeight = quant.modules()[0]
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, QuantWeight):
                lead = module.shape[0] if len(module.shape) == 3 else None
                if lead is None:
                    module.load_dense_(torch.randn(module.shape, device=module.device) * std)
                else:
                    per = max(1, CHUNK_BYTES // (4 * module.shape[1] * module.shape[2]))
                    for e in range(0, lead, per):
                        n = min(per, lead - e)
                        w = torch.randn((n, *module.shape[1:]), device=module.device) * std
                        module.load_dense_(w, index=slice(e, e + n))
            else:
                try:
                    model._init_weights(module)
                except Exception:  # e.g. Gemma 4's axial vision rope: its table was computed by build()
                    if not getattr(module, "_non_persistent_buffers_set", None):
                        raise


# ---------------------------------------------------------------- the load path


def _free_bytes(device: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def pin_device(device: str) -> str:
    """'cuda' -> 'cuda:N' of the current device, made current so nothing lands on another GPU."""
    import torch

    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    return device


def load(path: Path, spec: str, device: str, dtype, quant_name: str, t0: float | None = None, *,
         allow_offload: bool = False, context: int | None = None, progress: bool | None = None):
    """Load ``path`` quantized per ``quant_name`` (or its pre-quantized plan) on ``device``."""
    import torch
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion
    from transformers.utils import logging as hf_logging

    from dgterm.engine import quant
    from dgterm.engine.loading import LoadedModel
    from dgterm.engine.params import SamplerParams

    t0 = time.perf_counter() if t0 is None else t0
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = Path(path)
    marker = read_marker(path) if is_prequantized(path) else None
    plan = quant.get_plan(marker["plan"] if marker else quant_name)
    notes = []
    if marker and quant_name not in ("none", plan.name):
        notes.append(f"{path.name} is pre-quantized to {plan.name}; --quant {quant_name} was ignored")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"The tokenizer in {path} cannot be loaded ({type(e).__name__}); restore the tokenizer files.") from None
    config = quant.load_config(path)
    device = pin_device(device)
    context = context or min(DEFAULT_CONTEXT, config.text_config.max_position_embeddings)
    eb = torch.empty((), dtype=dtype).element_size()
    need = quant.plan_memory(config, plan, context, 1, eb)
    free = _free_bytes(device)
    where = device if device != "cpu" else "host RAM"
    offload = None
    max_ctx = quant.max_context(config, plan, free, 1, eb) if free is not None and not need.fits(free) else None
    if max_ctx is not None and max_ctx >= MIN_CONTEXT:
        notes.append(f"the {plan.name} plan fits {where} with at most {max_ctx} tokens of context")
    elif max_ctx is not None:
        if allow_offload and device.startswith("cuda"):
            off = quant.plan_memory(config, plan, context, 1, eb, offload=True)
            if not off.fits(free):
                raise ModelLoadError(quant.refusal(config, plan, free, context, 1, eb, device)) from None
            offload = "cpu"
            notes.append(f"experts offloaded to host RAM ({off.offloaded / quant.GiB:.1f} GiB): slower")
        else:
            raise ModelLoadError(quant.refusal(config, plan, free, context, 1, eb, where))
    try:
        model = build(config, plan, device, dtype, offload_experts=offload)
        reader = ShardReader(path)
        stats = fill(model, reader, dtype, progress, desc=f"Loading {path.name} ({plan.name})")
    except torch.cuda.OutOfMemoryError:
        raise ModelLoadError(quant.refusal(config, plan, _free_bytes(device) or 0, context, 1, eb, where)) from None
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"Loading {path} failed ({type(e).__name__}: {str(e)[:200]}); check the checkpoint files.") from None
    gen_file = path / "generation_config.json"
    if gen_file.exists():
        try:
            model.generation_config = DiffusionGemmaForBlockDiffusion.generation_config_class.from_pretrained(path)
        except Exception:
            pass
    defaults = SamplerParams.from_generation_config(getattr(model, "generation_config", None))
    info = {"plan": plan.name, "formats": plan.formats(), "prequantized": bool(marker), "offload": offload,
            "max_context": max_ctx,
            "memory_plan": need.as_dict(), "notes": notes, "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            **stats}
    if device.startswith("cuda"):
        info["allocated_bytes"] = torch.cuda.memory_allocated(torch.device(device))
    return LoadedModel(model=model, tokenizer=tokenizer, path=path, spec=spec, device=device, dtype=dtype,
                       quant=plan.name, defaults=defaults, load_seconds=time.perf_counter() - t0, info=info)


# ---------------------------------------------------------------- pre-quantized checkpoints


class _ShardWriter:
    def __init__(self, out: Path, max_shard_bytes: int):
        self.out, self.max = out, max_shard_bytes
        self.current: dict = {}
        self.size = 0
        self.files: list[str] = []
        self.weight_map: dict = {}
        self.total = 0

    def add(self, name, tensor):
        nbytes = tensor.numel() * tensor.element_size()
        if self.current and self.size + nbytes > self.max:
            self.flush()
        self.current[name] = tensor.contiguous()
        self.size += nbytes
        self.total += nbytes

    def flush(self):
        from safetensors.torch import save_file

        if not self.current:
            return
        name = f"model-{len(self.files) + 1:05d}.safetensors"
        save_file(self.current, str(self.out / name), metadata={"format": "pt"})
        _usual_mode(self.out / name)
        self.files.append(name)
        self.weight_map.update({k: name for k in self.current})
        self.current, self.size = {}, 0

    def close(self):
        self.flush()
        index = {"metadata": {"total_size": self.total}, "weight_map": self.weight_map}
        (self.out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def _usual_mode(path: Path) -> None:
    """safetensors leaves its file readable by the owner only; give it the mode of any new file."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def quantize_checkpoint(src, out, plan="nf4", device="cpu", dtype="bf16", max_shard_bytes: int = 2 << 30,
                        progress: bool | None = None, overwrite: bool = False) -> dict:
    """Write ``out``: ``src`` with ``plan`` applied, loadable without re-quantizing.

    Streams: one source tensor (or a few experts of one) and one output shard in RAM.
    Dense tensors are stored in ``dtype``; the tokenizer, config and generation config are
    copied; ``dgterm-quant.json`` marks the directory (plan, formats, block size).
    """
    import torch

    from dgterm.engine import loading, quant
    from dgterm.paths import same_input

    src, out = Path(src), Path(out)
    loading.check_checkpoint(src)
    if is_prequantized(src):
        raise ModelLoadError(f"{src} is already quantized; quantize the original checkpoint instead.")
    spec = quant.get_plan(plan)
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out} is a file; give a new folder to write the quantized checkpoint to.")
    if out.exists() and (out.resolve() == src.resolve() or same_input(out, [src])):
        raise ModelLoadError(f"{out} is the checkpoint being quantized (or holds its files); write the quantized "
                             "one to another folder.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ModelLoadError(f"{out} exists and is not empty; pick a new directory or pass --overwrite.")
        for f in out.glob("*.safetensors"):
            f.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelLoadError(f"Cannot create {out} ({e.strerror}); pick a folder you can write to.") from None
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    device = pin_device(device)
    config = quant.load_config(src)
    meta = quant.build_meta(config, spec, torch_dtype)
    tensors, qweights = _targets(meta)
    reader = ShardReader(src)
    writer = _ShardWriter(out, max_shard_bytes)
    seen: set = set()
    from dgterm.engine.kernels.nf4 import quantize_rows

    on_gpu = device.startswith("cuda")
    chunk_bytes, max_elems = (CHUNK_BYTES, 1 << 24) if on_gpu else (CPU_CHUNK_BYTES, 1 << 20)
    t0 = time.perf_counter()
    bar = _progress(reader.total_bytes, f"Quantizing {src.name} to {spec.name}", progress)
    with torch.no_grad():
        for entry in reader.entries:
            qw, t = qweights.get(entry.name), tensors.get(entry.name)
            key = id(qw) if qw is not None else id(t) if t is not None else entry.name
            if key in seen:
                bar.update(entry.nbytes)
                continue
            seen.add(key)
            if qw is None:
                tensor = reader.read(entry)
                writer.add(entry.name, tensor.to(torch_dtype) if tensor.is_floating_point() else tensor)
                bar.update(entry.nbytes)
                continue
            parts: dict = {}
            names = ("qweight", "absmax") if qw.fmt == "nf4" else ("qweight", "scale")
            for rows, chunk in reader.chunks(entry, chunk_bytes):
                q, s = quantize_rows(chunk, qw.fmt, qw.blocksize, max_elems, device)
                parts.setdefault(names[0], []).append(q.cpu())
                parts.setdefault(names[1], []).append(s.cpu())
                bar.update(chunk.numel() * chunk.element_size())
                del chunk, q, s
            for suffix, pieces in parts.items():
                writer.add(f"{entry.name}.{suffix}", torch.cat(pieces) if len(pieces) > 1 else pieces[0])
    bar.close()
    writer.close()
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors") and f.name != "model.safetensors.index.json":
            shutil.copy2(f, out / f.name)
    marker = {"format": FORMAT, "version": FORMAT_VERSION, "plan": spec.name, "formats": spec.formats(),
              "blocksize": spec.blocksize, "nf4_absmax_dtype": "float16", "int8_scale_dtype": "float32",
              "dense_dtype": str(torch_dtype).removeprefix("torch."), "source": str(src),
              "bytes": writer.total, "shards": writer.files}
    (out / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return {**marker, "seconds": time.perf_counter() - t0}

