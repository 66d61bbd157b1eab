"""Benchmarks: engine speed against transformers, load time, held-out quality; memory plans.

Results print as a Markdown table (or JSON with --json) ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse

from dgterm.bench.quality import KINDS  # torch-free
from dgterm.commands.arguments import whole, whole_list
from dgterm.engine.args import EngineArgs


def kinds(text: str) -> list[str]:
    got = [k.strip() for k in text.split(",")]
    bad = [k for k in got if k not in KINDS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown kind {bad[0]!r}: give some of {', '.join(KINDS)}")
    return got


def add_arguments(p):
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    s = sub.add_parser("speed", help="engine vs model.generate, event-stream overhead, load time")
    s.add_argument("--steps", type=whole_list, default=[16, 48], help="comma-separated step counts")
    s.add_argument("--repeats", type=whole(1), default=3)
    s.add_argument("--no-compile", dest="compiled", action="store_false",
                   help="skip the compiled step's row (torch.compile's warm-up takes minutes on a CPU)")
    s.add_argument("--no-vocab", dest="vocab", action="store_false",
                   help="skip the vocabulary's share at the 26B-A4B's sizes (needs about 4 GiB)")
    q = sub.add_parser("quality", help="held-out denoising loss, infill exact match vs baselines")
    q.add_argument("-n", type=whole(1), default=100, help="cases per kind")
    q.add_argument("--seed", type=whole(0), default=0)
    q.add_argument("--sweep", action="store_true", help="also try a grid of sampler settings on a small sample")
    q.add_argument("--kinds", type=kinds, default=list(KINDS),
                   help=f"comma-separated kinds of infill case (default {','.join(KINDS)})")
    q.add_argument("--candidates", type=whole(1), default=4,
                   help="candidates per line and expression case for the compile and leading-space rates "
                        "(default %(default)s)")
    q.add_argument("--healing", choices=("on", "off", "both"), default="on",
                   help="token healing at span edges; both: each case with and without (default %(default)s)")
    q.add_argument("--ranking", action="store_true",
                   help="also: score spread over 10 seeds and ranking vs compile success, scorer before/after")
    q.add_argument("--sc-top-k", type=whole_list, metavar="K,...",
                   help="instead: exact self-conditioning against its top-K approximation for each K, side by side "
                        "on the same cases (agreement, self-conditioned loss, exact match, compile rate, seconds)")
    v = sub.add_parser("serve", help="dgterm serve: 1, 4, 8 concurrent clients; server vs in-process")
    v.add_argument("--steps", type=whole(1), default=16)
    v.add_argument("--repeats", type=whole(1), default=3)
    mem = sub.add_parser("memory", help="the memory planner against the measured peak of whole runs")
    for sp in (s, q, v, mem):  # the model flags of every command (config, DGTERM_*), no sampler flags
        EngineArgs.add_cli_args(sp, sampler=False, remote=False)
        sp.add_argument("--json", action="store_true")
    m = sub.add_parser("plans", help="the memory each quantization plan needs, component by component")
    m.add_argument("model", nargs="?", default="diffusiongemma-26b-a4b",
                   help="a memory profile, a checkpoint directory, 'bundled' or a cached Hugging Face id")
    m.add_argument("--context", type=whole(1), default=8192, help="tokens of context (default %(default)s)")
    m.add_argument("--candidates", type=whole(1), default=1)
    m.add_argument("--json", action="store_true")


def local_engine_args(args) -> EngineArgs:
    """The model a benchmark measures: the one loaded in this process, whatever DGTERM_SERVER says."""
    return EngineArgs.from_cli_args(args).replace(server="")


def run(args) -> int:
    import json

    if args.bench == "plans":
        from dgterm.engine.local import quant
        from dgterm.engine.local.quant.export import table

        plans = quant.all_plans(args.model, args.context, args.candidates)
        print(json.dumps([p.as_dict() for p in plans], indent=2) if args.json else table(plans))
        return 0
    if args.bench == "speed":
        from dgterm.bench import speed

        engine_args = local_engine_args(args)
        first = speed.load_and_first_run(engine_args)
        lm = engine_args.load()
        rows = speed.compare(lm, args.steps, repeats=args.repeats)
        many = speed.candidates_long(lm, repeats=args.repeats)
        long = speed.prefill_long(lm, repeats=args.repeats)
        alone = speed.sampler_alone(repeats=args.repeats)
        profiles = [speed.profile_run(lm, 1, None, max(args.steps)), speed.profile_run(lm, 4, 4000, 16)]
        compiled = speed.compiled_vs_eager(lm, max(args.steps), repeats=args.repeats) if args.compiled else None
        share = None
        if args.vocab:
            from dgterm.bench.vocab import vocab_share

            share = vocab_share()
        if args.json:
            print(json.dumps({"load": first, "compare": rows, "candidates": many, "prefill": long, "sampler": alone,
                              "profile": profiles, "compiled": compiled, "vocab": share}, indent=2))
            return 0
        print_speed(first, rows, many, long, alone, profiles)
        print_step(compiled, share)
        return 0

    if args.bench == "memory":
        from dgterm.bench import memory

        lm = local_engine_args(args).load()
        rows = [memory.against_planner(lm, *shape) for shape in memory.SHAPES]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print("| prompt tokens | candidates | windows | sampler | measured MiB | planned MiB | planned / measured |")
        print("|---:|---:|---:|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['prompt']:,} | {r['candidates']} | {r['windows']} | {r['sampler']} | "
                  f"{r['measured'] / 2**20:.1f} | {r['planned'] / 2**20:.1f} | {r['planned'] / r['measured']:.3f} |")
        return 0

    if args.bench == "serve":
        from dgterm.bench import serve

        report = serve.measure(local_engine_args(args), args.steps, repeats=args.repeats)
        if args.json:
            print(json.dumps(report, indent=2))
            return 0
        print(f"one client, {report['steps']} steps, one canvas: in-process {report['in_process_s']:.3f} s, "
              f"through dgterm serve {report['server_s']:.3f} s ({100 * report['overhead']:+.1f}%), "
              f"without frames {report['server_no_frames_s']:.3f} s ({100 * report['overhead_no_frames']:+.1f}%)\n")
        print("| clients | wall s | tok/s |")
        print("|---|---|---|")
        for row in report["concurrent"]:
            print(f"| {row['clients']} | {row['wall_s']:.3f} | {row['tok_per_s']:.0f} |")
        print(f"\n4 sequential requests: {report['sequential_4_tok_per_s']:.0f} tok/s; "
              f"4 concurrent / 4 sequential: {report['four_vs_sequential']:.2f}x")
        return 0

    from tqdm import tqdm

    from dgterm.bench import quality, refining

    lm = local_engine_args(args).load()
    cases = quality.sample_cases(lm.tokenizer, args.n, args.seed, kinds=args.kinds)
    baselines = quality.Baselines.from_training_data(lm.tokenizer)
    params = lm.defaults.replace(seed=args.seed)
    if args.sc_top_k:
        return top_k_report(lm, cases, params, baselines, args)
    healing = {"on": (True,), "off": (False,), "both": (False, True)}[args.healing]
    report = {"denoising_loss": quality.denoising_loss(lm)}
    with tqdm(total=len(cases), desc="infill", leave=False) as bar:
        report["infill"] = quality.infill_scores(lm, cases, params, baselines, bar.update, healing)
    multi = [c for c in cases if c.kind in quality.CANDIDATE_KINDS]
    if multi:
        with tqdm(total=len(multi), desc=f"{args.candidates} candidates", leave=False) as bar:
            report["candidates"] = quality.candidate_scores(lm, multi, params, baselines, args.candidates, healing,
                                                            bar.update)
        with tqdm(total=len(multi), desc="refine", leave=False) as bar:
            report["refine"] = refining.refine_scores(lm, multi, params, progress=bar.update)
    if args.sweep:
        report["sweep"] = quality.sweep(lm, cases[:: max(1, len(cases) // 60)], baselines)
    if args.ranking:
        with tqdm(total=len(multi), desc="ranking", leave=False) as bar:
            report["ranking"] = quality.ranking(lm, multi, params, args.candidates, progress=bar.update)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("| noise level | " + " | ".join(f"{t:.1f}" for t in report["denoising_loss"]) + " |")
    print("|---" * (len(report["denoising_loss"]) + 1) + "|")
    print("| loss (nats) | " + " | ".join(f"{v:.3f}" for v in report["denoising_loss"].values()) + " |\n")
    who = [k for k in next(iter(report["infill"].values())) if k != "n"]
    print("| infill exact match | n | " + " | ".join(who) + " |")
    print("|---" * (len(who) + 2) + "|")
    for kind, r in report["infill"].items():
        if r["n"]:
            print(f"| {kind} | {r['n']} | " + " | ".join(f"{100 * r[w]:.1f}%" for w in who) + " |")
    per_candidate = [(k, h, r) for k, arms in report.get("candidates", {}).items() for h, r in arms.items() if r["n"]]
    if per_candidate:
        names = list(quality.RANKINGS)
        print(f"\n{args.candidates} candidates per case; the shown one chosen by "
              + ", ".join(f"{i + 1}. {name}" for i, name in enumerate(names)) + ".\n")
        print("| kind | token healing | n | exact 1 / 2 / 3 | exact any | compiles 1 / 2 / 3 | compiles any "
              "| leading space | copy exact | copy compiles |")
        print("|---" * 10 + "|")
        for kind, heal, r in per_candidate:
            def pct(*keys, r=r):
                return " / ".join(f"{100 * r[k]:.0f}%" for k in keys)
            print(f"| {kind} | {heal} | {r['n']} | {pct(*(f'exact {m}' for m in names))} | {pct('exact any')} "
                  f"| {pct(*(f'compiles {m}' for m in names))} | {pct('compiles any')} | {pct('leading space')} "
                  f"| {pct('copy exact')} | {pct('copy compiles')} |")
    refined = [(k, r) for k, r in report.get("refine", {}).items() if r["n"]]
    if refined:
        print(f"\none infill, then one refine at {refined[0][1]['below']}: pseudo-log-likelihood per token "
              "(nats, higher is likelier) and compile rate\n")
        print("| kind | n | re-noised | changed | PLL original | PLL infill | PLL refined | compiles infill "
              "| compiles refined |")
        print("|---" * 9 + "|")
        for kind, r in refined:
            pll = [f"{r[k]:.2f}" if r[k] is not None else "–" for k in ("pll original", "pll before", "pll after")]
            print(f"| {kind} | {r['n']} | {100 * r['renoised']:.0f}% | {100 * r['changed']:.0f}% | "
                  + " | ".join(pll) + f" | {100 * r['compiles before']:.0f}% | {100 * r['compiles after']:.0f}% |")
    if "ranking" in report:
        print_ranking(report["ranking"])
    sweep = report.get("sweep", [])
    if sweep:
        columns = list(sweep[0])
        print("\n| " + " | ".join(columns) + " |")
        print("|---" * len(columns) + "|")
        for row in sweep:
            print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return 0


def top_k_report(lm, cases, params, baselines, args) -> int:
    """``bench quality --sc-top-k``: every arm on the same cases and seeds (dgterm.bench.self_conditioning)."""
    import json

    from dgterm.bench import self_conditioning as sc

    report = {"arms": sc.scores(lm, cases, params, baselines, args.sc_top_k, args.candidates),
              "agreement": sc.agreement(lm, cases, params, args.sc_top_k),
              "speed": sc.speed(lm, args.sc_top_k, repeats=2)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(sc.table(report["arms"], report["agreement"]))
    s = report["speed"]
    print(f"\n{s['steps']}-step continuation, one canvas, arms in turn: "
          + ", ".join(f"{k} {spread(s['median_s'][k], s['min_max_s'][k])} s ({s['speed_ratio_vs_exact'][k]:.2f}×)"
                      for k in s["median_s"]))
    return 0


def print_ranking(r: dict) -> None:
    """The scorer before and after issue 28, on the expression cases."""
    print(f"\nscores of {r['n']} expression infills, {r['candidates']} candidates each ({r['pairs']} pairs of a "
          f"candidate that compiles and one that does not):\n")
    print(f"| scorer | score spread over {r['seeds']} seeds (nats) | concordance with compiling "
          "| likeliest compiles |")
    print("|---|---|---|---|")
    print(f"| before: 1 draw, noise per candidate and seed | {r['spread before']:.3f} "
          f"| {100 * r['concordance before']:.0f}% | {100 * r['top compiles before']:.0f}% |")
    print(f"| after: shared draws (pll.DRAWS), fixed scoring seed | {r['spread after']:.3f} "
          f"(scoring seed varied: {r['spread after, scoring seed varied']:.3f}) "
          f"| {100 * r['concordance after']:.0f}% | {100 * r['top compiles after']:.0f}% |")


def spread(median: float, min_max: list[float]) -> str:
    """``median (min–max)`` in seconds."""
    return f"{median:.3f} ({min_max[0]:.3f}–{min_max[1]:.3f})"


def print_speed(first, rows, many, long, alone, profiles) -> None:
    """The speed report as markdown: medians with min–max, ratios from the same run."""
    print(f"load after imports: {first['load_s']:.2f} s; 128-token continuation at defaults: "
          f"{first['continue_128_s']:.2f} s (median of 3)\n")
    print("| steps | generate s | engine (reference sampler) s | fused s | engine/generate | fused/generate "
          "| event overhead | draft overhead | tok/s generate | tok/s fused | tokens/forward | identical |")
    print("|---" * 12 + "|")
    for r in rows:
        m, mm, t = r["median_s"], r["min_max_s"], r["tok_per_s"]
        print(f"| {r['steps']} | {spread(m['generate'], mm['generate'])} | {spread(m['engine'], mm['engine'])} "
              f"| {spread(m['fused'], mm['fused'])} | {r['speed_ratio_engine_vs_generate']:.2f}× "
              f"| {r['speed_ratio_fused_vs_generate']:.2f}× | {100 * r['event_overhead']:+.1f}% "
              f"| {100 * r['draft_overhead']:+.1f}% | {t['generate']:.0f} | {t['fused']:.0f} "
              f"| {r['tokens_per_forward']['fused']:.2f} | {r['identical_tokens']} |")
    m, mm = many["median_s"], many["min_max_s"]
    print(f"\n{many['candidates']} candidates, {many['prompt_tokens']:,}-token prompt, {many['steps']} steps: "
          f"generate on the same batch {spread(m['generate'], mm['generate'])} s, fused engine "
          f"{spread(m['fused'], mm['fused'])} s: {many['speed_ratio_fused_vs_generate']:.2f}× "
          f"(then likelihood scoring {many['scoring_s']:.3f} s)")
    m, mm, peak = long["prefill_median_s"], long["prefill_min_max_s"], long["peak_bytes"]
    print(f"\n{long['prompt_tokens']:,}-token prompt: prefill in one piece "
          f"{spread(m['one piece'], mm['one piece'])} s, "
          f"{peak['one piece'] / 2**20:.0f} MiB; in chunks {spread(m['chunked'], mm['chunked'])} s, "
          f"{peak['chunked'] / 2**20:.0f} MiB (peak of the run); {long['speed_ratio']:.2f}× faster, "
          f"{long['memory_ratio']:.1f}× less memory, identical tokens: {long['identical_tokens']}")
    m, mm = alone["median_s"], alone["min_max_s"]
    print(f"\nsampler alone, {alone['shape'][0]} × {alone['shape'][1]:,} float32: reference "
          f"{spread(m['reference'], mm['reference'])} s, fused {spread(m['fused'], mm['fused'])} s: "
          f"{alone['speed_ratio_fused_vs_reference']:.1f}×")
    parts = list(profiles[0]["share"])
    print("\nwhere a task's time goes (cProfile, one run each):\n")
    print("| candidates | prompt tokens | steps | whole s | " + " | ".join(parts) + " |")
    print("|---" * (4 + len(parts)) + "|")
    for p in profiles:
        print(f"| {p['candidates']} | {p['prompt_tokens']:,} | {p['steps']} | {p['whole_s']:.3f} | "
              + " | ".join(f"{p['seconds'][k]:.3f} ({100 * p['share'][k]:.0f}%)" for k in parts) + " |")


def print_step(compiled, share) -> None:
    """The compiled step against the eager one, and the vocabulary's share at real sizes."""
    if compiled:
        m, mm = compiled["median_s"], compiled["min_max_s"]
        print(f"\ncompiled step (--compile), {compiled['steps']} steps, after a warm-up of "
              f"{compiled['warmup_s']:.1f} s: eager {spread(m['eager'], mm['eager'])} s, eager static "
              f"{spread(m['static'], mm['static'])} s, compiled {spread(m['compiled'], mm['compiled'])} s: "
              f"{compiled['speed_ratio_compiled_vs_eager']:.2f}× the eager step "
              f"(identical tokens: {compiled['identical_tokens']})")
    if share:
        print(f"\nvocabulary's share of a step at the 26B-A4B's sizes ({share['rows']} canvas rows, "
              f"{share['context']:,}-token context, {share['dtype']}): {100 * share['vocab_share']:.1f}% of the "
              f"time on this machine ({100 * share['vocab_share_before']:.1f}% with the softmax's "
              f"{100 * share['subnormal_share']:.0f}% subnormal probabilities unfloored, at temperature "
              f"{share['temperature']}), {100 * share['vocab_share_flops']:.1f}% of the FLOPs; "
              + ", ".join(f"{k} {v:.3f} s" for k, v in share["vocab_s"].items())
              + f" (unfloored {share['vocab_s_before']['self-conditioning']:.3f} s)"
              + "; layers " + ", ".join(f"{k} {v:.3f} s" for k, v in share["layer_s"].items()))
        a = share["after"]
        print(f"after, with top-{a['sc_top_k']} self-conditioning (--sc-top-k, approximate): "
              f"{100 * a['vocab_share']:.1f}% of the time, {100 * a['vocab_share_flops']:.1f}% of the FLOPs; "
              + ", ".join(f"{k} {v:.3f} s" for k, v in a["vocab_s"].items()))
