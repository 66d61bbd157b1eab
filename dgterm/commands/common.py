"""What the script-facing commands share: driving a task with an optional trace, and output."""

from __future__ import annotations

import json
import sys


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


def result_record(result) -> dict:
    run = result.run
    return {
        "candidates": [
            {"text": c.text, "spans": c.spans, "score": round(c.score, 6), "lengths": c.lengths, "seed": c.seed,
             "thinking": c.thinking}
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


def emit(result, args, plain: str) -> None:
    if args.json:
        json.dump(result_record(result), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plain)
        if not plain.endswith("\n"):
            sys.stdout.write("\n")
