"""The fused sampling pass (CPU and Triton) against the reference: argmax, entropy,
acceptance, the distribution of its samples, pins, and seeds per candidate."""

from __future__ import annotations

import math

import pytest
import torch

from dgterm.engine.local.kernels import sampling as K
from dgterm.engine.local.sampler import Pins, Sampler, token_entropy
from dgterm.engine.params import SamplerParams
from tests.helpers.interpreter import run_interpreted


def chi_square_ok(counts: torch.Tensor, probs: torch.Tensor) -> bool:
    """Pearson's test over the bins expected to hold at least 5 draws (the rest merged):
    the statistic stays under df + 5·sqrt(2·df), far in the tail (p < 1e-5) for a sampler that
    is right, and far above it for one that is off by a few percent at these counts."""
    n = counts.sum()
    expected = probs.double() * n
    big = expected >= 5
    obs = torch.cat([counts[big].double(), counts[~big].double().sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    df = int(keep.sum()) - 1
    return stat < df + 5 * math.sqrt(2 * df)


def logits_like_a_model(rows, vocab, seed=0):
    """A few likely tokens over a long tail, with some near-ties, some -inf and one row nearly certain."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=g) * 2
    x[:, :8] += torch.linspace(6, 2, 8)
    x[0, 1] = x[0, 0]  # a tie: the first index wins in both
    x[1, 100:] = -float("inf")
    x[2, 5] = 80.0
    return x


@pytest.mark.parametrize("vocab", [4096, 1000, 262_144])
def test_cpu_pass_argmax_is_the_references_and_entropy_within_1e_4(vocab):
    rows = 6 if vocab > 10_000 else 40
    x = logits_like_a_model(rows, vocab)
    t = K.temperature_of(SamplerParams(steps=8), 5, "cpu")
    processed = x / t
    work = torch.ones(rows, dtype=torch.bool)
    argmax, entropy, _ = K.fused_sample_cpu(x.clone(), t, work, torch.rand(rows))
    assert torch.equal(argmax, processed.argmax(-1))
    truth = token_entropy(processed.double()).float()
    assert torch.allclose(entropy, truth, rtol=1e-4, atol=1e-6)
    assert torch.allclose(entropy, token_entropy(processed), rtol=1e-4, atol=1e-5)


def test_cpu_pass_writes_the_processed_logits_in_place_and_skips_rows_not_working():
    x = logits_like_a_model(10, 2048)
    t = K.temperature_of(SamplerParams(steps=4), 4, "cpu")
    work = torch.tensor([True, False] * 5)
    buf = x.clone()
    argmax, entropy, sample = K.fused_sample_cpu(buf, t, work, torch.rand(10))
    assert torch.equal(buf, floored(x / t))
    assert bool((entropy[~work] == 0).all()) and bool((argmax[~work] == 0).all()) and bool((sample[~work] == 0).all())
    assert torch.equal(argmax[work], (x / t).argmax(-1)[work])


def floored(x: torch.Tensor) -> torch.Tensor:
    """What the CPU pass leaves of ``x``: every row lifted to its top less FLOOR, but a row with barred logits."""
    barred = (x <= K.BARRED).any(-1, keepdim=True)
    return torch.where(barred, x, torch.maximum(x, x.amax(-1, keepdim=True) - K.FLOOR))


def test_the_floor_leaves_no_subnormal_probability_and_a_barred_logit_barred():
    x = logits_like_a_model(12, 4096) * 20  # peaked: most of each row's softmax is subnormal unfloored
    # row 1 holds -inf logits, and row 3 is held to 10 tokens
    x[3, 10:] = torch.finfo(torch.float32).min / 2  # as restriction() bars
    tiny = torch.finfo(torch.float32).tiny
    p = torch.softmax(x, -1)
    assert bool(((p > 0) & (p < tiny)).any())
    buf = x.clone()
    uniforms = torch.zeros(12)  # the lowest draw: the first token with any mass
    _, _, sample = K.fused_sample_cpu(buf, torch.tensor(1.0), torch.ones(12, dtype=torch.bool), uniforms)
    q = torch.softmax(buf, -1)
    free = torch.tensor([r not in (1, 3) for r in range(12)])
    assert not bool(((q > 0) & (q < tiny))[free].any())
    assert torch.equal(buf[3], x[3]) and torch.equal(buf[1], x[1]) and int(sample[3]) < 10
    assert torch.allclose(q, p, rtol=0, atol=1e-25)  # the mass moved is below anything float32 adds up


def test_the_floor_changes_no_token_of_a_run(bundled, monkeypatch):
    """Fused runs of the bundled model (two candidates; a canvas with pinned positions and one
    held to a few tokens) give the same tokens with the floor and without it."""
    from dgterm.engine.events import Window
    from dgterm.engine.local.denoise import denoise

    ids = bundled.tokenizer("def main(argv):\n", add_special_tokens=False)["input_ids"]
    C = bundled.canvas_length
    pinned = torch.zeros(C, dtype=torch.bool)
    pinned[C // 2:] = True
    windows = [Window(prefix=ids), Window(prefix=ids, known=torch.full((C,), ids[0]), pinned=pinned,
                                          allowed={0: ids[:3]})]

    def run(floor):
        monkeypatch.setattr(K, "FLOOR", floor)
        params = bundled.defaults.replace(steps=12, seed=3, mode="fused")
        return [denoise(bundled, [w], params, candidates=2).collect().canvases for w in windows]

    assert str(run(K.FLOOR)) == str(run(float("inf")))


@pytest.mark.parametrize("vocab", [2048, 300])  # the block-sum search, and one block
def test_cpu_samples_follow_the_softmax(vocab):
    g = torch.Generator().manual_seed(1)
    row = torch.randn(vocab, generator=g) * 1.5
    row[:4] += 3
    n = 40_000
    x = row.expand(n, vocab).contiguous()
    t = torch.tensor(1.0)
    _, _, sample = K.fused_sample_cpu(x, t, torch.ones(n, dtype=torch.bool), torch.rand(n, generator=g))
    counts = torch.bincount(sample, minlength=vocab)
    assert chi_square_ok(counts, torch.softmax(row, -1))
    skewed = torch.softmax(row, -1) * (1 + 0.5 * (torch.arange(vocab) % 2))
    assert not chi_square_ok(counts, skewed / skewed.sum())  # the test tells a sampler 50% off on every other token


def test_gumbel_twin_samples_follow_the_softmax():
    g = torch.Generator().manual_seed(2)
    vocab, n = 64, 30_000
    row = torch.randn(vocab, generator=g) * 2
    x = row.expand(n, vocab).contiguous()
    seeds = torch.randint(0, 1 << 62, (n,), generator=g)
    work = torch.ones(n, dtype=torch.bool)
    _, entropy, sample = K.gumbel_sample_torch(x, 0.8, seeds, work, torch.zeros(n, dtype=torch.long),
                                               torch.empty_like(x))
    assert chi_square_ok(torch.bincount(sample, minlength=vocab), torch.softmax(row / 0.8, -1))
    assert torch.allclose(entropy, token_entropy(row[None] / 0.8).expand(n), rtol=1e-4)


def test_philox_twin_is_tritons_stream():
    """Known values of ``tl.rand(12345, arange(4))`` (Triton's interpreter and GPUs agree)."""
    u = K.philox_uniform(torch.tensor(12345), torch.arange(4))
    assert torch.allclose(u, torch.tensor([0.3596, 0.0056, 0.8451, 0.5762]), atol=1e-4)


def _step(mode, logits, pins=None, seeds=(3, 4)):
    batch, length, vocab = logits.shape
    params = SamplerParams(steps=8, mode=mode)
    gens = [torch.Generator().manual_seed(s) for s in seeds[:batch]]
    sampler = Sampler(params, vocab, gens, pins)
    canvas = sampler.initial_canvas(batch, length, "cpu")
    finished = torch.zeros(batch, dtype=torch.bool)
    return sampler.step(logits.clone(), canvas, canvas, None, finished, 6, torch.float32)


def test_fused_step_agrees_with_the_reference_step():
    """Same argmax and processed logits, entropy within 1e-4, and the same acceptance set."""
    logits = logits_like_a_model(2 * 24, 4096, seed=5).view(2, 24, 4096) * 0.3
    ref = _step("reference", logits)
    fused = _step("fused", logits)
    assert torch.equal(fused[1], ref[1])  # argmax canvas
    assert torch.equal(fused[2], ref[2])  # self-conditioning logits
    assert torch.allclose(fused[5], ref[5], rtol=1e-4, atol=1e-6)  # entropy
    assert torch.equal(fused[4], ref[4])  # accepted


def test_fused_step_honours_pins():
    logits = logits_like_a_model(16, 2048, seed=6).view(1, 16, 2048)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, ::3] = True
    ids = torch.full((1, 16), 42)
    canvas, argmax, _, _, accepted, entropy = _step("fused", logits, Pins(mask, ids))
    assert bool((canvas[mask] == 42).all()) and bool((argmax[mask] == 42).all())
    assert bool(accepted[mask].all()) and float(entropy[mask].abs().sum()) == 0.0


def test_the_fused_sampler_takes_the_kernel_switch_of_the_quantized_matmuls(monkeypatch):
    """One switch for every Triton kernel (``DGTERM_KERNELS``; CUDA tensors only by default). The
    sampler's import of it was broken, which only a CUDA run reached."""
    x = torch.zeros(2, 8)
    assert K._use_triton(x) is False
    monkeypatch.setenv("DGTERM_KERNELS", "triton")
    assert K._use_triton(x) is True


TRITON_SCRIPT = r"""
import json, torch
from dgterm.engine.local.kernels import sampling as K
from dgterm.engine.local.kernels.sampling_triton import gumbel_sample_triton
report = {}
cases = {"fp32": (3, 100, torch.float32, 64), "fp16_odd": (4, 300, torch.float16, 128),
         "bf16_odd": (2, 257, torch.bfloat16, 64), "fp32_pinned": (5, 1000, torch.float32, 256)}
for name, (n, v, dtype, block) in cases.items():
    g = torch.Generator().manual_seed(len(name))
    x = (torch.randn(n, v, generator=g) * 3).to(dtype)
    x[0, 7] = -float("inf")
    seeds = torch.randint(0, 1 << 62, (n,), generator=g)
    work = torch.ones(n, dtype=torch.bool)
    if name.endswith("pinned"):
        work[1::2] = False
    fill = torch.arange(n) + 11
    outs = [torch.empty(n, v, dtype=dtype) for _ in range(2)]
    tri = gumbel_sample_triton(x, 0.7, seeds, work, fill, outs[0], block=block)
    twin = K.gumbel_sample_torch(x, 0.7, seeds, work, fill, outs[1])
    ulp = {torch.float32: 0.0, torch.float16: 2 ** -10, torch.bfloat16: 2 ** -7}[dtype]
    report[name] = {
        "argmax": torch.equal(tri[0], twin[0]), "sample": torch.equal(tri[2], twin[2]),
        "entropy": float(((tri[1] - twin[1]).abs() / twin[1].abs().clamp(min=1e-6)).max()),
        "processed": bool(torch.allclose(outs[0].float(), outs[1].float(), rtol=ulp, atol=0)),
        "fill": bool((tri[0][~work] == fill[~work]).all() and (tri[1][~work] == 0).all()),
    }
# in place (out is the logits), as the engine calls it
x = torch.randn(3, 333) * 2
ref = x / 0.5
gumbel_sample_triton(x, 0.5, torch.arange(3), torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.long), x)
report["in_place"] = bool(torch.equal(x, ref))
print(json.dumps(report))
"""


def test_triton_kernel_matches_its_twin_in_the_interpreter():
    report = run_interpreted(TRITON_SCRIPT)
    assert report.pop("in_place") is True
    for name, r in report.items():
        assert r["argmax"] and r["sample"] and r["processed"] and r["fill"], (name, r)
        assert r["entropy"] < 1e-4, (name, r)
