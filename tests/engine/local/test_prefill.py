"""Prefill: one encoder row for identical candidates, and long prompts in chunks; tokens unchanged."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from dgterm.engine.events import Window, candidate_seed
from dgterm.engine.local import prefill
from dgterm.engine.local.denoise import denoise


def _prompt(lm, lines: int) -> list[int]:
    tok = lm.tokenizer
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(lines))
    return [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]


def _run(lm, ids, params, candidates=1):
    windows = [Window(ids), Window([])]
    return denoise(lm, windows, params, candidates=candidates).collect()


class EncoderRows:
    """The batch size and length of every encoder forward (a forward hook on the real encoder)."""

    def __init__(self, lm):
        self.calls = []
        self.handle = lm.model.model.encoder.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        self.calls.append(tuple(kwargs["input_ids"].shape))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("mode", ["fused", "reference"])
def test_candidates_share_one_prefill_and_keep_their_tokens(bundled, mode):
    ids = _prompt(bundled, 40)
    params = bundled.defaults.replace(seed=5, steps=8, max_new_tokens=2 * bundled.canvas_length, mode=mode)
    with EncoderRows(bundled) as rows:
        batch = _run(bundled, ids, params, candidates=4)
    assert rows.calls[0] == (1, len(ids))  # the prompt once, for all four
    assert all(b == 4 for b, _ in rows.calls[1:])  # the candidates' own canvases, each row
    for b in range(4):
        alone = _run(bundled, ids, params.replace(seed=candidate_seed(5, b)))
        for mine, single in zip(batch.canvases, alone.canvases):
            assert torch.equal(mine[b], single[0]), f"candidate {b}"


@torch.no_grad()
def test_identical_rows_stay_one_row_until_they_differ(tiny):
    """The keys of a shared cache are those of every row encoded (to rounding: a matmul over
    fewer rows may take another kernel)."""
    config = tiny.model.config.get_text_config(decoder=True)
    same = torch.tensor([[2, 5, 9, 11]]).expand(3, -1)
    differ = torch.tensor([[4, 4], [5, 5], [6, 6]])
    shared, full = DynamicCache(config=config), DynamicCache(config=config)
    share = prefill.SharedPrefill(tiny.model, shared, 3)
    n = share.append(same, 0)
    n = share.append(same[:, :2], n)
    assert share.uniform and shared.layers[0].keys.stride(0) == 0  # a broadcast view, no copy
    share.append(differ, n)
    assert not share.uniform
    m = prefill.encode(tiny.model, full, same, 0)
    m = prefill.encode(tiny.model, full, same[:, :2], m)
    prefill.encode(tiny.model, full, differ, m)
    for a, b in zip(shared.layers, full.layers):
        assert a.keys.shape == b.keys.shape
        torch.testing.assert_close(a.keys, b.keys, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.values, b.values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["fused", "reference"])
def test_a_long_prompt_in_chunks_gives_the_one_piece_tokens(bundled, mode, monkeypatch):
    ids = _prompt(bundled, 100)
    assert len(ids) > 1200
    params = bundled.defaults.replace(seed=3, steps=8, max_new_tokens=2 * bundled.canvas_length, mode=mode)
    monkeypatch.setattr(prefill, "CHUNK", len(ids) + 1)
    whole = _run(bundled, ids, params, candidates=2)
    monkeypatch.setattr(prefill, "CHUNK", 384)
    with EncoderRows(bundled) as rows:
        chunked = _run(bundled, ids, params, candidates=2)
    assert [n for _, n in rows.calls[: -(-len(ids) // 384)]] == [384] * (len(ids) // 384) + [len(ids) % 384]
    for a, b in zip(whole.canvases, chunked.canvases):
        assert torch.equal(a, b)

