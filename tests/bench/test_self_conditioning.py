"""`dgterm bench quality --sc-top-k` at small sizes on the bundled model: the arms run on the
same cases, agreement is 1 where top-k is exact (K = vocabulary) and below where it is
not, and the vocabulary's share gives its "after"."""

from __future__ import annotations

import pytest

from dgterm.bench import quality
from dgterm.bench import self_conditioning as sc


@pytest.fixture(scope="module")
def cases(bundled):
    return quality.sample_cases(bundled.tokenizer, 1, seed=0, kinds=("expression",))


def test_the_arms_run_on_the_same_cases_and_print(bundled, cases):
    params = bundled.defaults.replace(seed=0, steps=2)
    baselines = quality.Baselines(bundled.tokenizer, frequent=bundled.tokenizer.bos_token_id)
    report = sc.scores(bundled, cases, params, baselines, [2], candidates=2, windows=2)
    assert list(report) == ["exact", "top-2"]
    assert report["exact"]["loss"] != report["top-2"]["loss"]  # the second pass reads the top 2 only
    assert set(report["exact"]["exact"]) == {"expression"} and "expression" in report["exact"]["shown"]
    out = sc.table(report, {"top-2": {"continuation": 0.5, "infill": 0.25}})
    assert "| top-2 | 50.0% | 25.0% |" in out and "expression: shown exact / compiles" in out


def test_self_conditioned_loss_is_not_the_one_pass_loss(bundled):
    one, exact = (quality.denoising_loss(bundled, levels=(0.5,), windows=2, self_conditioning=s) for s in (None, 0))
    assert one != exact
    assert quality.denoising_loss(bundled, levels=(0.5,), windows=2, self_conditioning=bundled.vocab_size) \
        == pytest.approx(exact, abs=1e-4)


def test_agreement_is_whole_only_where_top_k_is_exact(bundled, cases):
    params = bundled.defaults.replace(steps=4)
    agree = sc.agreement(bundled, cases, params, [bundled.vocab_size, 1], seeds=(0,))
    assert agree[f"top-{bundled.vocab_size}"] == {"continuation": 1.0, "infill": 1.0}
    assert agree["top-1"]["continuation"] < 1.0


def test_speed_and_the_vocabulary_share_after(bundled):
    from dgterm.bench import vocab
    from dgterm.engine.local.checkpoint import bundled_dir

    timed = sc.speed(bundled, [8], steps=2, seeds=(0,), repeats=1)
    assert set(timed["speed_ratio_vs_exact"]) == {"exact", "top-8"} and timed["speed_ratio_vs_exact"]["exact"] == 1
    share = vocab.vocab_share(rows=4, context=64, repeats=1, dtype="float32", profile=bundled_dir(), sc_top_k=8)
    after = share["after"]
    assert "self-conditioning, top 8" in after["vocab_s"] and "self-conditioning" not in after["vocab_s"]
    assert after["vocab_share_flops"] < share["vocab_share_flops"] and 0 < after["vocab_share"] < 1
