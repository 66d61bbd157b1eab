"""What the script-facing commands share: driving a task with an optional trace, and output."""

from __future__ import annotations

import json
import sys


def check_trace_path(args, inputs=()) -> None:
    """Refuse a trace that cannot be written, or that is one of the command's inputs (the
    file, standard input, the model's files), before the model loads, not after the run."""
    import os
    from pathlib import Path

    from dgterm.errors import InputError
    from dgterm.paths import refuse_input

    path = args.trace
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
    refuse_input(path, "--trace", [*inputs, *model_files(args)])


def model_files(args) -> list:
    """The folder of the model the flags name, when it is on this machine (else nothing)."""
    from dgterm.cli import settings_from
    from dgterm.engine import loading
    from dgterm.errors import DgtermError

    try:
        return [loading.resolve(settings_from(args).model)]
    except DgtermError:
        return []


def text_argument(text: str, what: str) -> str:
    """``text`` from the command line or standard input, checked to be UTF-8 (bytes that are
    not arrive as lone surrogates, which the tokenizer cannot take)."""
    from dgterm.errors import InputError

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"The {what} holds bytes that are not UTF-8; convert it to UTF-8 first.") from None
    return text


def drive(task, lm, args, header: dict):
    """Run ``task`` to the end, writing every step to ``args.trace`` if asked."""
    if not args.trace:
        return task.collect()
    from dgterm.engine.trace import TraceWriter

    header = {"model": lm.name, "canvas_length": lm.canvas_length, "params": vars_of(task.params), **header}
    with TraceWriter(args.trace, header) as trace:
        for event in task:
            trace.step(event, lm.tokenizer)
        trace.result(result_record(task.result))
    return task.result


def vars_of(params) -> dict:
    import dataclasses

    return dataclasses.asdict(params)


def result_record(result, texts: list[str] | None = None, newline: str = "\n") -> dict:
    """The result as JSON; ``texts`` (one per candidate) and ``newline`` give the text as the
    file holds it (infill keeps the file's line endings)."""
    run = result.run
    texts = texts or [c.text for c in result.candidates]
    return {
        "candidates": [
            {"text": text, "spans": [s.replace("\n", newline) for s in c.spans], "score": round(c.score, 6),
             "lengths": c.lengths, "seed": c.seed, "thinking": c.thinking}
            for c, text in zip(result.candidates, texts)
        ],
        "stats": {
            "steps_per_canvas": run.steps,
            "tokens_per_forward": [round(x, 3) for x in run.tokens_per_forward],
            "tokens_per_second": round(run.tokens_per_second, 2),
            "elapsed": round(run.elapsed, 4),
            "cancelled": run.cancelled,
        },
    }


def emit(result, args, plain: str, texts: list[str] | None = None, newline: str = "\n") -> None:
    if args.json:
        json.dump(result_record(result, texts, newline), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plain)
        if not plain.endswith("\n"):
            sys.stdout.write("\n")
