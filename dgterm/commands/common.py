"""What the subcommands share: argparse types and flags, driving a task with an optional
trace, and output. The model and sampler flags are :class:`dgterm.engine.args.EngineArgs`'s."""

from __future__ import annotations

import argparse
import json
import sys


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


def check_trace_path(path: str | None, inputs=(), engine=None) -> None:
    """Refuse a trace that cannot be written, or that is one of the command's ``inputs`` (a
    file, or 0 for standard input) or the files of ``engine``'s model (an EngineArgs), before
    the model loads, not after the run."""
    import os
    from pathlib import Path

    from dgterm.errors import InputError
    from dgterm.paths import refuse_input

    if not path:
        return
    p = Path(path)
    try:
        os.stat(p.parent)
        p.is_dir()
    except FileNotFoundError:
        pass  # said below
    except OSError as e:
        raise InputError(f"--trace {path} cannot be used ({e.strerror}); choose another path.") from None
    if p.is_dir():
        raise InputError(f"--trace {path} is a folder; give a file name.")
    if not p.parent.is_dir():
        raise InputError(f"--trace {path}: the folder {p.parent} does not exist; create it or choose another path.")
    refuse_input(path, "--trace", [*inputs, *(engine.local_files() if engine else ())])


def text_argument(text: str, what: str) -> str:
    """``text`` from the command line or standard input, checked to be UTF-8 (bytes that are
    not arrive as lone surrogates, which the tokenizer cannot take)."""
    from dgterm.errors import InputError

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"The {what} holds bytes that are not UTF-8; convert it to UTF-8 first.") from None
    return text


def drive(task, path: str | None, extra: dict):
    """Run ``task`` to the end, writing every step to the trace ``path`` if one is given."""
    if not path:
        return task.collect()
    from dgterm.engine.output import trace

    with trace.TraceWriter(path, trace.header(task, **extra)) as writer:
        for event in task:
            writer.step(event, task.lm.tokenizer)
        writer.result(trace.result_record(task.result))
    return task.result


def emit(result, args, plain: str, texts: list[str] | None = None, newline: str = "\n",
         spans: list[dict] | None = None) -> None:
    """``plain`` on stdout, or with --json the result record (``texts``: each candidate's text
    as the file holds it, ``newline`` its line ending, ``spans`` the spans as given)."""
    if args.json:
        from dgterm.engine.output.trace import result_record

        json.dump(result_record(result, texts, newline, spans), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plain)
        if not plain.endswith("\n"):
            sys.stdout.write("\n")
