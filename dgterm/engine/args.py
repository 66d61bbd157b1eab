"""One way in for every front end: settings -> a loaded engine and layered sampler parameters.

The CLI commands, the editor (TUI), the REPL and the server all start here, in the spirit
of vLLM's ``EngineArgs``::

    EngineArgs.add_cli_args(parser)              # the model and sampler flags of a command
    engine = EngineArgs.from_cli_args(args)      # defaults < config file < DGTERM_* env < flags
    engine = EngineArgs.from_settings(settings)  # the same without argparse (tests, the server)
    engine.check()                               # bad sampler settings: one sentence, before loading
    lm = engine.load()                           # the engine that runs the tasks
    params = engine.sampler_params(lm)           # the model's defaults < [sampler] < flags

:meth:`EngineArgs.load` is the one place that decides which engine runs
(:meth:`EngineArgs.load`): the model loaded in this process, or a remote
one (``dgterm serve``, vLLM) when ``server`` is set.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dgterm.config import DEFAULT_CANDIDATES, Settings, load_settings
from dgterm.engine.local.checkpoint import DTYPES, QUANTS
from dgterm.engine.params import COMPILED_TOP_K, SAMPLER_FIELDS, SamplerParams
from dgterm.errors import InputError, SettingError

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine

# the sampler flags: a flag --entropy-bound sets SamplerParams.entropy_bound
SAMPLER_FLAGS = (*SAMPLER_FIELDS, "seed", "max_new_tokens", "canvases", "sc_top_k")


def _layers(text: str) -> str:
    """``--offload-experts``: 'auto' or a whole number of layers."""
    text = text.strip().lower()
    if text != "auto" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not 'auto' or a whole number of layers; write e.g. 4 or auto")
    return text


@dataclass
class EngineArgs:
    """Which engine to run and how to sample, from every layer of settings."""

    settings: Settings = field(default_factory=Settings)  # model, device, dtype, quant, ... (all layers)
    sampler: dict = field(default_factory=dict)  # sampler values from flags: the last layer over [sampler]
    candidates: int = DEFAULT_CANDIDATES  # candidates denoised together
    download: bool = False  # a Hugging Face id may be downloaded

    # ---------------------------------------------------------------- construction

    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser, *, sampler: bool = True, candidates: int = DEFAULT_CANDIDATES,
                     remote: bool = True) -> None:
        """The model flags (with ``remote``, --server; with ``sampler``, the sampler flags) of a subcommand."""
        g = parser.add_argument_group("model")
        g.add_argument("--model", type=_model_spec,
                       help="'bundled' (default), a checkpoint directory, or a Hugging Face id")
        g.add_argument("--device", help="auto, cpu, cuda or cuda:N")
        g.add_argument("--dtype", choices=DTYPES)
        g.add_argument("--quant", choices=QUANTS)
        g.add_argument("--download", action="store_true", help="allow downloading a Hugging Face id")
        g.add_argument("--allow-offload", action="store_true", default=None,
                       help="let a quantized model keep experts in host memory when the GPU is too small")
        g.add_argument("--offload-experts", metavar="N|auto", type=_layers,
                       help="keep the experts of N layers in host RAM (auto: the fewest that fit the GPU)")
        g.add_argument("--kernels", choices=("auto", "triton", "reference"),
                       help="auto (default): Triton kernels that passed their self-check; reference: PyTorch only")
        g.add_argument("--thinking", choices=("on", "off"),
                       help="let the model think before answering (default: off for rewrites and infill)")
        g.add_argument("--compile", action="store_true", default=None,
                       help="compile the decoder step (torch.compile; a warm-up per shape, said in the status)")
        if remote:
            g.add_argument("--server", metavar="URL",
                           help="run on `dgterm serve` or vLLM at URL (key: DGTERM_API_KEY); docs/serve.md")
        if not sampler:
            return
        g = parser.add_argument_group("sampler (defaults: the checkpoint's generation_config.json)")
        g.add_argument("--steps", type=int, help="denoising steps per canvas")
        g.add_argument("--entropy-bound", type=float)
        g.add_argument("--t-max", type=float)
        g.add_argument("--t-min", type=float)
        g.add_argument("--stability", type=int)
        g.add_argument("--confidence", type=float)
        g.add_argument("--seed", type=int)
        g.add_argument("--max-new-tokens", type=int)
        g.add_argument("--canvases", type=int, help="at most this many canvases")
        g.add_argument("--sampler", choices=("fused", "reference"),
                       help="fused (default): one pass per row; reference: token for token what transformers draws")
        g.add_argument("--sc-top-k", type=int, metavar="K",
                       help="self-condition on the top K of the last step's distribution only (approximate; "
                            "default 0: all, exact)")
        g.add_argument("--candidates", type=int, default=candidates,
                       help="candidates denoised together (default %(default)s, as in the editor)")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace, settings: Settings | None = None) -> EngineArgs:
        """The flags of ``args`` over ``settings`` (default: the config file and the environment)."""
        settings = (settings or load_settings()).override(
            model=args.model, device=args.device, dtype=args.dtype, quant=args.quant,
            allow_offload=args.allow_offload, compile=getattr(args, "compile", None),
            theme=getattr(args, "theme", None), server=getattr(args, "server", None),
            offload_experts=getattr(args, "offload_experts", None), kernels=getattr(args, "kernels", None),
            thinking=getattr(args, "thinking", None))
        sampler = {name: getattr(args, name, None) for name in SAMPLER_FLAGS}
        sampler["mode"] = getattr(args, "sampler", None)  # --sampler: SamplerParams.mode (--mode is the REPL's)
        return cls.from_settings(settings, sampler=sampler, candidates=getattr(args, "candidates", 1),
                                 download=args.download)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, sampler: dict | None = None,
                      candidates: int = DEFAULT_CANDIDATES,
                      download: bool = False) -> EngineArgs:
        """``sampler``: values over the config's [sampler] table (None values are not set)."""
        return cls(settings or Settings(), {k: v for k, v in (sampler or {}).items() if v is not None},
                   candidates, download)

    def replace(self, **changes) -> EngineArgs:
        """A copy with ``changes`` to the settings (e.g. another model: ``replace(model=...)``)."""
        return dataclasses.replace(self, settings=self.settings.override(**changes))

    # ---------------------------------------------------------------- use

    def load(self) -> Engine:
        """The engine these settings name, ready (a :class:`dgterm.engine.backend.Engine`): the
        remote one when ``server`` is set, else the model loaded here. A failure is one sentence."""
        s = self.settings
        if s.server:  # --server, DGTERM_SERVER or server = in the config; the key from DGTERM_API_KEY or api_key =
            from dgterm.engine.remote.client import RemoteEngine

            return RemoteEngine(s.server, s.api_key or None)
        from dgterm.engine.local import loading

        return loading.load(s.model, device=s.device, dtype=s.dtype, quant=s.quant, download=self.download,
                            allow_offload=s.allow_offload, offload_experts=s.offload_experts, kernels=s.kernels,
                            compile=s.compile)

    def sampler_params(self, lm=None):
        """The model's defaults < the config file's [sampler] < flags. Without a model, checks
        the settings against the engine's defaults (a bad flag is one sentence before loading)."""
        try:
            params = (lm.defaults if lm is not None else SamplerParams()).replace(**self.settings.sampler)
            params = params.replace(**self.sampler)
        except SettingError as e:  # said again with where to fix it
            where = "the flag or the [sampler] table" if self.sampler else "the [sampler] table"
            raise InputError(f"Bad sampler setting: {e}; fix {where} of the config file.") from None
        if self.candidates < 1:
            raise InputError("--candidates must be at least 1.")
        if params.sc_top_k and self.settings.compile:
            raise InputError(COMPILED_TOP_K)
        return params

    def local_files(self) -> list:
        """The folder of the model these settings name, when it is on this machine (else
        nothing): what a command's outputs must never overwrite."""
        from dgterm.engine.local.checkpoint import resolve
        from dgterm.errors import DgtermError

        if self.settings.server:
            return []
        try:
            return [resolve(self.settings.model)]
        except DgtermError:
            return []

    def check(self) -> None:
        """Refuse bad sampler settings now, before a model loads."""
        self.sampler_params()


def _model_spec(text: str) -> str:
    """An argparse type: ``--model ""`` is a mistake (an unset variable), not the default model."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the model name is empty; give 'bundled', a checkpoint folder or a "
                                         "Hugging Face id")
    return text
