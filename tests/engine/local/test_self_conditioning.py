"""Top-k self-conditioning (opt-in): the exact soft embeddings at K = vocabulary, the simplex,
no signal at a canvas's first step, the hook gone after the forward, `dgterm serve` alike,
and the refusals (reference sampler, --compile, vLLM)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dgterm.engine import tasks
from dgterm.engine.events import Window
from dgterm.engine.local.denoise import denoise
from dgterm.engine.local.self_conditioning import injected, soft_embeddings, top_k_logits
from dgterm.engine.params import COMPILED_TOP_K, REMOTE_TOP_K, SamplerParams
from dgterm.engine.remote.client import RemoteEngine
from dgterm.errors import RemoteError, SettingError
from tests.helpers.cli import dgterm


def _prompt(lm):
    tok = lm.tokenizer
    return [tok.bos_token_id] + tok("import os\n\n\ndef main():\n", add_special_tokens=False)["input_ids"]


def _exact(decoder, logits):
    """transformers' own soft embeddings (DiffusionGemmaDecoderModel.forward)."""
    weight = decoder.embed_tokens.weight
    return torch.matmul(logits.softmax(-1, dtype=torch.float32).to(weight.dtype), weight) \
        * decoder.embed_tokens.embed_scale.to(weight.dtype)


def _logits(lm, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, lm.canvas_length, lm.vocab_size, generator=g) * 4


@torch.no_grad()
def test_all_of_the_vocabulary_gives_the_exact_soft_embeddings_within_float_rounding(bundled):
    """K = V sums the same products in another order: float32 rounding, not bit for bit
    (7e-5 at most on values up to 7: the embeddings are scaled by sqrt(256) = 16)."""
    decoder = bundled.model.model.decoder
    logits = _logits(bundled)
    exact = _exact(decoder, logits)
    embed = decoder.embed_tokens.weight, decoder.embed_tokens.embed_scale
    for k in (bundled.vocab_size, 10 * bundled.vocab_size):
        assert torch.allclose(soft_embeddings(logits, *embed, k), exact, rtol=1e-5, atol=2e-4)
    assert not torch.allclose(soft_embeddings(logits, *embed, 8), exact, rtol=1e-2, atol=1e-2)


def test_the_weights_are_the_softmax_of_the_top_k_and_sum_to_one():
    """With one-hot embeddings the soft embedding is the weight vector itself."""
    vocab, k = 50, 4
    logits = torch.randn(3, 7, vocab, generator=torch.Generator().manual_seed(1)) * 3
    weights = soft_embeddings(logits, torch.eye(vocab), torch.tensor(1.0), k)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 7))
    assert (weights >= 0).all() and ((weights > 0).sum(-1) == k).all()
    values, ids = logits.topk(k, dim=-1)
    assert torch.allclose(weights.gather(-1, ids), values.softmax(-1))


def _continue(lm, params):
    return denoise(lm, [Window(_prompt(lm))], params).collect().canvases[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_all_of_the_vocabulary_draws_the_exact_runs_tokens(bundled, seed):
    params = bundled.defaults.replace(seed=seed, steps=6)
    exact = _continue(bundled, params)
    assert torch.equal(_continue(bundled, params.replace(sc_top_k=bundled.vocab_size)), exact)
    assert not torch.equal(_continue(bundled, params.replace(sc_top_k=1)), exact)  # the test can fail


def test_a_canvas_first_step_has_no_self_conditioning_and_the_rest_have_it(bundled):
    seen = []
    block = bundled.model.model.decoder.self_conditioning
    handle = block.register_forward_hook(lambda module, args, out: seen.append(bool(args[1].any())))
    try:
        result = denoise(bundled, [Window(_prompt(bundled))],
                         bundled.defaults.replace(seed=0, steps=6, sc_top_k=8)).collect()
    finally:
        handle.remove()
    assert seen == [False] + [True] * (result.steps[0] - 1)


def test_the_hook_is_gone_after_the_forward_even_when_it_fails(bundled):
    model = bundled.model
    decoder = model.model.decoder
    g = torch.Generator().manual_seed(0)
    canvas = torch.randint(0, bundled.vocab_size, (1, bundled.canvas_length), generator=g)
    inputs = dict(input_ids=torch.tensor([_prompt(bundled)]), decoder_input_ids=canvas)
    with torch.no_grad():
        before = model(**inputs).logits
        approximate = top_k_logits(model, 8, before, **inputs)
        assert not decoder.self_conditioning._forward_pre_hooks
        assert not torch.equal(approximate, before)
        assert torch.equal(model(**inputs).logits, before)  # an exact call later is unaffected
        with pytest.raises(RuntimeError), injected(decoder, torch.zeros(1)):
            raise RuntimeError("a forward that fails")
    assert not decoder.self_conditioning._forward_pre_hooks


def test_the_reference_sampler_refuses_it():
    with pytest.raises(SettingError, match="approximation"):
        SamplerParams(mode="reference", sc_top_k=8)


def test_the_compiled_step_refuses_it(bundled):
    with pytest.raises(SettingError) as e:
        denoise(bundled, [Window([1, 2])], bundled.defaults.replace(sc_top_k=8), static=True)
    assert str(e.value) == COMPILED_TOP_K


def test_dgterm_serve_draws_what_this_process_draws(remote, bundled):
    """Through the batcher (two candidates: two rows of one forward), the same texts; and not
    the exact run's (K = 1: the signal is one embedding row)."""
    p = bundled.defaults.replace(steps=6, seed=5, max_new_tokens=40, sc_top_k=1)

    def texts(lm, params):
        got = tasks.continue_text(lm, "import os\n", params, candidates=2).collect().candidates
        return [c.text for c in sorted(got, key=lambda c: c.seed)]

    there = texts(remote, p)
    assert there == texts(bundled, p)
    assert there != texts(remote, p.replace(sc_top_k=0))


def test_vllm_refuses_it_in_one_sentence():
    vllm = SimpleNamespace(speaks_dgterm=False)
    with pytest.raises(RemoteError) as e:
        RemoteEngine.denoise(vllm, [Window([1, 2])], SamplerParams(sc_top_k=8))
    assert str(e.value) == REMOTE_TOP_K


@pytest.mark.parametrize("flags, said", [
    (["--sampler", "reference"], "approximation"),
    (["--compile"], COMPILED_TOP_K),
    (["--sc-top-k", "-1"], "at least 0"),
])
def test_the_cli_refuses_in_one_line_with_status_2(flags, said):
    out = dgterm("generate", "def f():", "--sc-top-k", "8", *flags)
    assert out.returncode == 2
    assert said in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
