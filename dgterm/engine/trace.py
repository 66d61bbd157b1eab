"""Trace files: every StepEvent of a run as one JSON line, readable back for replay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


def event_record(event, tokenizer) -> dict:
    from dgterm.engine.tasks import decode

    return {
        "type": "step",
        "window": event.window,
        "step": event.step,
        "max_steps": event.max_steps,
        "elapsed": round(event.elapsed, 6),
        "canvas": event.canvas.tolist(),
        "argmax": event.argmax.tolist(),
        "accepted": event.accepted.int().tolist(),
        "entropy": [[round(float(x), 4) for x in row] for row in event.entropy.float().tolist()],
        "pinned": None if event.pinned is None else event.pinned.int().tolist(),
        "finished": event.finished.int().tolist(),
        "text": [decode(tokenizer, row) for row in event.argmax.tolist()],
    }


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
