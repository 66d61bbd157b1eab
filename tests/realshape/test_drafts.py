"""Drafts of a Gemma-style tokenizer read as text: spaces for ``▁``, whole characters from
byte-fallback pieces (nothing while a character is incomplete), no chat markers; and the
engine, sampler, drafts and lens at the real 262,144-token width."""

from __future__ import annotations

import torch

from dgterm.engine import tasks
from dgterm.engine.events import StepEvent
from dgterm.engine.output import tokens
from dgterm.engine.output.frames import FrameBuilder, Layout, step_record

from tests.helpers.realshape import clean

# " wör東 🙂", the ö, 東 and 🙂 spelled in byte-fallback pieces
PIECES = ["▁w", "<0xC3>", "<0xB6>", "r", "<0xE6>", "<0x9D>", "<0xB1>", "▁", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]
SHOWN = [" w", "", "ö", "r", "", "", "東", " ", "", "", "", "🙂"]


def ids_of(tok, pieces):
    ids = tok.convert_tokens_to_ids(pieces)
    assert tok.unk_token_id not in ids
    return ids


def test_a_run_of_tokens_shows_each_character_whole_on_the_token_that_ends_it(gemma):
    tok = gemma.tokenizer
    ids = ids_of(tok, PIECES)
    text = tokens.token_text(tok)
    assert text.row(ids) == SHOWN
    assert text.row(ids[:-1]) == SHOWN[:-1]  # 🙂 incomplete: nothing shown for it yet
    assert text.row(ids[:5]) == SHOWN[:4] + [""]
    assert [text(i) for i in ids_of(tok, ["▁w", "<|turn>", "<turn|>", "<eos>"])] == [" w", "", "", ""]
    assert "".join(SHOWN) == tok.decode(ids)


def event(window, argmax, pinned=None, steps=4, step=4):
    argmax = torch.tensor([argmax])
    return StepEvent(window=window, step=step, max_steps=steps, canvas=argmax.clone(), argmax=argmax,
                     accepted=torch.ones_like(argmax, dtype=torch.bool), entropy=torch.zeros(argmax.shape),
                     pinned=pinned, finished=torch.tensor([step == steps]), elapsed=0.1)


def test_engine_and_editor_drafts_show_whole_characters_across_windows(gemma):
    """A stream over two canvases and a span over two canvases, drafts built from crafted steps
    the way the editor and the REPL build them (Task.drafts and the TUI's frames)."""
    tok = gemma.tokenizer
    C = gemma.canvas_length
    ids = ids_of(tok, PIECES)
    canvas = (ids * 3)[:C]
    expected = "".join(tokens.token_text(tok).row(canvas))
    params = gemma.defaults.replace(steps=4, seed=1, max_new_tokens=2 * C)

    task = tasks.continue_text(gemma, "Hi", params)
    first, second = event(0, canvas), event(1, canvas, step=1)
    task.last = {0: first, 1: second}
    draft = "".join(t.text for t in task.drafts(second)[0])
    assert draft == expected * 2 and clean(draft)
    frames = FrameBuilder(Layout("stream", C), tokens.token_text(tok))
    frames(workers_record(first))
    frame = frames(workers_record(second))
    assert texts_of(frame) == [expected * 2]

    text = "x" * 60 + " gap " + "y" * 60
    span = tasks.SpanRequest(text.index("gap"), text.index("gap") + 3, C)  # a whole canvas: two windows
    task = tasks.infill(gemma, text, [span], params, heal_edges=False)  # the canvas below is laid by hand
    plan = task.plans[0]
    assert len(plan.starts) == 2
    filled = [list(w.known.tolist()) for w in plan.windows()]
    for w in range(2):
        for i in plan.slots[0]:
            ww, p = plan.locate(i)
            if ww == w:
                filled[w][p] = canvas[plan.slots[0].index(i) % C]
    pinned = [w.pinned[None] for w in plan.windows()]
    events = [event(w, filled[w], pinned[w], step=4 if w == 0 else 1) for w in range(2)]
    task.last = {0: events[0], 1: events[1]}
    want = "".join(tokens.token_text(tok).row([canvas[k % C] for k in range(C)]))
    assert "".join(t.text for t in task.drafts(events[1])[0]) == want
    slots = [[[plan.locate(i) for i in s] for s in plan.slots]]
    frames = FrameBuilder(Layout("spans", C, 1, slots), tokens.token_text(tok))
    frames(workers_record(events[0]))
    assert texts_of(frames(workers_record(events[1]))) == [want]


def workers_record(ev):
    return step_record(ev)


def texts_of(frame, row: int = 0) -> list[str]:
    return ["".join(t.text for t in span) for span in frame.drafts[row]]


def test_a_step_at_the_real_vocabulary_width(gemma):
    assert gemma.model.get_output_embeddings().weight.shape[0] == 262144
    params = gemma.defaults.replace(steps=2, seed=0, max_new_tokens=gemma.canvas_length)
    task = tasks.continue_text(gemma, "Hello, world", params, candidates=2)
    events = list(task)
    assert events and all(e.argmax.shape == (2, gemma.canvas_length) for e in events)
    assert int(events[-1].canvas.max()) < 262144 and float(events[-1].entropy.max()) <= torch.log(
        torch.tensor(262144.0)) + 1e-3
    assert all(clean(t.text) for t in task.drafts(events[-1])[0] if t.state != "noise")
    assert len(task.result.candidates) == 2 and all(clean(c.text) for c in task.result.candidates)
    scored = gemma.confidence("Hello, wörld 東京", stride=4, batch=4)
    assert scored and all(0.0 <= t.prob <= 1.0 and 0 <= t.start < t.end for t in scored)
    assert [t.token for t in scored if t.start >= 13] == ["東", "東", "東", "京", "京", "京"]  # byte fallback


def test_split_thinking_reads_gemma4_channels(gemma):
    tok = gemma.tokenizer
    ids = tok("<|channel>thought\nweigh it 🙂<channel|>The answer<turn|>", add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<|channel>") in ids  # a special token, one id
    assert tokens.split_thinking(tok, ids) == ("The answer", "weigh it 🙂")
    plain = tok("Just this.<turn|>", add_special_tokens=False)["input_ids"]
    assert tokens.split_thinking(tok, plain) == ("Just this.", None)
