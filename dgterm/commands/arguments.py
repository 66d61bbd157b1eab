"""What the subcommands share on the command line: argparse types, the --json and --trace
flags, and text arguments. The model and sampler flags are
:class:`dgterm.engine.args.EngineArgs`'s."""

from __future__ import annotations

import argparse


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


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--trace", metavar="FILE", help="write every step as a JSON line")


def text_argument(text: str, what: str) -> str:
    """``text`` from the command line or standard input, checked to be UTF-8 (bytes that are
    not arrive as lone surrogates, which the tokenizer cannot take)."""
    from dgterm.errors import InputError

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"The {what} holds bytes that are not UTF-8; convert it to UTF-8 first.") from None
    return text


def stdin_text(what: str) -> str:
    """Standard input as text, in one sentence when it is closed (``<&-``: Python's sys.stdin is None)."""
    import sys

    from dgterm.errors import InputError

    if sys.stdin is None:
        raise InputError(f"Standard input is closed, so there is no {what} to read; give the {what} as an "
                         "argument or from a file.")
    return sys.stdin.read()
