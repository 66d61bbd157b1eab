"""Model configs for the planner: memory profiles shipped without weights
(``runtime/profiles/NAME``), checkpoint directories, ``bundled``, cached Hugging Face ids."""

from __future__ import annotations

import json
from pathlib import Path

from dgterm.engine.local import checkpoint
from dgterm.errors import ModelLoadError
from dgterm.resources import shipped

# The checkpoint each profile describes (what to download to run it).
SOURCES = {"diffusiongemma-26b-a4b": "google/diffusiongemma-26B-A4B-it"}


def profiles_dir() -> Path:
    return shipped("runtime/profiles")


def list_profiles() -> list[str]:
    d = profiles_dir()
    return sorted(p.parent.name for p in d.glob("*/config.json")) if d.is_dir() else []


def find_profile(spec: str) -> Path | None:
    """The folder of a memory profile (a config without weights) named by ``spec``: its name,
    its folder or its config.json by any path, or a path ending in ``profiles/NAME`` that
    does not exist from here (a path copied from the docs or another directory)."""
    if spec in list_profiles():
        return profiles_dir() / spec
    path = Path(spec).expanduser()
    if path.name == "config.json":
        path = path.parent
    try:
        if (path / "config.json").is_file():
            return None if any(path.glob("*.safetensors")) else path
        if not path.exists() and path.parent.name == "profiles" and path.name in list_profiles():
            return profiles_dir() / path.name
    except OSError:
        pass
    return None


def config_path(spec: str, download: bool = False) -> Path:
    """The config.json of a profile name (runtime/profiles/NAME), 'bundled', a directory, a
    config.json file, or a Hugging Face id in the local cache."""
    spec = spec or "bundled"
    profile = find_profile(spec)
    if profile is not None:
        return profile / "config.json"
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ModelLoadError(f"{p} has no config.json; pass a checkpoint or profile directory.")
        return p / "config.json"
    try:
        return checkpoint.resolve(spec, download) / "config.json"
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
