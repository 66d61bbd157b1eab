"""Load a model for the engine: a checked checkpoint -> :class:`LoadedModel` (model,
tokenizer, device, dtype, sampler defaults), dense or quantized (:mod:`dgterm.engine.local.quant`).
Finding the checkpoint is :mod:`dgterm.engine.local.checkpoint`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dgterm.engine.local.checkpoint import (
    BUNDLED_NAME,
    NONFINITE,
    QUANTS,
    check_checkpoint,
    check_loading_info,
    load_failure,
    pick_device,
    pick_dtype,
    resolve,
)
from dgterm.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from dgterm.engine.events import Run, RunResult, Window
    from dgterm.engine.params import SamplerParams
    from dgterm.engine.tasks.lens import LensToken


@dataclass
class LoadedModel:
    """The model in this process, as an :class:`dgterm.engine.backend.Engine`."""

    # A transformers DiffusionGemmaForBlockDiffusion (its experts maybe quantized) and its
    # tokenizer: Any, as transformers types their configs too loosely to check against
    # (``text_config`` may be a dict or None, ``canvas_length`` None).
    model: Any
    tokenizer: Any
    path: Path
    spec: str
    device: str
    dtype: torch.dtype
    quant: str
    defaults: SamplerParams  # from generation_config.json
    load_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # what the quantized loader reports
    compile: bool = False  # the decoder step compiled over a static context (dgterm.engine.local.static)

    @property
    def canvas_length(self) -> int:
        return self.model.config.canvas_length

    @property
    def vocab_size(self) -> int:
        return self.model.config.text_config.vocab_size

    @property
    def eos_ids(self) -> list[int]:
        """The ids that end a generation, read as ``model.generate`` reads them: the generation
        config's ``eos_token_id`` only (None there: nothing ends a generation early)."""
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)

    @property
    def pad_id(self) -> int:
        """The id of positions that hold no text: the generation config's pad, else the text config's, else 0."""
        pad = self.output_pad
        return pad if pad is not None else self.model.config.text_config.pad_token_id or 0

    @property
    def output_pad(self) -> int | None:
        """What replaces the tokens after EOS in a result: the generation config's
        ``pad_token_id`` (None: they stay, as in ``model.generate``)."""
        return getattr(self.model.generation_config, "pad_token_id", None)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def name(self) -> str:
        return BUNDLED_NAME if self.spec in ("", "bundled") else self.spec

    # What the front ends need from any engine (dgterm.engine.backend.Engine): this one runs here.
    live_steps = True  # a frame per denoising step
    can_restrict = True  # a position's ids can be restricted (token healing)

    @property
    def max_positions(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    def describe(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return f"{self.name} · {self.device} · {dtype} · quant {self.quant}" + (" · compiled" if self.compile else "")

    def denoise(self, windows: Iterable[Window], params: SamplerParams, *, candidates: int = 1,
                cancel: threading.Event | None = None, stop_at_eos: bool = True) -> Run:
        """Run ``windows`` in this process (see :func:`dgterm.engine.local.denoise.denoise`)."""
        from dgterm.engine.local.denoise import denoise

        return denoise(self, windows, params, candidates=candidates, cancel=cancel, stop_at_eos=stop_at_eos)

    def confidence(self, text: str, start: int = 0, end: int | None = None, *, stride: int = 8, batch: int = 8,
                   max_context: int = 512, seed: int = 0,
                   cancel: threading.Event | None = None) -> list[LensToken]:
        """The confidence lens in this process (see :func:`dgterm.engine.local.lens.confidence`)."""
        from dgterm.engine.local.lens import confidence

        return confidence(self, text, start, end, stride=stride, batch=batch, max_context=max_context, seed=seed,
                          cancel=cancel)

    def score_run(self, windows: list[Window], run: RunResult, *, skip_pad: bool, seed: int) -> list[float]:
        from dgterm.engine.local.scoring import score_run

        return score_run(self, windows, run, skip_pad=skip_pad, seed=seed)

    def check_run_fits(self, rows: int, tokens: int, sampler: str) -> None:
        from dgterm.engine.local.quant import planner

        planner.check_run_fits(self, rows, tokens, sampler)

    def summary(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        quant = "" if self.quant == "none" else f", {self.quant}"
        return f"{self.name}: {self.parameters() / 1e6:.1f} M parameters on {self.device} ({dtype}{quant})"

    def close(self) -> None:
        """Nothing to hand back: the weights go with the last reference to this engine."""

    def parameters(self) -> int:
        """Weights of the model; a quantized tensor counts by its logical shape, not its packed bytes."""
        import math

        quantized = sum(math.prod(m.shape) for m in self.model.modules() if hasattr(m, "qweight"))
        return sum(p.numel() for p in self.model.parameters()) + quantized


def load(spec: str = "bundled", device: str = "auto", dtype: str = "auto", quant: str = "none",
         download: bool = False, allow_offload: bool = False, offload_experts: str = "0",
         kernels: str | None = None, compile: bool = False) -> LoadedModel:
    """Load a DiffusionGemma checkpoint for inference. ``allow_offload`` lets a quantized
    model keep expert weights in host memory when the GPU is too small (never by default);
    ``offload_experts`` ('auto' or N) keeps the experts of N layers there; ``kernels``
    (auto, triton, reference) sets the process's kernel mode (:mod:`dgterm.engine.local.kernels.selfcheck`;
    None: as it is, ``DGTERM_KERNELS`` or auto)."""
    t0 = time.perf_counter()
    if quant not in QUANTS:
        raise ModelLoadError(f"Unknown quantization '{quant}'; use one of {', '.join(QUANTS)}.")
    from dgterm.engine.local.kernels import selfcheck

    if kernels is not None:
        selfcheck.configure(kernels)
    path = resolve(spec, download)
    check_checkpoint(path)
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    import torch
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion
    from transformers.utils import logging as hf_logging

    from dgterm.engine.local.quant import loader  # int8/nf4 incl. MoE experts, pre-quantized checkpoints
    from dgterm.engine.params import SamplerParams

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"The tokenizer in {path} cannot be loaded ({type(e).__name__}); "
                             "restore the tokenizer files.") from None
    info: dict[str, Any] = {}
    model: Any
    offloading = str(offload_experts) not in ("", "0")
    if offloading and quant == "none" and not loader.is_prequantized(path):
        raise ModelLoadError("--offload-experts keeps quantized experts in host RAM; add --quant nf4 (or int8).")
    if quant != "none" or loader.is_prequantized(path):
        model, device, quant, info = loader.load(path, device, torch_dtype, quant, allow_offload=allow_offload,
                                                 offload_layers=str(offload_experts or "0"))
    else:
        try:
            loaded = DiffusionGemmaForBlockDiffusion.from_pretrained(
                path, dtype=torch_dtype, local_files_only=True, output_loading_info=True)
            # typed as the model alone; with output_loading_info it is (model, info)
            model, loading_info = cast("tuple[Any, dict[str, Any]]", loaded)
        except torch.cuda.OutOfMemoryError:
            raise ModelLoadError(f"{path.name} does not fit in {device} memory; "
                                 "try --quant nf4 or a smaller model.") from None
        except Exception as e:
            raise load_failure(path, e) from None
        check_loading_info(path, loading_info)
        model = model.to(device).eval()
    if compile and quant != "none":
        raise ModelLoadError(f"--compile needs an unquantized model: the {quant} experts are not one graph; "
                             "drop --compile or the quantization.")
    tensors = [*model.parameters(), *model.buffers()]  # quantized weights' scales are buffers
    if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
        raise ModelLoadError(NONFINITE.format(path=path))
    info.setdefault("notes", []).extend(selfcheck.fallbacks(torch.device(device)))
    defaults = SamplerParams.from_generation_config(getattr(model, "generation_config", None))
    return LoadedModel(model=model, tokenizer=tokenizer, path=path, spec=spec, device=device, dtype=torch_dtype,
                       quant=quant, defaults=defaults, load_seconds=time.perf_counter() - t0, info=info,
                       compile=compile)
