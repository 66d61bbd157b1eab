"""Find and check a checkpoint: the bundled model, a local directory, or a Hugging Face id;
the device and dtype it runs at. Torch-free until a device or dtype is picked.

A Hugging Face id is looked up in the local cache only, unless the caller passes
``download=True``. Nothing here sets ``trust_remote_code``. Each failure is a
:class:`ModelLoadError` whose message says what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

from dgterm.errors import ModelLoadError
from dgterm.resources import shipped

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
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        if not path.exists():
            raise ModelLoadError(f"Model path {path} does not exist; pass a checkpoint directory, a Hugging Face id, or 'bundled'.")
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
            f"`dgterm generate --model {repo_id} --download` (or `huggingface-cli download {repo_id}`)."
        ) from None
    except Exception as e:  # network, auth, missing repo
        raise ModelLoadError(f"Could not download {repo_id} ({type(e).__name__}: {e}); check the id and your network.") from None


def check_checkpoint(path: Path) -> dict:
    """Validate a checkpoint directory before loading it; return its config dict."""
    config_file = path / "config.json"
    if not config_file.exists():
        raise ModelLoadError(f"{path} has no config.json; it is not a model checkpoint.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{config_file} cannot be read as JSON ({e}); restore or re-download the checkpoint.") from None
    found = config.get("model_type")
    if found != MODEL_TYPE:
        raise ModelLoadError(
            f"{path} holds a '{found}' model, not a DiffusionGemma checkpoint (model_type '{MODEL_TYPE}'); "
            "dgterm runs DiffusionGemma-architecture models only."
        )
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ModelLoadError(f"{path} has no *.safetensors weights; re-download the checkpoint or run `dgterm quantize`.")
    _check_index(path)
    for w in weights:
        _check_safetensors(w)
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


def _check_safetensors(file: Path) -> None:
    """Read the header and check the file is as long as the header says (catches truncation)."""
    import struct

    try:
        with file.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if file.stat().st_size < 8 + n + end:
            raise ValueError("file is shorter than its header says")
    except (OSError, ValueError, KeyError, struct.error) as e:
        raise ModelLoadError(f"Weights file {file} is corrupt ({e}); re-download or re-export the checkpoint.") from None


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"Device {device} was requested but this machine has no usable CUDA GPU; use --device cpu.")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"Device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible; pick another index.")
        return device
    if device != "cpu":
        raise ModelLoadError(f"Unknown device '{device}'; use cpu, cuda or cuda:N.")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}.")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
