"""What the subcommands share on the way out: the --trace file (checked before the model
loads, written through :mod:`dgterm.engine.output.trace`) and the printed result."""

from __future__ import annotations

import json
import sys


def note_what_it_lacks(lm) -> None:
    """One line on stderr on what the engine (a vLLM server) does otherwise than in process."""
    lacks = getattr(lm, "lacks", None)
    if lacks:
        print(f"dgterm: note: {lm.describe()}; {lacks} (docs/serve.md).", file=sys.stderr)


def check_trace_path(path: str | None, inputs=(), engine_args=None) -> None:
    """Refuse a trace that cannot be written, or that is one of the command's ``inputs`` (a
    file, or 0 for standard input) or the files of ``engine_args``'s model (an EngineArgs), before
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
    refuse_input(path, "--trace", [*inputs, *(engine_args.local_files() if engine_args else ())])


def drive(task, path: str | None, fields: dict):
    """Run ``task`` to the end, writing every step to the trace ``path`` if one is given;
    ``fields``: the trace header's (:class:`dgterm.engine.output.trace.TraceWriter`'s
    arguments after the task: kind, text, spans, and the command's own)."""
    if not path:
        return task.collect()
    from dgterm.engine.output.trace import TraceWriter

    with TraceWriter(path, task, **fields) as writer:
        for event in task:
            writer.step(event)
        writer.finish()
    return task.result


def emit(result, args, plain: str, texts: list[str] | None = None, newline: str = "\n",
         spans: list[dict] | None = None, each: list[dict] | None = None, fields: dict | None = None) -> None:
    """``plain`` on stdout, or with --json the result record (``texts``: each candidate's text
    as the file holds it, ``newline`` its line ending, ``spans`` the spans as given; ``each``:
    more keys for each candidate, ``fields`` for the record)."""
    if args.json:
        from dgterm.engine.output.trace import result_record

        record = result_record(result, texts, newline, spans) | (fields or {})
        for cand, more in zip(record["candidates"], each or []):
            cand.update(more)
        json.dump(record, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plain)
        if not plain.endswith("\n"):
            sys.stdout.write("\n")
