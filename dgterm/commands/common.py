"""What the script-facing commands share: driving a task with an optional trace, and output."""

from __future__ import annotations

import json
import sys


def check_trace_path(path: str | None) -> None:
    """Refuse a trace that cannot be written before the model loads, not after the run."""
    from pathlib import Path

    from dgterm.errors import InputError

    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--trace {path} is a folder; give a file name.")
    if not p.parent.is_dir():
        raise InputError(f"--trace {path}: the folder {p.parent} does not exist; create it or choose another path.")


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


def result_record(result, spans: list[dict] | None = None) -> dict:
    """The result as JSON. ``spans`` (infill): each span as given on the command line
    (start, end, length, original text), in that order; each candidate's ``spans`` then
    follow the same order (the engine works in document order)."""
    run = result.run
    record = {
        "candidates": [
            {"text": c.text, "spans": c.spans, "score": round(c.score, 6), "entropy": round(c.entropy, 6),
             "valid": c.valid, "reason": c.reason, "lengths": c.lengths, "seed": c.seed, "thinking": c.thinking}
            for c in result.candidates
        ],
        "stats": {
            "steps_per_canvas": run.steps,
            "tokens_per_forward": [round(x, 3) for x in run.tokens_per_forward],
            "tokens_per_second": round(run.tokens_per_second, 2),
            "elapsed": round(run.elapsed, 4),
            "cancelled": run.cancelled,
        },
    }
    if spans is not None:
        order = sorted(range(len(spans)), key=lambda i: (spans[i]["start"], spans[i]["end"]))
        for cand in record["candidates"]:
            given = [""] * len(spans)
            for k, i in enumerate(order):
                given[i] = cand["spans"][k]
            cand["spans"] = given
        record = {"spans": spans, **record}
    return record


def emit(result, args, plain: str, spans: list[dict] | None = None) -> None:
    if args.json:
        json.dump(result_record(result, spans), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plain)
        if not plain.endswith("\n"):
            sys.stdout.write("\n")
