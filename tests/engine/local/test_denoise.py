"""The step loop against transformers' reference, pins, cancellation, candidates."""

from __future__ import annotations

import threading

import pytest
import torch

from dgterm.engine.events import Window, candidate_seed
from dgterm.engine.local.denoise import denoise
from dgterm.engine.local.sampler import token_entropy


def _continue_windows(lm, prompt, params):
    yield Window(prompt)
    for _ in range(params.max_canvases(lm.canvas_length) - 1):
        yield Window([])


def _reference(lm, prompt, seed, **kw):
    torch.manual_seed(seed)
    ids = torch.tensor([prompt])
    out = lm.model.generate(ids, **kw)
    return out.sequences[:, ids.shape[1]:], out.tokens_per_forward


def _ours(lm, prompt, params):
    result = denoise(lm, _continue_windows(lm, prompt, params), params).collect()
    return torch.cat(result.canvases, dim=-1), result


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("steps", [3, 8])
def test_reference_mode_matches_generate_on_tiny(tiny, seed, steps):
    prompt = [2, 100, 200, 300]
    ref, ref_tpf = _reference(tiny, prompt, seed, max_new_tokens=48, max_denoising_steps=steps)
    params = tiny.defaults.replace(seed=seed, steps=steps, max_new_tokens=48, mode="reference")
    ours, result = _ours(tiny, prompt, params)
    assert torch.equal(ours[:, : ref.shape[1]], ref)
    assert result.tokens_per_forward == pytest.approx(ref_tpf.tolist())


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_reference_mode_matches_generate_on_bundled_with_eos_and_early_stop(bundled, seed):
    """The trained model stops early and ends text with EOS: multi-canvas runs agree too."""
    tok = bundled.tokenizer
    prompt = [tok.bos_token_id] + tok("import os\n\n\ndef main():\n", add_special_tokens=False)["input_ids"]
    n = 3 * bundled.canvas_length
    ref, ref_tpf = _reference(bundled, prompt, seed, max_new_tokens=n, max_denoising_steps=12)
    params = bundled.defaults.replace(seed=seed, steps=12, max_new_tokens=n, mode="reference")
    ours, result = _ours(bundled, prompt, params)
    assert ours.shape == ref.shape
    assert torch.equal(ours, ref)
    assert result.tokens_per_forward == pytest.approx(ref_tpf.tolist())


def test_a_run_that_hits_eos_pads_the_rest_and_stops(tiny):
    """Make EOS overwhelmingly likely: the run must stop after one canvas, pad after EOS."""
    eos = tiny.eos_ids[0]
    head = tiny.model.lm_head
    saved = head.weight.data.clone()
    try:
        head.weight.data[eos] = head.weight.data.abs().max() * 50
        params = tiny.defaults.replace(seed=0, max_new_tokens=48, mode="reference")
        ours, result = _ours(tiny, [2, 5, 6], params)
        ref, _ = _reference(tiny, [2, 5, 6], 0, max_new_tokens=48)
    finally:
        head.weight.data.copy_(saved)
    assert len(result.canvases) == 1
    assert bool(result.finished_at_eos[0])
    first = ours[0].tolist().index(eos)
    assert all(t == tiny.pad_id for t in ours[0, first + 1 :].tolist())
    assert torch.equal(ours, ref[:, : ours.shape[1]])


def test_token_entropy_matches_torch_categorical():
    logits = torch.randn(2, 5, 11) * 4
    logits[0, 0, 3] = -1e30
    expected = torch.distributions.Categorical(logits=logits).entropy()
    assert torch.equal(token_entropy(logits), expected)


def test_pinned_positions_never_change_and_cost_no_entropy(tiny):
    C = tiny.canvas_length
    known = torch.arange(C) + 50
    pinned = torch.zeros(C, dtype=torch.bool)
    pinned[::2] = True
    run = denoise(tiny, [Window([2, 9, 10], known, pinned)], tiny.defaults.replace(seed=4), stop_at_eos=False)
    events = list(run)
    assert events
    for ev in events:
        assert torch.equal(ev.canvas[0][pinned], known[pinned])
        assert torch.equal(ev.argmax[0][pinned], known[pinned])
        assert bool(ev.accepted[0][pinned].all())
        assert float(ev.entropy[0][pinned].abs().sum()) == 0.0
    assert torch.equal(run.result.canvases[0][0][pinned], known[pinned])


def test_cancel_returns_within_one_step_and_leaves_nothing_behind(tiny):
    cancel = threading.Event()
    params = tiny.defaults.replace(seed=1, steps=8, max_new_tokens=48, mode="reference")
    run = denoise(tiny, _continue_windows(tiny, [2, 3, 4], params), params, cancel=cancel)
    seen = 0
    for _ in run:
        seen += 1
        if seen == 2:
            cancel.set()
    assert seen == 2
    assert run.result.cancelled
    # The next call works normally and matches a run that was never cancelled.
    again, _ = _ours(tiny, [2, 3, 4], params)
    ref, _ = _reference(tiny, [2, 3, 4], 1, max_new_tokens=48, max_denoising_steps=8)
    assert torch.equal(again, ref)


@pytest.mark.parametrize("mode", ["fused", "reference"])
def test_candidates_denoise_together_each_with_its_own_seed(tiny, mode):
    params = tiny.defaults.replace(seed=10, max_new_tokens=16, mode=mode)
    batch = denoise(tiny, _continue_windows(tiny, [2, 7], params), params, candidates=3).collect()
    assert batch.canvases[0].shape[0] == 3
    for b in range(3):
        single, _ = _ours(tiny, [2, 7], params.replace(seed=candidate_seed(10, b)))
        assert torch.equal(batch.canvases[0][b], single[0])


def test_events_carry_step_numbers_and_timing(tiny):
    params = tiny.defaults.replace(seed=0, steps=5, max_new_tokens=32)
    events = list(denoise(tiny, _continue_windows(tiny, [2], params), params))
    assert [e.step for e in events if e.window == 0] == [1, 2, 3, 4, 5]
    assert {e.window for e in events} == {0, 1}
    assert all(e.max_steps == 5 for e in events)
    assert all(b.elapsed >= a.elapsed for a, b in zip(events, events[1:]))


def _candidate_matches_its_seed_alone(lm, prompt, params, candidates):
    run = denoise(lm, _continue_windows(lm, prompt, params), params, candidates=candidates)
    mixed = 0
    for ev in run:
        mixed += bool(ev.finished.any()) and not bool(ev.finished.all())
    batch = run.result
    for b in range(candidates):
        single, alone = _ours(lm, prompt, params.replace(seed=candidate_seed(params.seed, b)))
        ours = torch.cat([c[b] for c in batch.canvases])
        assert torch.equal(ours[: single.shape[1]], single[0]), f"candidate {b}"
        assert set(ours[single.shape[1]:].tolist()) <= {lm.pad_id}  # it stopped at EOS alone
    return mixed, batch


@pytest.mark.parametrize("mode", ["fused", "reference"])
def test_candidate_b_is_seed_plus_b_over_every_canvas_after_other_rows_stopped(tiny, mode):
    """Rows stop denoising at different steps (a sharpened head, confidence alone decides):
    a stopped row draws no more random numbers, so every later step and canvas still match."""
    head = tiny.model.lm_head.weight.data
    saved = head.clone()
    head *= 40
    try:
        params = tiny.defaults.replace(seed=20, steps=8, max_new_tokens=64, confidence=0.5, stability=0, mode=mode)
        mixed, batch = _candidate_matches_its_seed_alone(tiny, [2, 7, 9], params, 4)
    finally:
        head.copy_(saved)
    assert len(batch.canvases) == 4
    assert mixed >= 2  # some steps ran with a row already stopped

