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
    "refine": ("dgterm.commands.refine", "draw again the tokens of a span the model doubts"),
    "bench": ("dgterm.commands.bench", "speed and quality benchmarks"),
    "doctor": ("dgterm.commands.doctor", "check the setup: versions, devices, model, memory"),
    "quantize": ("dgterm.commands.quantize", "save a pre-quantized checkpoint"),
    "train": ("dgterm.commands.train", "train the bundled model"),
    "serve": ("dgterm.commands.serve", "serve the model over an OpenAI-compatible HTTP API"),
    "lsp": ("dgterm.commands.lsp", "a language server: infill and rewrite inside your editor"),
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


SPINCOUNT = "2000"  # GNU OpenMP's busy-wait iterations before a thread sleeps (its default: 300,000)


def main(argv: list[str] | None = None) -> int:
    # torch's CPU threads spin while they wait for work: with anything else busy on the
    # machine, spinning for long makes a run several times slower, and not spinning at all
    # makes it twice as slow on an idle machine. A short spin is within a third of the best
    # of both (docs/benchmarks.md, "CPU threads on a busy machine"). Set before torch is
    # imported; a wait policy or spin count the user set wins.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "open")  # dgterm FILE
    argv = _join_dash_values(argv)
    if sys.stdout is None:  # started with stdout closed (>&-)
        if sys.stderr is not None:
            print("dgterm: standard output is closed; redirect it to a file or /dev/null.", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    problem = _address_space_problem()
    if problem:
        print(f"dgterm: {problem}", file=sys.stderr)
        return 2
    try:
        code = args.run(args) or 0
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
        return code
    except DgtermError as e:
        print(f"dgterm: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dgterm ... | head -c1`: the reader is gone, as with any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a path or device the checks above did not foresee: still one sentence
        if e.filename is not None:
            print(f"dgterm: cannot use {e.filename} ({e.strerror or e}); check the path and try again.",
                  file=sys.stderr)
        else:
            print(f"dgterm: cannot write the output ({e.strerror or e}); check the disk or where the output goes.",
                  file=sys.stderr)
        _silence_stdout()
        return 2
    except SystemError:  # an extension that failed to allocate while importing (seen under ulimit -v)
        if not _address_space_limited():
            raise
        print("dgterm: out of memory while starting; raise the memory limit (ulimit -v) and try again.",
              file=sys.stderr)
        return 2
    except MemoryError:  # nothing may be left to import the explainer with
        print("dgterm: out of memory; free memory, or raise the memory limit (ulimit -v), and try again.",
              file=sys.stderr)
        return 2
    except RuntimeError as e:  # torch's OutOfMemoryError is a RuntimeError
        from dgterm.engine.local.oom import as_out_of_memory  # imported here: not on every start-up

        memory = as_out_of_memory(e, plan=getattr(args, "quant", None),
                                  candidates=getattr(args, "candidates", None) or 1)
        if memory is None:
            raise
        print(f"dgterm: {memory}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgterm: cancelled.", file=sys.stderr)
        return 130
    except ImportError as e:  # under `ulimit -v` torch's libraries fail to map
        print(f"dgterm: cannot load {e.name or 'a library'} ({str(e)[:160]}); if a memory limit is set "
              "(ulimit -v), raise it, else reinstall dgterm.", file=sys.stderr)
        return 2


MIN_ADDRESS_SPACE = 640 << 20  # below this, importing torch aborts inside OpenBLAS (no Python error)


def _address_space_limit() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if limit == resource.RLIM_INFINITY else limit


def _address_space_limited() -> bool:
    return _address_space_limit() is not None


def _address_space_problem() -> str | None:
    """A sentence if ``ulimit -v`` is too small to start torch at all, else None."""
    limit = _address_space_limit()
    if limit is None or limit >= MIN_ADDRESS_SPACE:
        return None
    return (f"the memory limit (ulimit -v) allows {limit >> 20} MiB, and torch needs at least "
            f"{MIN_ADDRESS_SPACE >> 20} MiB to start; raise the limit.")


VALUE_FLAGS = ("--span",)  # values that may start with "-" (argparse would take -1:3 for a flag)


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--span -1:3`` -> ``--span=-1:3``, so the value reaches the command (which checks it)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in VALUE_FLAGS and arg.startswith("-") and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _silence_stdout() -> None:
    """After stdout failed (a full disk), drop what is still buffered so that exit does not
    print a second error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
