"""The doubt view on a draft, on the real bundled model: in review, ctrl+l scores the shown
candidate as the document would read with it, tints its tokens in place of the hunks,
the threshold keys mark the doubted ones, another candidate is scored anew, and ctrl+l
or escape brings the hunks back; the document never changes meanwhile."""

from __future__ import annotations

import pytest

from dgterm.tui.app import make_app

from tests.helpers.tui import SIZE, select, settle

pytestmark = pytest.mark.slow


def shown(app) -> tuple[str, list[str]]:
    """The span's text in the view and the states of its tokens."""
    toks = app.editor._preview[app.review.job.span_ids[0]]
    return "".join(t.text for t in toks), [t.state for t in toks]


def expected_states(app) -> list[str]:
    """What the lens's scores of the shown draft and the threshold make of each token."""
    from dgterm.tui.themes import lens_level

    return ["doubted" if t.prob < app.doubt_below else f"lens{lens_level(t.prob, t.top_prob)}"
            for t in app.draft_scores[1]]


async def infill_mean(app, pilot) -> tuple[int, int]:
    """Mask the body of the demo's ``mean`` and run an infill to its review; the span's offsets."""
    a, b = select(app, "sum(values) / len(values)")
    await pilot.press("ctrl+t", "ctrl+g")
    await settle(app, pilot)
    return a, b


async def test_the_lens_on_a_draft(demo, bundled):
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=4, seed=3), candidates=2)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        a, b = await infill_mean(app, pilot)
        assert app.mode == "review" and len(app.review.choices) == 2
        first, second = (c.texts[0] for c in app.review.choices)
        assert first != second
        await pilot.press("ctrl+l")
        await settle(app, pilot)
        assert app.lifecycle.lens_shown and app.mode == "review"
        draft = before[:a] + first + before[b:]
        assert app.draft_scores[0] == draft and app.editor.text == draft  # the candidate, not its hunks
        text, states = shown(app)
        assert text == first and set(states) <= {"doubted"} | {f"lens{i}" for i in range(11)}
        assert all(a <= t.start < t.end <= a + len(first) for t in app.draft_scores[1])  # the span's tokens only
        assert states.count("doubted") == expected_states(app).count("doubted") > 0  # it doubts its own draft here
        await pilot.press("alt+down", "alt+down", "alt+down")  # 0.1 -> 0.01
        assert app.doubt_below == 0.01
        assert shown(app)[1].count("doubted") == expected_states(app).count("doubted") < states.count("doubted")
        assert "Doubted (kept with p < 0.01)" in str(app.canvas.query_one("#canvas-stats").render())
        await pilot.press("tab")  # the other candidate: scored anew
        await settle(app, pilot)
        assert app.review.choice == 1 and app.lifecycle.lens_shown
        assert app.draft_scores[0] == before[:a] + second + before[b:] and shown(app)[0] == second
        await pilot.press("ctrl+l")  # the hunks again
        assert not app.lifecycle.lens_shown and {"kept", "deleted", "inserted"} & {
            s.split("-")[0] for s in shown(app)[1]}
        await pilot.press("ctrl+l")
        await settle(app, pilot)
        await pilot.press("escape")  # clears the lens first; the review goes on
        assert app.mode == "review" and not app.lifecycle.lens_shown
        await pilot.press("escape")
        assert app.mode == "edit" and app.doc.text == before


async def test_alt_r_on_a_draft_takes_it_and_redraws_its_doubted_tokens(demo, bundled):
    """A refine is of the document: alt+r on a candidate takes it (one undo step, its span left
    marked) and refines that span live; accepting the refine is a second undo step."""
    app = make_app(str(demo), lm=bundled, sampler=dict(steps=4, seed=3), candidates=2)
    async with app.run_test(size=SIZE) as pilot:
        before = app.doc.text
        a, b = await infill_mean(app, pilot)
        first = app.review.current.texts[0]
        taken = before[:a] + first + before[b:]
        await pilot.press("alt+r")
        assert app.doc.text == taken and [(s.start, s.end) for s in app.doc.spans] == [(a, a + len(first))]
        await settle(app, pilot)
        assert app.mode == "review" and app.job.kind == "refine" and app.job.span_ids == [app.doc.spans[0].id]
        await pilot.press("enter")
        assert app.doc.text == before[:a] + app.doc.text[a:len(app.doc.text) - len(before) + b] + before[b:]
        await pilot.press("ctrl+z")
        assert app.doc.text == taken
        await pilot.press("ctrl+z")
        assert app.doc.text == before
