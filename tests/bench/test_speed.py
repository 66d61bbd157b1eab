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
