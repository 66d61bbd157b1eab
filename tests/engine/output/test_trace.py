"""The one trace writer and reader (dgterm.engine.output.trace), the one Choice builder and
the round-aware Timeline (dgterm.engine.output.frames)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dgterm.engine.output.frames import Choice, Layout, Timeline
from dgterm.engine.output.trace import TraceWriter, read_replay, read_trace
from dgterm.errors import InputError

DEMO_TRACE = Path(__file__).parents[2] / "tui" / "data" / "demo-infill.trace"


def write_lines(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_trace_carries_what_the_editor_replays(tiny, tmp_path):
    from dgterm.engine import tasks
    from dgterm.engine.params import SamplerParams

    text = "def f(x):\n    return x + 1\n"
    task = tasks.infill(tiny, text, [tasks.SpanRequest(14, 26, 4)], SamplerParams(steps=3, seed=None), candidates=2)
    with TraceWriter(tmp_path / "t.jsonl", task, "infill", text, [(14, 26, 4)], file="f.py") as writer:
        for event in task:
            writer.step(event)
        writer.finish()
    trace = read_replay(tmp_path / "t.jsonl")
    h = trace.header
    assert h["task"] == h["kind"] == trace.kind == "infill" and h["file"] == "f.py"
    assert h["text"] == text and h["spans"] == [[14, 26, 4]] and h["instruction"] == ""
    assert trace.layout == task.layout
    assert h["params"]["seed"] == h["seed"] == task.seeds[0]  # a random seed, recorded as drawn
    assert trace.steps and all(s["round"] == 0 for s in trace.steps)
    shown = {str(i) for s in trace.steps for rows in (s["canvas"], s["argmax"]) for row in rows for i in row}
    assert set(trace.result["tokens"]) == set(trace.result["bytes"]) == shown  # replays without the tokenizer
    assert [c["spans"] for c in trace.result["candidates"]] == [c.spans for c in task.result.candidates]


def test_a_continuation_is_recorded_as_an_empty_span_at_the_end(tiny, tmp_path):
    from dgterm.engine import tasks
    from dgterm.engine.params import SamplerParams

    task = tasks.continue_text(tiny, "Once", SamplerParams(steps=2, seed=3, max_new_tokens=8))
    with TraceWriter(tmp_path / "t.jsonl", task, "continue", "Once", task="generate") as writer:
        for event in task:
            writer.step(event)
        writer.finish()
    trace = read_replay(tmp_path / "t.jsonl")
    assert trace.header["task"] == "generate" and trace.kind == "continue"
    assert trace.header["spans"] == [[4, 4, None]] and trace.layout.kind == "stream"


def test_an_editor_trace_from_before_the_one_shape_still_replays():
    trace = read_replay(DEMO_TRACE)
    assert "dgterm" not in trace.header and trace.kind == "infill"
    assert trace.layout.kind == "spans" and trace.header["spans"] == [[342, 367, None], [574, 588, None]]
    assert trace.header["text"].startswith("# A tour of dgterm")


def test_a_trace_without_a_layout_is_refused_in_one_sentence(tmp_path):
    old = write_lines(tmp_path / "old.jsonl", {"type": "header", "task": "generate", "prompt": "hi", "seed": 1},
                      {"type": "result", "candidates": []})
    assert read_trace(old).header["prompt"] == "hi"  # still reads
    with pytest.raises(InputError) as e:
        read_replay(old)
    assert "did not record what a replay needs" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_choices_from_candidates_and_records_place_every_round():
    """A candidate names its batch row and round (its seed is a hash and says neither); a
    trace written before it did (seed base + k * rows + r) still places them."""
    from dgterm.engine.tasks import Candidate

    base, rows = 100, 2
    for seed, row, round_ in [(100, 0, 0), (262007644, 1, 0), (7, 0, 1), (8, 1, 2)]:
        cand = Candidate("t", ["a"], -1.5, [3], seed, None, 0.25, False, "bad", row=row, round=round_)
        live = Choice.of(cand, base, rows)
        record = {"text": "t", "spans": ["a"], "score": -1.5, "entropy": 0.25, "valid": False, "reason": "bad",
                  "lengths": [3], "seed": seed, "row": row, "round": round_, "thinking": None}
        assert live == Choice.from_record(record, base, rows) == Choice(["a"], -1.5, [3], row, None, 0.25, False,
                                                                        "bad", round_)
    old = {"spans": ["a"], "score": -1.5, "lengths": [3], "seed": 105}
    assert (Choice.from_record(old, base, rows).round, Choice.from_record(old, base, rows).row) == (2, 1)


def test_each_round_gets_its_own_timeline():
    layout = Layout("stream", 2)

    def record(window: int, step: int) -> dict:
        return {"window": window, "step": step, "max_steps": 2, "elapsed": 0.0, "canvas": [[1, 2]],
                "argmax": [[1, 2]], "accepted": [[0, 1]], "entropy": [[0.5, 0.0]], "pinned": None, "finished": [0]}

    frames: list = []
    timeline = Timeline(layout, str, frames)
    for round_ in (0, 1):
        for window, step in ((0, 1), (0, 2), (1, 1)):
            timeline.add(record(window, step), round_)
    assert timeline.starts == [0, 3] and len(frames) == 6
    assert [f.window for f in frames] == [0, 0, 1, 0, 0, 1]


@pytest.mark.parametrize("damage", [{"layout": {"kind": "spans"}}, {"text": None}, {"spans": [[5, 1, None]]},
                                    {"spans": 3}])
def test_a_damaged_header_is_refused_in_one_sentence(tmp_path, damage):
    header = {**json.loads(DEMO_TRACE.read_text(encoding="utf-8").splitlines()[0]), **damage}
    with pytest.raises(InputError) as e:
        read_replay(write_lines(tmp_path / "bad.jsonl", header))
    assert "is a damaged trace" in str(e.value) and len(str(e.value).splitlines()) == 1
