"""Safetensors shards, streamed: read a checkpoint tensor by tensor (or a few rows of one)
with plain file reads, no mmap; write one shard at a time. Host RAM peaks near one chunk."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

from dgterm.errors import ModelLoadError

CHUNK_BYTES = 128 << 20  # host-side read size when the target is a GPU
CPU_CHUNK_BYTES = 16 << 20  # ... and when it is the CPU (quantization temporaries are host RAM too)

_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


class Entry:
    __slots__ = ("name", "file", "dtype", "shape", "start", "nbytes")

    def __init__(self, name, file, dtype, shape, start, nbytes):
        self.name, self.file, self.dtype, self.shape, self.start, self.nbytes = name, file, dtype, shape, start, nbytes


class ShardReader:
    """The tensors of a checkpoint's safetensors files, read with plain file reads."""

    def __init__(self, path: str | Path) -> None:
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
            view = memoryview(buf.numpy())  # type: ignore[arg-type]  # an ndarray is a buffer; numpy says so for 3.12+
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


def progress_bar(total: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                dynamic_ncols=True, leave=False)


class ShardWriter:
    """Tensors added one by one, written as numbered shards of at most ``max_shard_bytes``, then the index."""

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
