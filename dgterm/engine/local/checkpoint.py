"""Find and check a checkpoint: the bundled model, a local directory, or a Hugging Face id;
the device and dtype it runs at. Torch-free until a device or dtype is picked.

A Hugging Face id is looked up in the local cache only, unless the caller passes
``download=True``. Nothing here sets ``trust_remote_code``. Each failure is a
:class:`ModelLoadError` whose message says what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dgterm.errors import ModelLoadError
from dgterm.paths import read_limited
from dgterm.resources import shipped

if TYPE_CHECKING:
    import torch

BUNDLED_NAME = "stdlib-7m"
MODEL_TYPE = "diffusion_gemma"
DTYPES = ("auto", "bf16", "fp16", "fp32")
QUANTS = ("none", "int8", "nf4")


def bundled_dir() -> Path:
    """The bundled checkpoint: inside the package when installed from a wheel, else in the repo."""
    return shipped(f"runtime/models/{BUNDLED_NAME}/config.json").parent


def resolve(spec: str = "bundled", download: bool = False) -> Path:
    """Turn a model spec into a directory holding config.json, weights and tokenizer."""
    if spec in ("", "bundled"):
        path = bundled_dir()
        if not (path / "config.json").exists():
            raise ModelLoadError(f"The bundled model is missing from {path}; reinstall dgterm.")
        return path
    path = Path(spec).expanduser()
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as e:  # a symlink loop, a name too long
        raise ModelLoadError(f"Model path {path} cannot be used ({e.strerror}); pass a checkpoint directory, "
                             "a Hugging Face id, or 'bundled'.") from None
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        if not path.exists():
            raise ModelLoadError(f"Model path {path} does not exist; pass a checkpoint directory, a Hugging Face id, "
                                 "or 'bundled'.")
        if not path.is_dir():
            raise ModelLoadError(f"Model path {path} is a file; pass the directory that holds config.json.")
        return path
    return _from_hub_cache(spec, download)


def _from_hub_cache(repo_id: str, download: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=not download))
    except LocalEntryNotFoundError:
        if download:  # the hub could not be reached
            raise ModelLoadError(f"Could not download {repo_id}: the Hugging Face hub cannot be reached from here; "
                                 "check your network, or copy the checkpoint over and pass its folder.") from None
        raise ModelLoadError(
            f"{repo_id} is not in the local Hugging Face cache; download it once with "
            f"`dgterm doctor --model {repo_id} --download` (or `huggingface-cli download {repo_id}`)."
        ) from None
    except Exception as e:  # network, auth, missing repo
        raise ModelLoadError(f"Could not download {repo_id} ({type(e).__name__}: {e}); "
                             "check the id and your network.") from None


def check_checkpoint(path: Path) -> dict:
    """Validate a checkpoint directory before loading it; return its config dict."""
    config_file = path / "config.json"
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as e:
        raise ModelLoadError(f"The model folder {path} cannot be read ({e.strerror}); check its permissions.") from None
    if "config.json" not in names:
        raise ModelLoadError(f"{path} has no config.json; it is not a model checkpoint.")
    for name in names:  # a FIFO or a device among the files would hang or never end a read
        p = path / name
        if p.exists() and not (p.is_file() or p.is_dir()):  # (a dangling link: the index check says more)
            raise ModelLoadError(f"{p} is not a regular file; a checkpoint holds plain files, so replace it.")
    try:
        config = json.loads(read_limited(config_file, CONFIG_LIMIT))
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) else e
        raise ModelLoadError(f"{config_file} cannot be read as JSON ({why}); "
                             "restore or re-download the checkpoint.") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_file} holds a JSON {type(config).__name__}, not an object; "
                             "restore or re-download the checkpoint.")
    found = config.get("model_type")
    if found != MODEL_TYPE:
        raise ModelLoadError(
            f"{path} holds a '{found}' model, not a DiffusionGemma checkpoint (model_type '{MODEL_TYPE}'); "
            "dgterm runs DiffusionGemma-architecture models only."
        )
    canvas = config.get("canvas_length", 1)
    if type(canvas) is not int or canvas < 1:
        raise ModelLoadError(f"{config_file} gives canvas_length {canvas!r}; it must be a whole number of at least 1, "
                             "so restore the checkpoint's config.")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ModelLoadError(f"{path} has no *.safetensors weights; "
                             "re-download the checkpoint or run `dgterm quantize`.")
    _check_index(path)
    for w in weights:
        _read_header(w)
    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer.model")):
        raise ModelLoadError(f"{path} has no tokenizer (tokenizer.json); copy the tokenizer files next to config.json.")
    return config


def _check_index(path: Path) -> None:
    """A sharded checkpoint's index must name shards that are all there (a download cut short
    leaves some out of the Hugging Face cache's snapshot)."""
    index = path / "model.safetensors.index.json"
    if not index.exists():
        return
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelLoadError(f"{index} cannot be read ({type(e).__name__}); re-download the checkpoint.") from None
    missing = sorted(s for s in shards if not (path / s).is_file())
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelLoadError(f"{path} lacks the weights shard {missing[0]}{more} named by its index; "
                             "the download is incomplete: download the checkpoint again.")


CONFIG_LIMIT = 64 << 20  # config.json, tokenizer_config.json: far smaller in any real checkpoint


def _read_header(file: Path) -> dict:
    """A *.safetensors file's header, checked against the file's length."""
    import struct

    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size - 8, CONFIG_LIMIT):
                raise ValueError("its header length is impossible")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if size < 8 + n + end:
            raise ValueError("file is shorter than its header says")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, struct.error) as e:
        raise ModelLoadError(f"Weights file {file} is corrupt ({e}); "
                             "re-download or re-export the checkpoint.") from None
    return header


def safetensors_shapes(path: Path) -> dict[str, tuple]:
    """Name -> shape of every tensor in the checkpoint's *.safetensors headers (no data read)."""
    shapes = {}
    for file in sorted(path.glob("*.safetensors")):
        header = _read_header(file)
        shapes.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes


def check_weights(path: Path, config) -> None:
    """The tensors on disk are the architecture's, by name and shape: every weight present
    (under any of its tied names), none unknown. Reads headers only (``dgterm doctor``)."""
    from dgterm.engine.local.quant.modules import build_meta, is_nonpersistent

    shapes = safetensors_shapes(path)
    model = build_meta(config, "bf16")
    names: dict[int, list] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        if not is_nonpersistent(model, name):
            names.setdefault(id(t), [t]).append(name)
    known = {n for group in names.values() for n in group[1:]}
    missing = [g[1] for g in names.values() if not any(n in shapes for n in g[1:])]
    wrong = [n for g in names.values() for n in g[1:] if n in shapes and shapes[n] != tuple(g[0].shape)]
    check_loading_info(path, {"missing_keys": missing, "unexpected_keys": sorted(set(shapes) - known),
                              "mismatched_keys": wrong})


SCAN_LIMIT = 4 << 30  # "small": doctor reads such weights for NaN; /model loads them beside the working model


def weights_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def check_finite(path: Path) -> None:
    """Refuse a small checkpoint whose floating-point weights hold NaN or infinity before it is
    loaded (``doctor``, which does not load it otherwise)."""
    if weights_bytes(path) > SCAN_LIMIT:
        return
    files = sorted(path.glob("*.safetensors"))
    import torch
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - a safe_open handle is not iterable
                t = f.get_tensor(name)
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise ModelLoadError(NONFINITE.format(path=path))


NONFINITE = "The weights in {path} hold NaN or infinite values; re-download or re-export the checkpoint."


def check_loading_info(path: Path, info: dict) -> None:
    """A checkpoint whose tensors do not match the architecture cannot run: refuse it."""
    for key, what in (("missing_keys", "lacks"), ("unexpected_keys", "has unexpected"),
                      ("mismatched_keys", "has wrongly shaped")):
        names = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or ())
        if names:
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            raise ModelLoadError(f"{path} {what} weights ({names[0]}{more}), so it cannot run; "
                                 "re-download or re-export the checkpoint.")


def load_failure(path: Path, e: BaseException) -> ModelLoadError:
    """One sentence for a load that raised: memory is named as memory, not the checkpoint's fault."""
    text = str(e)
    if isinstance(e, MemoryError) or "Cannot allocate memory" in text or "out of memory" in text.lower():
        return ModelLoadError(f"Not enough memory to load {path.name} ({type(e).__name__}); free memory, raise the "
                              "memory limit (ulimit -v), or use --quant nf4.")
    return ModelLoadError(f"Loading {path} failed ({type(e).__name__}: {text[:200]}); check the checkpoint files.")


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"Device {device} was requested but this machine has no usable CUDA GPU; "
                                 "use --device cpu.")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"Device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible; "
                "pick another index.")
        return device
    if device != "cpu":
        raise ModelLoadError(f"Unknown device '{device}'; use cpu, cuda or cuda:N.")
    return device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}.")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
