"""Train the bundled model (see dgterm.engine.train)."""

from __future__ import annotations

import argparse


def add_arguments(p):
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of `python -m dgterm.engine.train`")


def run(args) -> int:
    from dgterm.engine.train import main

    return main(args.args)
