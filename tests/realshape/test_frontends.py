"""The editor's live run and the REPL's chat on the real-shaped checkpoint: what is painted
is real text (spaces, whole characters, no markers), whatever noise the model draws."""

from __future__ import annotations

import pytest

from dgterm.tui.app import make_app
from tests.helpers.tui import SIZE, Recorder, select, settle

from tests.helpers.realshape import TEXT, clean


@pytest.mark.anyio
async def test_a_live_infill_paints_real_characters(gemma, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    rec = Recorder()
    app = make_app(str(path), lm=gemma, sampler=dict(steps=3, seed=2), candidates=1)
    async with app.run_test(size=SIZE, message_hook=rec) as pilot:
        select(app, "middle line")
        await pilot.press("ctrl+t", "ctrl+g")
        await settle(app, pilot)
        frames = [msg.frame for msg in rec.seen if type(msg).__name__ == "StepMessage"]
        assert frames and app.mode == "review"
        for frame in frames:
            for tok in frame.drafts[0][0] + frame.canvas[0]:
                assert clean(tok.text) and (tok.state == "noise" or "\ufffd" not in tok.text)
        draft = app.review.current.texts[0]
        assert clean(draft)
        shown = "".join("".join(s.text for s in app.editor.render_line(y)) for y in range(SIZE[1] - 2))
        assert clean(shown) and "東京の朝" in shown
        await pilot.press("escape")
        await settle(app, pilot)
    assert path.read_bytes() == TEXT.encode("utf-8")


def test_a_repl_chat_turn_on_the_chat_template(run_repl, gemma):
    r = run_repl(["Hello there 🙂", "/thinking"], "--steps", "2", "--canvases", "1", "--seed", "4", "--mode", "chat",
                 lm=gemma, terminal=True)
    assert r.rc == 0 and r.repl.mode == "chat"
    answer = r.repl.last.result.best.text
    assert r.repl.messages[0] == {"role": "user", "content": "Hello there 🙂"}
    assert r.repl.messages[1] == {"role": "assistant", "content": answer} and clean(answer)
    assert clean(r.out)
    assert "no thinking channel" in r.err or r.repl.last.result.best.thinking
