"""No U+FFFD the model did not spell: a draft that ends (or breaks) inside a character split
over Gemma's byte-fallback pieces keeps whole characters only, in every decoded text (the
infill task's spans, so the CLI, the editor and the server alike)."""

from __future__ import annotations

import torch

from dgterm.engine import tasks
from dgterm.engine.output import tokens
from dgterm.engine.tasks import SpanRequest

from tests.helpers.realshape import TEXT

from .test_drafts import PIECES, ids_of

WHOLE = " wör東 🙂"


def test_a_character_cut_off_or_broken_is_dropped_not_replaced(gemma):
    tok = gemma.tokenizer
    ids = ids_of(tok, PIECES)
    assert tokens.decode(tok, ids) == WHOLE
    assert tokens.decode(tok, ids[:-1]) == " wör東 "  # 🙂 cut after 3 of its 4 bytes
    assert tokens.decode(tok, ids[:5]) == " wör"  # 東 cut after its first byte
    assert tokens.decode(tok, ids[2:]) == "r東 🙂"  # the rest of an ö whose first byte is not there
    broken = ids[:4] + ids_of(tok, ["<0xE6>", "▁w"])  # a lead byte and then no continuation
    assert tokens.decode(tok, broken) == " wör w"


def test_a_replacement_character_the_model_spelled_stays(gemma):
    tok = gemma.tokenizer
    spelled = ids_of(tok, ["▁w", "<0xEF>", "<0xBF>", "<0xBD>", "<0xF0>", "<0x9F>"])
    assert tokens.decode(tok, spelled) == " w\ufffd"


def test_an_infill_span_ending_inside_a_character_holds_whole_characters(gemma):
    start = TEXT.index("middle")
    task = tasks.infill(gemma, TEXT, [SpanRequest(start, start + 6, len(PIECES) - 1)],
                        gemma.defaults.replace(seed=1, steps=2))
    plan = task.plans[0]
    canvases = [w.known.clone() for w in plan.windows()]
    for (w, p), i in zip(map(plan.locate, plan.slots[0]), ids_of(gemma.tokenizer, PIECES[:-1])):
        canvases[w][p] = i
    cand = task._finish(plan, [torch.as_tensor(c) for c in canvases])
    assert "\ufffd" not in cand.text and cand.spans[0].endswith("東 ")
    assert cand.text == TEXT[:start] + cand.spans[0] + TEXT[start + 6 :]


def test_through_a_server_a_split_character_reads_whole_or_not_at_all(served_gemma, gemma):
    """`dgterm serve` says what each token's bytes are, so its client shows a character split
    over byte pieces whole, as in process; vLLM only detokenizes, so there a piece whose text
    is U+FFFD alone counts as unknown bytes: never a U+FFFD."""
    from dgterm.engine.remote.client import RemoteEngine

    ids = ids_of(gemma.tokenizer, PIECES)
    here = tokens.TokenText(gemma.tokenizer).row(ids)
    assert "".join(here) == WHOLE
    there = RemoteEngine(served_gemma.url)
    assert tokens.TokenText(there.tokenizer).row(ids) == here
    vllm_like = RemoteEngine(served_gemma.url, vllm_only=True)
    row = tokens.TokenText(vllm_like.tokenizer).row(ids)
    assert "\ufffd" not in "".join(row) and "".join(row).startswith(" w")
    there.close(), vllm_like.close()
