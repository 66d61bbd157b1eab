"""Every front end's trace replays in the editor (`dgterm open --replay TRACE`): `dgterm
generate --trace`, `dgterm infill --trace` (a multi-round --require-valid run included),
the REPL's /trace and the editor's own --trace all write through one writer."""

from __future__ import annotations

import contextlib
import io
from io import StringIO

from dgterm.cli import main
from dgterm.config import Settings
from dgterm.engine.output.trace import read_replay
from dgterm.tui.app import make_app

from tests.helpers.tui import FAST, SIZE, select, settle


def dgterm(*args) -> tuple[int, str]:
    """The CLI in this process: its exit code and standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        return main([str(a) for a in args]), out.getvalue()


def draft_text(frame, row: int) -> list[str]:
    return ["".join(t.text for t in span) for span in frame.drafts[row]]


async def replayed(trace, path=None) -> tuple:
    """Replay ``trace`` in the editor (on ``path``, or on its own), check the review against
    the trace, accept the best candidate; returns (each candidate's :func:`timelines`, the
    text after accepting)."""
    app = make_app(None if path is None else str(path), load=False, replay=str(trace), replay_delay=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.mode == "review" and app.lm is None
        recorded = read_replay(trace)
        assert app.doc.text == recorded.header["text"]
        assert [c.texts for c in app.review.choices] == [c["spans"] for c in recorded.result["candidates"]]
        assert len(app.review.all_frames) == len(recorded.steps)
        shown = timelines(app.review)
        await pilot.press("enter")  # the best candidate goes into the text
        assert app.mode != "review"
        return shown, app.doc.text


def timelines(review) -> list:
    """Each candidate as the review shows it: its texts, its row, its round and the draft of
    its row at every step of its round's timeline."""
    shown, current = [], review.choice
    for i, choice in enumerate(review.choices):
        review.choice = i
        shown.append((choice.texts, choice.row, choice.round, [draft_text(f, review.row) for f in review.frames]))
    review.choice = current
    return shown


async def test_a_generate_trace_replays(tiny_dir, tmp_path):
    trace = tmp_path / "generate.jsonl"
    code, best = dgterm("generate", "Once upon", "--model", tiny_dir, "--seed", "3", "--steps", "3",
                        "--max-new-tokens", "24", "--candidates", "2", "--trace", trace)
    assert code == 0
    _, text = await replayed(trace)
    assert text + "\n" == "Once upon" + best  # the answer goes where the prompt ends


async def test_an_infill_trace_replays(tiny_dir, tmp_path):
    path = tmp_path / "f.py"
    path.write_text("def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n")
    trace = tmp_path / "infill.jsonl"
    # two spans given out of document order: the trace records them in document order
    code, best = dgterm("infill", path, "--span", "40:49", "--span", "26:31", "--model", tiny_dir, "--seed", "2",
                        "--steps", "3", "--candidates", "2", "--trace", trace)
    assert code == 0 and read_replay(trace).header["spans"] == [[26, 31, None], [40, 49, None]]
    _, text = await replayed(trace, path)
    assert text == best  # each span's text in its own span


async def test_a_multi_round_require_valid_trace_replays_each_candidate_on_its_own_row(tiny, tmp_path):
    """Round k ran with seeds base + k * rows: a later round's candidate replays from its own
    round's steps and its own batch row, as the live run showed it."""
    path = tmp_path / "data.json"
    path.write_text('{"name": "dgterm", "version": 1}\n')
    trace = tmp_path / "rounds.jsonl"
    app = make_app(str(path), lm=tiny, settings=Settings(require_valid=6), sampler=FAST, candidates=2,
                   trace=str(trace))
    async with app.run_test(size=SIZE) as pilot:
        select(app, '"dgterm"')
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        live, rounds = timelines(app.review), app.review.stats["rounds"]
        await pilot.press("escape")
    assert sorted((round_, row) for _, row, round_, _ in live) == [(r, row) for r in range(3) for row in range(2)]
    replay = make_app(str(path), load=False, replay=str(trace), replay_delay=0)
    async with replay.run_test(size=SIZE) as pilot:
        await settle(replay, pilot)
        assert replay.review.stats["rounds"] == rounds
        assert timelines(replay.review) == live


async def test_a_multi_round_infill_trace_replays(tiny_dir, tmp_path):
    path = tmp_path / "data.json"
    path.write_text('{"name": "dgterm", "version": 1}\n')
    trace = tmp_path / "rounds.jsonl"
    code, _ = dgterm("infill", path, "--span", "9:17", "--require-valid", "6", "--model", tiny_dir, "--seed", "5",
                     "--steps", "2", "--candidates", "2", "--trace", trace)
    recorded = read_replay(trace)
    assert code == 1 and {s["round"] for s in recorded.steps} == {0, 1, 2}  # never valid JSON: three rounds
    shown, _ = await replayed(trace, path)
    assert sorted((round_, row) for _, row, round_, _ in shown) == [(r, row) for r in range(3) for row in range(2)]
    assert all(len(steps) == len(recorded.steps) // 3 for *_, steps in shown)


async def test_a_repl_trace_replays(tiny, tmp_path):
    from rich.console import Console

    from dgterm.engine.args import EngineArgs
    from dgterm.repl.loop import Repl

    trace = tmp_path / "repl.jsonl"
    repl = Repl(EngineArgs.from_settings(sampler=dict(steps=3, seed=4, max_new_tokens=24)), mode="plain", lm=tiny,
                console=Console(file=StringIO()), notes=Console(file=StringIO()))
    repl.handle("Once upon")
    repl.handle(f"/trace {trace}")
    assert not repl.failed and read_replay(trace).header["mode"] == "plain"
    await replayed(trace)


async def test_an_editor_trace_replays(demo, tiny, tmp_path):
    trace = tmp_path / "editor.jsonl"
    app = make_app(str(demo), lm=tiny, sampler=FAST, candidates=2, trace=str(trace))
    async with app.run_test(size=SIZE) as pilot:
        select(app, "arithmetic mean")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        live = timelines(app.review)
        await pilot.press("escape")
    shown, _ = await replayed(trace, demo)
    assert shown == live
