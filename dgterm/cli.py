"""The ``dgterm`` entry point: subcommands, shared flags, and one clear sentence per user error."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dgterm import __version__
from dgterm.config import DEFAULT_CANDIDATES
from dgterm.errors import DgtermError

# name -> module exposing add_arguments(parser) and run(args) -> int
COMMANDS = {
    "open": ("dgterm.commands.open", "edit a file in the TUI (also: dgterm FILE)"),
    "repl": ("dgterm.commands.repl", "interactive prompt with a live canvas"),
    "generate": ("dgterm.commands.generate", "continue a prompt"),
    "infill": ("dgterm.commands.infill", "rewrite spans of a file from both sides"),
    "bench": ("dgterm.commands.bench", "speed and quality benchmarks"),
    "doctor": ("dgterm.commands.doctor", "check the setup: versions, devices, model, memory"),
    "quantize": ("dgterm.commands.quantize", "save a pre-quantized checkpoint"),
    "train": ("dgterm.commands.train", "train the bundled model"),
    "serve": ("dgterm.commands.serve", "serve the model over an OpenAI-compatible HTTP API"),
}


def add_model_args(p: argparse.ArgumentParser, remote: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="'bundled' (default), a checkpoint directory, or a Hugging Face id")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--dtype", choices=("auto", "bf16", "fp16", "fp32"))
    g.add_argument("--quant", choices=("none", "int8", "nf4"))
    g.add_argument("--download", action="store_true", help="allow downloading a Hugging Face id")
    g.add_argument("--allow-offload", action="store_true", default=None,
                   help="let a quantized model keep experts in host memory when the GPU is too small")
    if remote:
        g.add_argument("--server", metavar="URL",
                       help="run on `dgterm serve` or vLLM at URL (key: DGTERM_API_KEY); docs/serve.md")


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampler (defaults: the checkpoint's generation_config.json)")
    g.add_argument("--steps", type=int, help="denoising steps per canvas")
    g.add_argument("--entropy-bound", type=float)
    g.add_argument("--t-max", type=float)
    g.add_argument("--t-min", type=float)
    g.add_argument("--stability", type=int)
    g.add_argument("--confidence", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--max-new-tokens", type=int)
    g.add_argument("--canvases", type=int, help="at most this many canvases")
    g.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES,
                   help="candidates denoised together (default %(default)s, as in the editor)")


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--trace", metavar="FILE", help="write every step as a JSON line")


def settings_from(args):
    from dgterm.config import load_settings

    return load_settings().override(model=args.model, device=args.device, dtype=args.dtype, quant=args.quant,
                                    allow_offload=args.allow_offload, server=getattr(args, "server", None))


def whole(low: int = 1):
    """An argparse type: a whole number of at least ``low`` (bad input is argparse's one line)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"{n} is too small: give {low} or more")
        return n
    return parse


def whole_list(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers of at least 1, like 16,48."""
    return [whole(1)(part) for part in text.split(",")]


def load_model(args):
    from dgterm.engine.backend import open_engine

    return open_engine(settings_from(args), download=args.download)


def sampler_params(args, lm=None):
    """The model's defaults < the config file's [sampler] < flags. With no model, checks
    the flags and the config against the engine's defaults (before a model loads)."""
    from dgterm.config import load_settings
    from dgterm.engine.params import SamplerParams

    try:
        params = (lm.defaults if lm is not None else SamplerParams()).replace(**load_settings().sampler)
        params = params.replace(
            steps=args.steps, entropy_bound=args.entropy_bound, t_max=args.t_max, t_min=args.t_min,
            stability=args.stability, confidence=args.confidence, seed=args.seed,
            max_new_tokens=args.max_new_tokens, canvases=args.canvases,
        )
    except (TypeError, ValueError) as e:
        raise DgtermError(f"Bad sampler setting: {e}; fix the flag or the [sampler] table of the config file.") from None
    if args.candidates < 1:
        raise DgtermError("--candidates must be at least 1.")
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgterm", description="A terminal editor and REPL for text-diffusion models.")
    parser.add_argument("--version", action="version", version=f"dgterm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip().split("\n\n")[0])
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # torch's CPU threads spin while they wait for work; with anything else busy on the
    # machine that spinning halves the speed or worse. Waiting passively costs ~4% idle
    # (docs/benchmarks.md). Set before torch is imported; the user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "open")  # dgterm FILE
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return args.run(args) or 0
    except DgtermError as e:
        print(f"dgterm: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as e:  # torch's OutOfMemoryError is a RuntimeError
        from dgterm.engine.quant import explain_oom, is_oom  # imported here: not on every start-up

        if not is_oom(e):
            raise
        print(f"dgterm: {explain_oom(e, getattr(args, 'quant', None), getattr(args, 'candidates', None) or 1)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgterm: cancelled.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
