"""Top-k self-conditioning against exact, on the same cases and seeds in one run (issue 27).

Arms: ``exact`` (``sc_top_k`` 0, the default) and one per K. For each: token agreement
with exact (same seeds; a one-canvas continuation with no EOS stop, and the free
positions of the infill cases), the self-conditioned held-out loss
(:func:`dgterm.bench.quality.denoising_loss`), infill exact match and the compile rate
of the shown candidate (:mod:`dgterm.bench.quality`), and the seconds of a continuation.
"""

from __future__ import annotations

import statistics
import time

from dgterm.bench import quality
from dgterm.bench.speed import PROMPT


def arms(ks: list[int]) -> dict[str, int]:
    """Arm name -> ``sc_top_k``: exact first."""
    return {"exact": 0} | {f"top-{k}": k for k in ks}


def _continuation(lm, params):
    """The ids of one canvas continuing :data:`dgterm.bench.speed.PROMPT` (every position drawn)."""
    from dgterm.engine.events import Window
    from dgterm.engine.local.denoise import denoise

    tok = lm.tokenizer
    ids = [tok.bos_token_id] + tok(PROMPT, add_special_tokens=False)["input_ids"]
    return denoise(lm, [Window(ids)], params, stop_at_eos=False).collect().canvases[0][0]


def _infill_ids(lm, case, params):
    """The ids the infill of ``case`` drew at its free canvas positions."""
    import torch

    from dgterm.engine import tasks

    n = len(quality._ids(lm.tokenizer, case.answer))
    task = tasks.infill(lm, case.text, [tasks.SpanRequest(case.start, case.end, n)], params)
    canvases = task.collect().run.canvases
    free = [torch.ones_like(c[0], dtype=torch.bool) if w.pinned is None else ~w.pinned.to(c.device)
            for w, c in zip(task.plans[0].windows(), canvases, strict=False)]
    return torch.cat([c[0][f] for c, f in zip(canvases, free, strict=False)])


def agreement(lm, cases: list, params, ks: list[int], seeds=(0, 1, 2)) -> dict[str, dict[str, float]]:
    """Per top-k arm: the share of tokens identical to the exact arm's, same seeds (the
    continuation and every infill case, each seed)."""
    import torch

    usable = [c for c in cases if 0 < len(quality._ids(lm.tokenizer, c.answer)) <= lm.canvas_length // 2]

    def drawn(k: int) -> dict[str, torch.Tensor]:
        runs = [(_continuation(lm, params.replace(seed=s, sc_top_k=k)),
                 [_infill_ids(lm, case, params.replace(seed=s, sc_top_k=k)) for case in usable]) for s in seeds]
        return {"continuation": torch.cat([c for c, _ in runs]),
                "infill": torch.cat([ids for _, infills in runs for ids in infills])}

    exact = drawn(0)
    return {name: {what: float((ids == exact[what]).float().mean()) for what, ids in drawn(k).items()}
            for name, k in arms(ks).items() if k}


def scores(lm, cases: list, params, baselines, ks: list[int], candidates: int = 4, windows: int = 32) -> dict:
    """Per arm, on the same cases: the self-conditioned held-out loss by noise level (over
    ``windows`` held-out windows), infill exact match per kind, and per candidate kind the
    shown candidate's exact match and compile rate (the engine's ranking, token healing on)."""
    out = {}
    multi = [c for c in cases if c.kind in quality.CANDIDATE_KINDS]
    for name, k in arms(ks).items():
        p = params.replace(sc_top_k=k)
        infill = quality.infill_scores(lm, cases, p, baselines)
        shown = quality.candidate_scores(lm, multi, p, baselines, candidates) if multi else {}
        out[name] = {"loss": quality.denoising_loss(lm, windows=windows, self_conditioning=k),
                     "exact": {kind: r["model"] for kind, r in infill.items() if r["n"]},
                     "shown": {kind: {"exact": r["healed"]["exact valid first"],
                                      "compiles": r["healed"]["compiles valid first"], "n": r["healed"]["n"]}
                               for kind, r in shown.items() if r["healed"]["n"]}}
    return out


def speed(lm, ks: list[int], steps: int = 48, seeds=(0, 1, 2), repeats: int = 2) -> dict:
    """Seconds of a one-canvas continuation of ``steps`` steps (the fused sampler) per arm,
    arms interleaved in turn; median, min–max, and exact / arm (above 1: the arm is faster)."""
    import torch

    torch.set_grad_enabled(False)
    names = arms(ks)
    times: dict[str, list[float]] = {name: [] for name in names}
    order = list(names.items())
    _continuation(lm, lm.defaults.replace(steps=4, seed=0))  # warm-up
    for r in range(repeats):
        for seed in seeds:
            for name, k in order[r % len(order):] + order[: r % len(order)]:
                t = time.perf_counter()
                _continuation(lm, lm.defaults.replace(steps=steps, seed=seed, sc_top_k=k))
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"steps": steps, "median_s": med, "min_max_s": {k: [min(v), max(v)] for k, v in times.items()},
            "speed_ratio_vs_exact": {k: med["exact"] / v for k, v in med.items()}}


def table(report: dict, agree: dict) -> str:
    """The report as Markdown: one row per arm."""
    first = next(iter(report.values()))
    levels, kinds, shown = list(first["loss"]), list(first["exact"]), list(first["shown"])
    head = (["arm", "agreement continuation", "agreement infill"] + [f"loss @ {t}" for t in levels]
            + [f"exact {k}" for k in kinds] + [f"{k}: shown exact / compiles" for k in shown])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in report.items():
        a = agree.get(name, {"continuation": 1.0, "infill": 1.0})
        cells = [name, f"{100 * a['continuation']:.1f}%", f"{100 * a['infill']:.1f}%"]
        cells += [f"{r['loss'][t]:.3f}" for t in levels] + [f"{100 * r['exact'][k]:.1f}%" for k in kinds]
        cells += [f"{100 * r['shown'][k]['exact']:.0f}% / {100 * r['shown'][k]['compiles']:.0f}%" for k in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
