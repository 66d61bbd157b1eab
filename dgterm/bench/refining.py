"""One refine on held-out infills: does redrawing the tokens the model doubts help?

For each line and expression case of :mod:`dgterm.bench.quality` the span is infilled (one
candidate, the true token length), then refined once (:mod:`dgterm.engine.tasks.refine`):
its tokens under the threshold re-noised and drawn again, everything else pinned. Before
and after: the span's *pseudo-log-likelihood* (the mean natural log of each token's
probability with its lens group noised, :meth:`Engine.confidence`) and whether the whole
held-out file still compiles. The original text's pseudo-log-likelihood is the reference.
"""

from __future__ import annotations

import math
from collections import defaultdict

from dgterm.bench.quality import CANDIDATE_KINDS, Case
from dgterm.engine.params import DEFAULT_REFINE_BELOW

FLOOR = 1e-12  # a probability of 0 counts as this in a logarithm


def pseudo_log_likelihood(lm, text: str, start: int, end: int) -> float | None:
    """Mean log-probability of the tokens of ``text[start:end]`` (None when it is empty)."""
    lens = lm.confidence(text, start, end) if end > start else []
    return sum(math.log(max(t.prob, FLOOR)) for t in lens) / len(lens) if lens else None


def refine_scores(lm, cases: list[Case], params, below: float = DEFAULT_REFINE_BELOW, progress=None) -> dict:
    """Per kind of ``CANDIDATE_KINDS``: the mean pseudo-log-likelihood of the original span,
    of the infill and of the infill refined once at ``below``; the compile rate of the infill
    and of the refined infill; the mean share of the span's tokens re-noised and how often
    the refine changed the text."""
    from dgterm.editor import structure
    from dgterm.engine import tasks
    from dgterm.engine.tasks.refine import plan_refine, refine

    sums: dict[str, defaultdict[str, float]] = {k: defaultdict(float) for k in CANDIDATE_KINDS}
    for case in cases:
        n = len(lm.tokenizer(case.answer, add_special_tokens=False)["input_ids"])
        tail = case.source[case.base + len(case.text):]

        def compiles(window_text, case=case, tail=tail) -> bool:
            return structure.check("python", case.source[: case.base] + window_text + tail).valid

        if case.kind not in CANDIDATE_KINDS or not 0 < n <= lm.canvas_length // 2 or not compiles(case.text):
            continue
        drawn = tasks.infill(lm, case.text, [tasks.SpanRequest(case.start, case.end, n)], params).collect().best
        text, end = drawn.text, case.start + len(drawn.spans[0])
        if end == case.start:  # an empty draft: nothing to refine
            continue
        plan = plan_refine(lm, text, case.start, end, below)
        refined = refine(lm, text, case.start, end, params, plan=plan).collect().best.text if plan.renoised else text
        s = sums[case.kind]
        s["n"] += 1
        s["renoised"] += len(plan.renoised) / len(plan.tokens)
        s["changed"] += refined != text
        s["compiles before"] += compiles(text)
        s["compiles after"] += compiles(refined)
        spans = {"original": (case.text, case.end), "before": (text, end),
                 "after": (refined, end + len(refined) - len(text))}
        for name, (whole, stop) in spans.items():
            pll = pseudo_log_likelihood(lm, whole, case.start, stop)
            if pll is not None:
                s[f"pll {name}"] += pll
                s[f"pll {name} n"] += 1
        if progress:
            progress()
    out = {}
    for kind, s in sums.items():
        row: dict[str, float | None] = {k: s[k] / max(s["n"], 1) for k in ("renoised", "changed", "compiles before",
                                                                            "compiles after")}
        for name in ("original", "before", "after"):
            row[f"pll {name}"] = s[f"pll {name}"] / s[f"pll {name} n"] if s[f"pll {name} n"] else None
        out[kind] = row | {"n": int(s["n"]), "below": below}
    return out
