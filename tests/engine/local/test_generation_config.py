"""The edges of a generation config, read as transformers' ``model.generate`` reads them:
each case runs the engine and ``generate`` on the same tiny model and compares tokens."""

from __future__ import annotations

import contextlib

import pytest
import torch

from dgterm.engine import tasks
from dgterm.engine.local.denoise import denoise
from dgterm.engine.params import SamplerParams

PROMPT = [2, 5, 6, 7]


@contextlib.contextmanager
def changed(obj, **values):
    saved = {k: getattr(obj, k) for k in values}
    for k, v in values.items():
        setattr(obj, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(obj, k, v)


@contextlib.contextmanager
def eos_likely(lm):
    """Make EOS the likeliest token by far, so a run would stop after its first canvas."""
    head = lm.model.lm_head.weight.data
    saved = head.clone()
    head[1] = head.abs().max() * 50
    try:
        yield
    finally:
        head.copy_(saved)


def engine(lm, params):
    plan = tasks.ContinuePlan(PROMPT, lm.canvas_length, params.max_canvases(lm.canvas_length, len(PROMPT)))
    result = denoise(lm, plan.windows(), params).collect()
    return torch.cat(result.canvases, -1)[0] if result.canvases else torch.zeros(0, dtype=torch.long), result


def reference(lm, seed, **kw):
    torch.manual_seed(seed)
    out = lm.model.generate(torch.tensor([PROMPT]), **kw)
    return out.sequences[0, len(PROMPT):], out.tokens_per_forward


def params_of(lm, **kw):
    """The tiny model's generation config as the engine reads it, in token-exact mode."""
    return SamplerParams.from_generation_config(lm.model.generation_config).replace(mode="reference", **kw)


def test_eos_none_in_the_generation_config_means_no_eos(tiny):
    with eos_likely(tiny), changed(tiny.model.generation_config, eos_token_id=None):
        assert tiny.eos_ids == []
        ours, result = engine(tiny, params_of(tiny, seed=0))
        ref, tpf = reference(tiny, 0)
    assert len(result.canvases) == 3  # 48 tokens: it ran every canvas
    assert (ours == 1).sum() > 10  # EOS everywhere, nothing padded
    assert torch.equal(ours, ref)
    assert result.tokens_per_forward == pytest.approx(tpf.tolist())


def test_a_model_with_no_eos_anywhere_runs(tiny):
    text = tiny.model.config.text_config
    with changed(tiny.model.generation_config, eos_token_id=None), changed(text, eos_token_id=None):
        assert tiny.eos_ids == []
        ours, _ = engine(tiny, params_of(tiny, seed=1))
        ref, _ = reference(tiny, 1)
        doc = "x = 1\ny = 2\n"
        task = tasks.infill(tiny, doc, [tasks.SpanRequest(6, 11)], tiny.defaults.replace(seed=1, steps=2))
        result = task.collect()
        scored = tiny.confidence(doc)
    assert torch.equal(ours, ref)
    assert result.best.text.startswith("x = 1\n") and result.best.text.endswith("\n")
    assert scored and scored[-1].end == len(doc)


def test_the_generation_configs_pad_id_is_the_pad_used(tiny):
    assert tiny.model.config.text_config.pad_token_id == 0
    with eos_likely(tiny), changed(tiny.model.generation_config, pad_token_id=7):
        assert tiny.pad_id == tiny.output_pad == 7
        ours, result = engine(tiny, params_of(tiny, seed=2))
        ref, tpf = reference(tiny, 2)
    first = ours.tolist().index(1)
    assert set(ours[first + 1 :].tolist()) == {7}
    assert torch.equal(ours, ref[: ours.shape[0]])
    assert set(ref[ours.shape[0] :].tolist()) <= {7}
    assert result.tokens_per_forward == pytest.approx(tpf.tolist())


def test_no_pad_id_keeps_the_tokens_after_eos_as_generate_does(tiny):
    with eos_likely(tiny), changed(tiny.model.generation_config, pad_token_id=None):
        ours, result = engine(tiny, params_of(tiny, seed=3))
        ref, tpf = reference(tiny, 3)
    assert (ours == 1).sum() > 1
    assert torch.equal(ours, ref)
    assert result.tokens_per_forward == pytest.approx(tpf.tolist())


@pytest.mark.parametrize("max_length", [len(PROMPT) + 40, len(PROMPT) + 16, len(PROMPT)])
def test_max_length_counts_when_max_new_tokens_is_left_at_its_default(tiny, max_length):
    with changed(tiny.model.generation_config, max_length=max_length, max_new_tokens=None):
        params = params_of(tiny, seed=4)
        assert params.max_new_tokens == 256
        ours, _ = engine(tiny, params)
        ref, _ = reference(tiny, 4)
        # an explicit max_new_tokens other than the default wins over max_length, in both
        explicit, _ = engine(tiny, params.replace(max_new_tokens=16))
        ref_explicit, _ = reference(tiny, 4, max_new_tokens=16)
    assert ours.shape[0] == -(-(max_length - len(PROMPT)) // tiny.canvas_length) * tiny.canvas_length
    assert torch.equal(ours, ref)
    assert torch.equal(explicit, ref_explicit)


def test_continue_text_reads_max_length_against_its_own_prompt(tiny):
    ids = [2] + tiny.tokenizer("abc", add_special_tokens=False)["input_ids"]
    params = tiny.defaults.replace(seed=0, steps=2, max_new_tokens=256, max_length=len(ids) + 20)
    task = tasks.continue_ids(tiny, ids, params)
    assert task.collect().run.windows == 2
