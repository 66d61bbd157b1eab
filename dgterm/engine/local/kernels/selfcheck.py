"""Kernels that check themselves: before a Triton kernel first runs on a device, it is run
against its torch twin on small shapes (milliseconds once compiled), and only a kernel that
agrees is used. The verdict is cached under the state directory, keyed by the device's
name, the driver and the torch, Triton and dgterm versions, so it is checked again when any
of them changes. A mismatch, a compile error or a launch error makes that kernel fall back
to its reference (torch) path, said once in one sentence.

``--kernels`` (``kernels =`` in the config, ``DGTERM_KERNELS``): ``auto`` (the default:
self-checked Triton where it runs), ``triton`` (Triton without the check) or ``reference``
(torch only; ``torch`` is the same). Triton runs on CUDA tensors, and on the CPU under its
interpreter (``TRITON_INTERPRET=1``, the tests).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

MODES = ("auto", "triton", "reference", "torch")
CACHE_FILE = "kernels.json"
log = logging.getLogger("dgterm.kernels")
_mode: list[str] = []  # the configured mode, once configure() ran
_verdicts: dict[tuple[str, str], Verdict] = {}
_lock = threading.Lock()


@dataclass
class Verdict:
    kernel: str
    device: str
    ok: bool
    detail: str  # "agrees (max error …)" or what went wrong
    seconds: float
    cached: bool = False


def configure(mode: str | None) -> None:
    """Set the process's kernel mode (``loading.load`` passes the setting)."""
    mode = (mode or "auto").lower()
    if mode not in MODES:
        raise ValueError(mode)
    _mode[:] = [mode]


def mode() -> str:
    """'auto', 'triton' or 'reference': configured, else ``DGTERM_KERNELS``, else auto."""
    m = _mode[0] if _mode else os.environ.get("DGTERM_KERNELS", "auto").lower()
    return "reference" if m == "torch" else m if m in MODES else "auto"


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


_triton: list = []  # [whether Triton imports], once known


def triton_available() -> bool:
    if not _triton:
        try:
            import triton  # noqa: F401

            _triton.append(True)
        except Exception:  # noqa: BLE001 - a broken Triton install means: use the twin
            _triton.append(False)
    return _triton[0]


def triton_runs_on(device: torch.device) -> bool:
    """Whether a Triton kernel can run on ``device`` here: CUDA, or the CPU under the interpreter."""
    return (device.type == "cuda" or (device.type == "cpu" and interpreted())) and triton_available()


def use_triton(kernel: str, device: torch.device) -> bool:
    """Whether ``kernel`` runs as Triton on ``device``: per the mode, and in ``auto`` only
    once it has passed its self-check there."""
    m = mode()
    if m != "auto":
        return m == "triton"
    return triton_runs_on(device) and verdict(kernel, device).ok


def device_key(device: torch.device) -> str:
    """What a verdict depends on: the device's name, the driver, torch, Triton and dgterm."""
    key = (device.type, device.index)
    if key not in _keys:
        _keys[key] = _describe(device)
    return _keys[key]


_keys: dict[tuple, str] = {}


def _describe(device: torch.device) -> str:
    import importlib.metadata

    from dgterm import __version__

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        driver = f"cuda {torch.version.cuda}, driver {_driver_version()}"
    else:
        name, driver = "cpu (Triton interpreter)", "none"
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = "none"
    return f"{name} | {driver} | torch {torch.__version__} | triton {triton} | dgterm {__version__}"


def _driver_version() -> str:
    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    try:
        return str(getter()) if getter else "unknown"
    except RuntimeError:
        return "unknown"


def cache_path() -> Path:
    from dgterm.config import state_dir

    return state_dir() / CACHE_FILE


def verdict(kernel: str, device: torch.device) -> Verdict:
    """The cached verdict of ``kernel`` on ``device``, checking it first when there is none."""
    key = device_key(device)
    with _lock:
        if (kernel, key) in _verdicts:
            return _verdicts[(kernel, key)]
        stored = _read_cache().get(key, {}).get(kernel)
        if stored is not None:
            v = Verdict(**{**stored, "cached": True})
        else:
            v = check(kernel, device)
            _write_cache(key, v)
            if not v.ok:
                log.warning("dgterm: %s", fallback_sentence(v))
        _verdicts[(kernel, key)] = v
        return v


def fallbacks(device: torch.device) -> list[str]:
    """Check every kernel that would run as Triton on ``device`` now (at load, not mid-run),
    and say which fall back: the sentences, for the model's notes."""
    if mode() != "auto" or not triton_runs_on(device):
        return []
    return [fallback_sentence(v) for v in (verdict(k, device) for k in KERNELS) if not v.ok]


def fallback_sentence(v: Verdict) -> str:
    return (f"the Triton kernel {v.kernel} failed its self-check on {v.device} ({v.detail}); "
            f"it runs on its PyTorch reference path instead (slower, same results).")


def check(kernel: str, device: torch.device) -> Verdict:
    """Run ``kernel`` against its reference on small shapes; never raises."""
    t0 = time.perf_counter()
    name = device_key(device).split(" | ")[0]
    try:
        detail = KERNELS[kernel](device)
        ok = detail is None
        detail = detail or "agrees with the reference"
    except Exception as e:  # noqa: BLE001 - a compile or launch error is the verdict
        ok, detail = False, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'no message'}"
    if device.type == "cuda":
        try:
            torch.cuda.synchronize(device)
        except Exception as e:  # noqa: BLE001 - an asynchronous launch error shows here
            ok, detail = False, f"{type(e).__name__} after launch"
    return Verdict(kernel, name, ok, detail, round(time.perf_counter() - t0, 4))


def forget() -> None:
    """Drop the verdicts and device keys held in memory (the cache file stays)."""
    with _lock:
        _verdicts.clear()
        _keys.clear()


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a broken one: check again


def _write_cache(key: str, v: Verdict) -> None:
    data = _read_cache()
    entry = {k: val for k, val in asdict(v).items() if k != "cached"}
    data.setdefault(key, {})[v.kernel] = entry
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only state dir: the verdict holds for this process only


# ---------------------------------------------------------------- the checks: None when the kernel agrees


def _check_nf4(device: torch.device) -> str | None:
    from dgterm.engine.local.kernels import nf4_triton
    from dgterm.engine.local.kernels.nf4 import grouped_matmul_nf4_torch, quantize_nf4

    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 32, 128, generator=g)
    packed, absmax = quantize_nf4(w)
    x = torch.randn(10, 128, generator=g)
    offsets = torch.tensor([0, 4, 4, 10])
    want = grouped_matmul_nf4_torch(x, offsets, packed, absmax, 128)
    got = nf4_triton.grouped_matmul_nf4_triton(x.to(device), offsets.to(device), packed.to(device),
                                               absmax.to(device), 128).float().cpu()
    err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-6))
    return None if err < 2e-2 else f"mismatch: relative error {err:.2g}"


def _check_sampler(device: torch.device) -> str | None:
    from dgterm.engine.local.kernels import sampling_triton
    from dgterm.engine.local.kernels.gumbel import gumbel_sample_torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 300, generator=g) * 3
    seeds = torch.arange(4, dtype=torch.long) * 7919 + 1
    work = torch.tensor([True, True, False, True])
    fill = torch.full((4,), 5)
    want = gumbel_sample_torch(logits, 0.7, seeds, work, fill, torch.empty_like(logits))
    dev = [t.to(device) for t in (logits, seeds, work, fill)]
    got = sampling_triton.gumbel_sample_triton(dev[0], 0.7, dev[1], dev[2], dev[3], torch.empty_like(dev[0]))
    got = [t.cpu() for t in got]
    if not (torch.equal(got[0], want[0]) and torch.equal(got[2], want[2])):
        return "mismatch: argmax or sample differ"
    err = float((got[1].float() - want[1]).abs().max())
    return None if err < 1e-3 else f"mismatch: entropy off by {err:.2g}"


KERNELS: dict[str, Callable[[torch.device], str | None]] = {"nf4_grouped_matmul": _check_nf4,
                                                              "fused_sampler": _check_sampler}


def selftest(devices: list[torch.device]) -> list[dict]:
    """Every kernel on every device (fresh checks, cache updated): doctor --selftest's table."""
    rows = []
    for device in devices:
        for kernel in KERNELS:
            if not triton_runs_on(device):
                rows.append({"kernel": kernel, "device": str(device), "ok": None, "path": "reference",
                             "detail": "Triton does not run here: the PyTorch path", "seconds": 0.0})
                continue
            v = check(kernel, device)
            _write_cache(device_key(device), v)
            with _lock:
                _verdicts[(kernel, device_key(device))] = v
            rows.append({"kernel": kernel, "device": str(device), "ok": v.ok, "path": "triton" if v.ok else "reference",
                         "detail": v.detail, "seconds": v.seconds})
    return rows
