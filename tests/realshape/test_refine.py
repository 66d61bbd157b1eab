"""Refine with a Gemma-style tokenizer at the real vocabulary width: characters spelled in
byte-fallback pieces are kept or redrawn whole, and a redraw never shows a broken one."""

from __future__ import annotations

from dgterm.engine.tasks.refine import plan_refine, refine
from tests.helpers.realshape import TEXT, clean


def test_refine_keeps_characters_whole_with_byte_fallback_pieces(gemma):
    start, end = TEXT.index("東"), TEXT.index("here")
    plan = plan_refine(gemma, TEXT, start, end, 1.0)  # every token is redrawn: random weights are sure of nothing
    by_text = {t.text: t for t in plan.tokens}
    assert len(by_text["東"].ids) == 3 and len(by_text["🙂"].ids) == 4  # one token each, three and four pieces
    assert "".join(t.text for t in plan.tokens) == TEXT[start:end]
    result = refine(gemma, TEXT, start, end, gemma.defaults.replace(steps=2, seed=0), plan=plan,
                    candidates=2).collect()
    for cand in result.candidates:
        assert cand.text.startswith(TEXT[:start]) and cand.text.endswith(TEXT[end:])
        assert all(clean(s) and "\ufffd" not in s for s in cand.spans)
        cand.text.encode("utf-8")  # no lone surrogates either
