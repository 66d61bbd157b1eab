"""Trace files: every StepEvent of a run as one JSON line, readable back for replay.

A trace is a header line (:func:`header`), one line per step (:func:`event_record`) and a
result line (:func:`result_record` and the recorded token texts). Every front end (``dgterm
generate`` and ``infill --trace``, the REPL's ``/trace``, the editor's ``--trace``) writes
through :class:`TraceWriter`, so every trace carries what the editor needs to replay it
(``dgterm open --replay``), and :func:`read_trace` is the one reader.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgterm.engine.output.frames import Layout, step_record

KINDS = ("infill", "search", "rewrite", "continue")  # what the editor replays a trace as


def header(task, /, kind: str, text: str, spans: Sequence[Sequence] | None = None, instruction: str = "",
           **extra) -> dict:
    """The first line: the model, its canvas, the sampler settings with the seed that ran
    (a random seed is recorded as drawn, so the run can be repeated), and what a replay
    needs: the ``kind`` of run (one of :data:`KINDS`), the ``text`` it ran on, its
    ``spans`` as (start, end, length) in ``text`` (None: one empty span at its end, where a
    continuation starts), the rewrite ``instruction`` and the layout of the drafts.
    ``extra`` adds the front end's own fields; its ``task`` names the command that ran
    (``generate``, ``infill``, ``repl``; the kind when not given)."""
    lm, seed = task.lm, task.seeds[0]
    spans = [(len(text), len(text), None)] if spans is None else spans
    return {"model": lm.name, "canvas_length": lm.canvas_length,
            "params": dataclasses.asdict(task.params.replace(seed=seed)), "seed": seed, "task": kind, "kind": kind,
            "layout": task.layout.to_json(), "text": text, "spans": [list(s) for s in spans],
            "instruction": instruction, **extra}


def result_record(result, texts: list[str] | None = None, newline: str = "\n", spans: list[dict] | None = None) -> dict:
    """A finished (or cancelled) run's candidates and statistics, as plain JSON values;
    ``texts`` (one per candidate) and ``newline`` give the text as the file holds it (infill
    keeps the file's line endings). ``spans`` (infill): each span as given on the command line
    (start, end, length, original text), in that order; each candidate's ``spans`` then
    follow the same order (the engine works in document order)."""
    run = result.run
    texts = texts or [c.text for c in result.candidates]
    record: dict[str, Any] = {
        "candidates": [
            {"text": text, "spans": [s.replace("\n", newline) for s in c.spans], "score": round(c.score, 6),
             "score_se": round(c.score_se, 6), "entropy": round(c.entropy, 6), "valid": c.valid,
             "reason": c.reason, "lengths": c.lengths, "seed": c.seed, "row": c.row, "round": c.round,
             "thinking": c.thinking}
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


def event_record(event, tokenizer, round_: int = 0) -> dict:
    """A trace's step line: the step record (dgterm.engine.output.frames.step_record), the
    ``round_`` of drawing it belongs to (until_valid), entropies to 4 places, and the argmax
    text of each row."""
    from dgterm.engine.output.tokens import decode

    record = step_record(event)
    record.update(type="step", round=round_, elapsed=round(event.elapsed, 6),
                  entropy=[[round(x, 4) for x in row] for row in record["entropy"]],
                  text=[decode(tokenizer, row) for row in record["argmax"]])
    return record


class TraceWriter:
    """Context manager writing the trace of ``task`` (a Task or an UntilValid): the header
    (:func:`header`'s arguments after the task) at once, then :meth:`step` per event,
    then :meth:`finish` for the result and the text of every token the steps showed (so
    the replay reads them without the tokenizer)."""

    def __init__(self, path: str | Path, task, /, kind: str, text: str, spans: Sequence[Sequence] | None = None,
                 instruction: str = "", **extra):
        from dgterm.errors import InputError

        self.path, self.task = Path(path), task
        self.seen: set[int] = set()
        try:
            # backslashreplace: a file name's undecodable bytes (lone surrogates) become
            # JSON escapes, so the line stays valid JSON and UTF-8
            self.file = self.path.open("w", encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            raise InputError(f"Cannot write the trace {path} ({e.strerror}); choose another path.") from None
        self._write({"type": "header", **header(task, kind, text, spans, instruction, **extra)})

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

    def step(self, event):
        """One step line, of the round of drawing (until_valid) the task is in."""
        record = event_record(event, self.task.lm.tokenizer, self.task.round)
        for ids in (*record["canvas"], *record["argmax"]):
            self.seen.update(ids)
        self._write(record)

    def finish(self):
        """The result line: the task's result and the recorded token texts."""
        from dgterm.engine.output.tokens import token_text

        recorded = token_text(self.task.lm.tokenizer).recorded(self.seen)
        self._write({"type": "result", **result_record(self.task.result), **recorded})

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
    """A trace read back. ``header`` holds the fields of :func:`header` (an editor trace
    written before the one shape kept them under ``dgterm``: they are lifted up)."""

    header: dict
    steps: list[dict]
    result: dict | None

    @property
    def layout(self) -> Layout:
        return Layout.from_json(self.header["layout"])

    @property
    def kind(self) -> str:
        """What the editor replays the run as (a trace that names none: infill)."""
        kind = self.header.get("kind", self.header.get("task"))
        return kind if kind in KINDS else "infill"


def read_trace(path: str | Path) -> Trace:
    from dgterm.errors import InputError

    header, steps, result = None, [], None
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            kind = record.pop("type", None)
            if kind == "header":
                header = {**record.pop("dgterm", {}), **record}
            elif kind == "step":
                steps.append(record)
            elif kind == "result":
                result = record
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"Trace {path} cannot be read ({e}); pass a file written with --trace.") from None
    if header is None:
        raise InputError(f"{path} is not a dgterm trace (no header line); pass a file written with --trace.")
    return Trace(header, steps, result)


def read_replay(path: str | Path) -> Trace:
    """A trace the editor can replay: one that records the layout of its drafts, the text
    and the spans (every front end's since the one writer; older ones are refused)."""
    from dgterm.errors import InputError

    trace = read_trace(path)
    h = trace.header
    if not isinstance(h.get("layout"), dict):
        raise InputError(f"{path} was written by an older dgterm that did not record what a replay needs; "
                         "record the run again with --trace.")
    try:
        Layout.from_json(h["layout"])  # a damaged one is the sentence below, not a crash in the replay
        if not isinstance(h["text"], str) or not all(len(s) == 3 and s[0] <= s[1] for s in h["spans"]):
            raise ValueError("bad text or spans")
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path} is a damaged trace ({e!r} in its header); record the run again with "
                         "--trace.") from None
    return trace
