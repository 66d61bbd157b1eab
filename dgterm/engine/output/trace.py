"""Trace files: every StepEvent of a run as one JSON line, readable back for replay.

A trace is a header line (:func:`header`), one line per step (:func:`event_record`) and a
result line (:func:`result_record`); every front end writes them through this module.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from dgterm.engine.output.frames import step_record


def header(task, /, **extra) -> dict:
    """The first line: the model, its canvas, the sampler settings with the seed that ran
    (a random seed is recorded as drawn, so the run can be repeated), and ``extra``."""
    lm, seed = task.lm, task.seeds[0]
    return {"model": lm.name, "canvas_length": lm.canvas_length,
            "params": dataclasses.asdict(task.params.replace(seed=seed)), "seed": seed, **extra}


def result_record(result, texts: list[str] | None = None, newline: str = "\n", spans: list[dict] | None = None) -> dict:
    """A finished (or cancelled) run's candidates and statistics, as plain JSON values;
    ``texts`` (one per candidate) and ``newline`` give the text as the file holds it (infill
    keeps the file's line endings). ``spans`` (infill): each span as given on the command line
    (start, end, length, original text), in that order; each candidate's ``spans`` then
    follow the same order (the engine works in document order)."""
    run = result.run
    texts = texts or [c.text for c in result.candidates]
    record = {
        "candidates": [
            {"text": text, "spans": [s.replace("\n", newline) for s in c.spans], "score": round(c.score, 6),
             "entropy": round(c.entropy, 6), "valid": c.valid, "reason": c.reason, "lengths": c.lengths,
             "seed": c.seed, "thinking": c.thinking}
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
    if spans is not None:
        order = sorted(range(len(spans)), key=lambda i: (spans[i]["start"], spans[i]["end"]))
        for cand in record["candidates"]:
            given = [""] * len(spans)
            for k, i in enumerate(order):
                given[i] = cand["spans"][k]
            cand["spans"] = given
        record = {"spans": spans, **record}
    return record


def event_record(event, tokenizer) -> dict:
    """A trace's step line: the step record (dgterm.engine.output.frames.step_record), entropies to
    4 places, and the argmax text of each row."""
    from dgterm.engine.output.tokens import decode

    record = step_record(event)
    record.update(type="step", elapsed=round(event.elapsed, 6),
                  entropy=[[round(x, 4) for x in row] for row in record["entropy"]],
                  text=[decode(tokenizer, row) for row in record["argmax"]])
    return record


class TraceWriter:
    """Context manager: ``header`` first, then ``step`` per event, then ``result``."""

    def __init__(self, path: Path, header: dict):
        from dgterm.errors import InputError

        self.path = Path(path)
        try:
            # backslashreplace: a file name's undecodable bytes (lone surrogates) become
            # JSON escapes, so the line stays valid JSON and UTF-8
            self.file = self.path.open("w", encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            raise InputError(f"Cannot write the trace {path} ({e.strerror}); choose another path.") from None
        self._write({"type": "header", **header})

    def _write(self, record: dict):
        try:
            self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError):
        from dgterm.errors import InputError

        try:
            self.file.close()
        except OSError:
            pass
        raise InputError(f"Cannot write the trace {self.path} ({e.strerror}); free some space or choose "
                         "another path.") from None

    def step(self, event, tokenizer):
        self._write(event_record(event, tokenizer))

    def result(self, record: dict):
        self._write({"type": "result", **record})

    def close(self):
        try:
            self.file.close()
        except OSError as e:
            self._fail(e)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Trace:
    header: dict
    steps: list[dict]
    result: dict | None


def read_trace(path: Path) -> Trace:
    from dgterm.errors import InputError

    header, steps, result = None, [], None
    try:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            record = json.loads(line)
            kind = record.pop("type", None)
            if kind == "header":
                header = record
            elif kind == "step":
                steps.append(record)
            elif kind == "result":
                result = record
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"Trace {path} cannot be read ({e}); pass a file written with --trace.") from None
    if header is None:
        raise InputError(f"{path} is not a dgterm trace (no header line); pass a file written with --trace.")
    return Trace(header, steps, result)
