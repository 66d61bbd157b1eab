"""`dgterm bench speed` at small sizes: every row runs on the bundled model, the engine's
tokens are generate's, chunked prefill changes no token and needs less memory, and the
report prints."""

from __future__ import annotations

from dgterm.bench import speed
from dgterm.commands.bench import print_speed


def test_every_row_of_the_speed_report_runs(bundled, capsys):
    rows = speed.compare(bundled, [2], seeds=(0,), repeats=1)
    assert rows[0]["identical_tokens"] and all(v[0] <= v[1] for v in rows[0]["min_max_s"].values())
    many = speed.candidates_long(bundled, candidates=2, tokens=300, steps=2, repeats=1)
    assert many["speed_ratio_fused_vs_generate"] > 0 and many["scoring_s"] >= 0
    long = speed.prefill_long(bundled, tokens=2100, steps=2, repeats=1)
    assert long["identical_tokens"] and long["memory_ratio"] > 1.2, long
    profile = speed.profile_run(bundled, 2, 600, 2)
    assert abs(sum(profile["share"].values()) - 1) < 1e-6 and profile["seconds"]["decoder"] > 0
    alone = speed.sampler_alone(rows=8, vocab=1000, repeats=1)
    print_speed({"load_s": 0.0, "continue_128_s": 0.0}, rows, many, long, alone, [profile])
    out = capsys.readouterr().out
    assert "fused/generate" in out and "identical tokens: True" in out and "| decoder |" in out
    assert "where a task's time goes" in out and len(speed.long_prompt_ids(bundled, 777)) == 777


def test_the_compiled_step_and_vocabulary_rows_run(bundled, capsys):
    """The compiled row at a small size with dynamo's eager backend (inductor's warm-up is
    minutes on a CPU: the command runs it), and the vocabulary's share measured the same
    way on the bundled model's config (the command reads the 26B-A4B's: 4 GiB)."""
    from dgterm.bench import vocab
    from dgterm.commands.bench import print_step
    from dgterm.engine.local.checkpoint import bundled_dir

    compiled = speed.compiled_vs_eager(bundled, steps=2, seeds=(0,), backend="eager")
    assert compiled["identical_tokens"] and compiled["warmup_s"] > 0 and compiled["speed_ratio_compiled_vs_eager"] > 0
    share = vocab.vocab_share(rows=4, context=64, repeats=1, dtype="float32", profile=bundled_dir())
    assert 0 < share["vocab_share"] < 1 and 0 < share["vocab_share_flops"] < 1, share
    assert share["layers"] == {"sliding_attention": 3, "full_attention": 1}
    print_step(compiled, share)
    out = capsys.readouterr().out
    assert "the eager step (identical tokens: True)" in out and "of the FLOPs" in out
