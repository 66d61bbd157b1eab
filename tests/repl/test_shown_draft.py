"""The REPL shows, prints and summarises one draft, the one it ranks first, and /stats agrees."""

from __future__ import annotations

import re

from dgterm.repl.render import printable


def test_the_draft_ranked_first_is_drawn_printed_and_counted(run_repl, tiny, monkeypatch):
    from dgterm.repl import driver, loop

    monkeypatch.setattr(type(tiny), "score_run", lambda self, windows, run, **kw: [-5.0, -4.0, -1.0])  # row 2 best
    monkeypatch.setattr(loop, "follow", lambda *a, **kw: driver.follow(*a, fps=1e6))
    drawn = []
    draft_text = driver._draft_text
    monkeypatch.setattr(driver, "_draft_text", lambda task, event, row=0: drawn.append(row) or
                        draft_text(task, event, row))
    r = run_repl(["some text", "/stats"], "--mode", "plain", "--seed", "1", "--steps", "2", "--canvases", "1",
                 "--candidates", "3", lm=tiny, terminal=True, width=200, height=40)
    result = r.repl.last.result
    best, run = result.best, result.run
    assert best.row == 2 and drawn[-1] == 2  # the canvas ends on the draft that is printed
    assert printable(best.text).strip()[:20] in r.out
    summary = re.search(r"(\d+) tokens · ([\d.]+) tok/s · [\d.]+ s · seed (\d+)", r.err)
    assert summary and int(summary[1]) == int(run.generated[2]) and int(summary[3]) == best.seed
    stats = {line.split("  ")[0].strip(): line.split()[-1] for line in r.out.splitlines() if "  " in line}
    assert stats["tokens per second"] == summary[2] and stats["tokens"] == summary[1]
    assert stats["seed"] == str(best.seed)
