"""Writing quantized checkpoints (``dgterm quantize``) and the plans as a Markdown table
(``dgterm bench plans``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from dgterm.engine.local import checkpoint
from dgterm.engine.local.kernels.nf4 import quantize_rows
from dgterm.engine.local.quant.loader import FORMAT, FORMAT_VERSION, MARKER, is_prequantized, pin_device, targets
from dgterm.engine.local.quant.modules import build_meta
from dgterm.engine.local.quant.planner import MemoryPlan
from dgterm.engine.local.quant.plans import COMPONENTS, GiB, get_plan
from dgterm.engine.local.quant.profiles import load_config
from dgterm.engine.local.quant.shards import CHUNK_BYTES, CPU_CHUNK_BYTES, ShardReader, ShardWriter, progress_bar
from dgterm.errors import ModelLoadError
from dgterm.paths import same_input


def quantize_checkpoint(src, out, plan="nf4", device="cpu", dtype="bf16", max_shard_bytes: int = 2 << 30,
                        progress: bool | None = None, overwrite: bool = False) -> dict:
    """Write ``out``: ``src`` with ``plan`` applied, loadable without re-quantizing.

    Streams: one source tensor (or a few experts of one) and one output shard in RAM.
    Dense tensors are stored in ``dtype``; the tokenizer, config and generation config are
    copied; ``dgterm-quant.json`` marks the directory (plan, formats, block size).
    """
    src, out = Path(src), Path(out)
    checkpoint.check_checkpoint(src)
    if is_prequantized(src):
        raise ModelLoadError(f"{src} is already quantized; quantize the original checkpoint instead.")
    spec = get_plan(plan)
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
    torch_dtype = checkpoint.pick_dtype(dtype, "cpu")
    device = pin_device(device)
    config = load_config(src)
    meta = build_meta(config, spec, torch_dtype)
    tensors, qweights = targets(meta)
    reader = ShardReader(src)
    writer = ShardWriter(out, max_shard_bytes)
    seen: set = set()
    on_gpu = device.startswith("cuda")
    chunk_bytes, max_elems = (CHUNK_BYTES, 1 << 24) if on_gpu else (CPU_CHUNK_BYTES, 1 << 20)
    t0 = time.perf_counter()
    bar = progress_bar(reader.total_bytes, f"Quantizing {src.name} to {spec.name}", progress)
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
            for _, chunk in reader.chunks(entry, chunk_bytes):
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


def table(plans: list[MemoryPlan]) -> str:
    """A markdown table of plans (GiB), component by component."""
    rows = ["| | " + " | ".join(p.plan for p in plans) + " |", "|---|" + "---:|" * len(plans)]
    for c in COMPONENTS:
        rows.append(f"| {c} | " + " | ".join(f"{p.components[c] / GiB:.2f} ({p.formats[c]})" for p in plans) + " |")
    for label, get in (("weights", lambda p: p.weights), ("KV cache", lambda p: p.kv_cache),
                       ("logits (held)", lambda p: p.logits), ("sampler workspace", lambda p: p.workspace),
                       ("activations (step)", lambda p: p.activations), ("prefill (peak)", lambda p: p.prefill),
                       ("**total**", lambda p: p.total)):
        rows.append(f"| {label} | " + " | ".join(f"{get(p) / GiB:.2f}" for p in plans) + " |")
    return "\n".join(rows)
