"""Check the setup: versions, devices, the model, its memory at each quantization, and a
plan with its command for each card.

Exits 1 when the chosen model, device, dtype and quantization cannot run (for a memory
profile: when no plan fits the card asked), with one sentence saying what to do.
``--selftest`` runs every compute kernel against its reference on every device here.
"""

from __future__ import annotations

from dgterm.commands.arguments import whole
from dgterm.engine.args import EngineArgs


def add_arguments(p):
    EngineArgs.add_cli_args(p, sampler=False)
    p.add_argument("--context", type=whole(1), metavar="TOKENS",
                   help="tokens of context to plan memory for (default 8192, at most the model's)")
    p.add_argument("--gpu-memory", type=_size, metavar="SIZE",
                   help="also plan for a GPU with SIZE free (e.g. 24GiB), to see if the model would fit on it")
    p.add_argument("--json", action="store_true", help="the same report as JSON, for scripts")
    p.add_argument("--selftest", action="store_true",
                   help="run every kernel against its reference on every device here and print a table")


def _size(text: str) -> int:
    import argparse

    from dgterm.commands.quantize import parse_size

    try:
        n = parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; write e.g. 24GiB or 80GB") from None
    if n < 1 << 20:
        raise argparse.ArgumentTypeError(f"'{text}' is too small for a GPU; write e.g. 24GiB")
    return n


def run(args) -> int:
    import json

    from dgterm.probes import format_text, probe

    if args.selftest:
        from dgterm.commands.doctor_selftest import format_rows, selftest_rows

        rows = selftest_rows()
        print(json.dumps({"selftest": rows}, indent=2) if args.json else format_rows(rows))
        return 1 if any(r["ok"] is False for r in rows) else 0

    report = probe(EngineArgs.from_cli_args(args), context=args.context, gpu_memory=args.gpu_memory)
    print(json.dumps(report, indent=2) if args.json else format_text(report))
    return 0 if report["ok"] else 1
