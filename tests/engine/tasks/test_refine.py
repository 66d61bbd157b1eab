"""Refine: only the span's tokens under the threshold are drawn again; every other byte stays."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgterm.engine.tasks.refine import NothingToRefine, plan_refine, refine
from dgterm.errors import InputError

CODE = "def mean(values):\n    total = sum(values)  # é 漢字 😀\n    return total / len(values)\n"


def check_refine(lm, text, start, end, below, seed, candidates=1):
    """Refine ``text[start:end]`` and hold it to the contract; returns the plan."""
    lens = lm.confidence(text, start, end)
    plan = plan_refine(lm, text, start, end, below, lens)
    # the tokens tile the span, and a token is re-noised exactly when the lens puts it (or a
    # byte piece of its character) under the threshold
    assert plan.tokens[0].start == start and plan.tokens[-1].end == end
    assert all(a.end == b.start for a, b in zip(plan.tokens, plan.tokens[1:]))
    for token in plan.tokens:
        pieces = [t.prob for t in lens if token.start <= t.start and t.end <= token.end and t.end > t.start]
        assert len(pieces) == len(token.ids)
        assert token.renoise == any(p < below for p in pieces)
    if not plan.renoised:
        with pytest.raises(NothingToRefine, match="under the threshold"):
            refine(lm, text, start, end, plan=plan)
        return plan
    task = refine(lm, text, start, end, lm.defaults.replace(seed=seed, steps=2), plan=plan, candidates=candidates)
    result = task.collect()
    # the engine held every kept token (and the context) where it was
    for w, window in enumerate(plan.canvas.windows()):
        pinned, known = window.pins()
        for row in range(candidates):
            assert torch.equal(result.run.canvases[w][row][pinned], known[pinned])
    assert sum(pinned.logical_not().sum() for pinned, _ in (w.pins() for w in plan.canvas.windows())) == \
        sum(len(t.ids) for t in plan.renoised)
    for cand in result.candidates:
        new = iter(cand.spans)
        rebuilt, was_renoised = [text[:start]], False
        for token in plan.tokens:
            if not token.renoise:
                rebuilt.append(token.text)
            elif not was_renoised:
                rebuilt.append(next(new))
            was_renoised = token.renoise
        rebuilt.append(text[end:])
        assert cand.text == "".join(rebuilt)
        assert next(new, None) is None
        assert "\ufffd" not in "".join(cand.spans)  # no half character
        for (a, b), drawn in zip(plan.placed(cand), cand.spans):
            assert cand.text[a:b] == drawn
    return plan


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), below=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_property_refine_redraws_exactly_the_doubted_tokens(bundled, data, below, seed):
    start = data.draw(st.integers(0, len(CODE) - 1))
    end = data.draw(st.integers(start + 1, min(len(CODE), start + 24)))
    check_refine(bundled, CODE, start, end, below, seed)


def test_refine_a_character_split_over_byte_tokens_is_one_token(bundled):
    start = CODE.index("é")
    plan = check_refine(bundled, CODE, start, start + 7, 1.0, seed=1)
    by_text = {t.text: t for t in plan.tokens}
    assert len(by_text["漢"].ids) == 3 and len(by_text["😀"].ids) == 4
    assert by_text["😀"].renoise  # nothing is sure at 1.0


def test_refine_spans_several_canvases_on_a_short_canvas(tiny):
    text = CODE * 2
    plan = check_refine(tiny, text, 5, len(text) - 5, 0.5, seed=2)
    assert len(plan.canvas.starts) > 1


def test_refine_takes_a_lens_that_lines_up_and_asks_again_for_one_that_does_not(bundled, monkeypatch):
    lens = bundled.confidence(CODE, 4, 30)
    asked = []
    real = type(bundled).confidence
    monkeypatch.setattr(type(bundled), "confidence", lambda self, *a, **k: asked.append(a) or real(self, *a, **k))
    assert [t.prob for t in plan_refine(bundled, CODE, 4, 30, 0.5, lens).tokens] == [t.prob for t in lens]
    assert asked == []
    plan_refine(bundled, CODE, 4, 30, 0.5, lens[1:])
    assert asked == [(CODE, 4, 30)]


@pytest.mark.parametrize(("start", "end", "below", "sentence"), [
    (3, 3, 0.5, "The span to refine is empty"),
    (0, len(CODE) + 1, 0.5, "is outside the text"),
    (0, 4, 1.5, "between 0 and 1, not 1.5"),
    (0, 4, -0.1, "between 0 and 1"),
])
def test_refine_refuses_bad_input_in_one_sentence(bundled, start, end, below, sentence):
    with pytest.raises(InputError, match=sentence):
        plan_refine(bundled, CODE, start, end, below)


def test_nothing_under_a_zero_threshold(bundled):
    with pytest.raises(NothingToRefine, match="No token of the span is under the threshold 0; raise it"):
        refine(bundled, CODE, 0, 10, below=0.0)
