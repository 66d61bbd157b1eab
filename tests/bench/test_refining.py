"""`dgterm bench quality`'s refine rows at small sizes: one infill, one refine, before and after."""

from __future__ import annotations

import math

from dgterm.bench import refining
from dgterm.bench.quality import Case

SOURCE = "def mean(values):\n    total = sum(values)\n    return total / len(values)\n\n\nprint(mean([1, 2, 3]))\n"


def case(kind, piece):
    start = SOURCE.index(piece)
    return Case(kind, "mean.py", SOURCE, start, start + len(piece), SOURCE, 0)


def test_refine_scores_report_before_and_after(bundled):
    cases = [case("expression", "total / len(values)"), case("token", "def")]  # a token case is not scored
    report = refining.refine_scores(bundled, cases, bundled.defaults.replace(seed=0, steps=2), below=0.5)
    assert report["line"]["n"] == 0 and report["line"]["pll after"] is None
    for row in [report["expression"]]:
        assert row["n"] == 1 and row["below"] == 0.5
        assert 0 < row["renoised"] <= 1 and row["changed"] in (0, 1)
        assert row["compiles before"] in (0, 1) and row["compiles after"] in (0, 1)
        assert all(row[f"pll {k}"] is None or row[f"pll {k}"] <= 0 for k in ("original", "before", "after"))


def test_pseudo_log_likelihood_is_the_mean_log_of_the_lens(bundled):
    lens = bundled.confidence(SOURCE, 22, 41)
    want = sum(math.log(t.prob) for t in lens) / len(lens)
    assert math.isclose(refining.pseudo_log_likelihood(bundled, SOURCE, 22, 41), want)
    assert refining.pseudo_log_likelihood(bundled, SOURCE, 5, 5) is None
