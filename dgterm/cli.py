"""The ``dgterm`` entry point: subcommands, shared flags, and one clear sentence per user error."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dgterm import __version__
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
        from dgterm.engine import oom  # imported here: not on every start-up

        if not oom.is_oom(e):
            raise
        oom.release()
        print(f"dgterm: {oom.explain_oom(e, getattr(args, 'quant', None), getattr(args, 'candidates', None) or 1)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgterm: cancelled.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
