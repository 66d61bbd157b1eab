"""Engine speed side by side with transformers' ``model.generate``, in one process.

Each repetition runs, in rotating order, the same prompt, seed and steps through
(a) ``model.generate``, (b) the engine collecting nothing (reference sampler, and
again with the fused sampler), (c) the engine with a
consumer that reads every event (accepted count, mean entropy, the argmax ids: what a
trace or a status line needs), (d) the same plus coloured draft tokens per step (what
a UI paints). Medians
are compared as ratios, so machine noise hits all three alike.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import TYPE_CHECKING

from dgterm.bench.prompts import long_prompt_ids

if TYPE_CHECKING:
    from dgterm.engine.args import EngineArgs

PROMPT = "import os\nimport sys\n\n\ndef main(argv):\n    \"\"\"Parse the arguments and run.\"\"\"\n"


def _prompt_ids(lm):
    tok = lm.tokenizer
    return [tok.bos_token_id] + tok(PROMPT, add_special_tokens=False)["input_ids"]


def run_generate(lm, ids, steps, seed, max_new, rows: int = 1):
    import torch

    torch.manual_seed(seed)
    t = time.perf_counter()
    out = lm.model.generate(torch.tensor([ids] * rows), max_new_tokens=max_new, max_denoising_steps=steps)
    elapsed = time.perf_counter() - t
    new = out.sequences[:, len(ids):]
    return elapsed, int((new != lm.pad_id).sum()), float(out.tokens_per_forward[0]), new[0].tolist()


def run_engine(lm, steps, seed, max_new, consume: str | None, mode: str = "reference", ids=None, candidates=1):
    """One task: (denoising seconds, tokens, tokens per forward, the tokens, scoring seconds).
    The denoising ends with the last step; the likelihood scoring that ranks the
    candidates comes after it (``generate`` has no counterpart) and is timed apart."""
    from dgterm.engine import tasks

    params = lm.defaults.replace(steps=steps, seed=seed, max_new_tokens=max_new, mode=mode)
    if ids:
        task = tasks.continue_ids(lm, ids, params, candidates=candidates)
    else:  # PROMPT, as _prompt_ids tokenizes it for generate
        task = tasks.continue_text(lm, PROMPT, params)
    t = time.perf_counter()
    last = t
    for event in task:
        if consume:
            event.accepted_free(), event.mean_entropy(), event.argmax.tolist()
        if consume == "drafts":
            task.drafts(event)
        last = time.perf_counter()
    scoring = time.perf_counter() - last
    assert task.result is not None  # set when the iteration ends
    run = task.result.run
    import torch

    return last - t, int(run.generated.sum()), run.tokens_per_forward[0], torch.cat(run.canvases, -1).tolist(), scoring


def compare(lm, steps_list=(16, 48), seeds=(0, 1, 2), repeats: int = 3, max_new: int | None = None) -> list[dict]:
    import torch

    torch.set_grad_enabled(False)
    ids = _prompt_ids(lm)
    max_new = max_new or lm.canvas_length
    rows = []
    run_engine(lm, 4, 0, max_new, "drafts")  # warm-up (and the token-text cache)
    run_generate(lm, ids, 4, 0, max_new)
    for steps in steps_list:
        times: dict[str, list[float]] = {k: [] for k in ("generate", "engine", "fused", "engine+events",
                                                           "engine+drafts")}
        tokens = {k: 0 for k in times}
        tpf: dict[str, list[float]] = {k: [] for k in times}
        identical = True
        runners = [
            ("generate", lambda s, steps=steps: run_generate(lm, ids, steps, s, max_new)),
            ("engine", lambda s, steps=steps: run_engine(lm, steps, s, max_new, None)),
            ("fused", lambda s, steps=steps: run_engine(lm, steps, s, max_new, None, "fused")),
            ("engine+events", lambda s, steps=steps: run_engine(lm, steps, s, max_new, "events")),
            ("engine+drafts", lambda s, steps=steps: run_engine(lm, steps, s, max_new, "drafts")),
        ]
        for r in range(repeats):
            for seed in seeds:
                outputs = {}
                order = runners[r % len(runners):] + runners[: r % len(runners)]
                for name, fn in order:
                    elapsed, n, per_forward, new, *_ = fn(seed)
                    times[name].append(elapsed)
                    tokens[name] += n
                    tpf[name].append(per_forward)
                    outputs[name] = new
                identical &= outputs["generate"] == outputs["engine"][0][: len(outputs["generate"])]
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({
            "steps": steps,
            "median_s": med,
            "min_max_s": {k: [min(v), max(v)] for k, v in times.items()},
            "tok_per_s": {k: tokens[k] / sum(times[k]) for k in times},
            "tokens_per_forward": {k: statistics.mean(v) for k, v in tpf.items()},
            "speed_ratio_engine_vs_generate": med["generate"] / med["engine"],
            "speed_ratio_fused_vs_generate": med["generate"] / med["fused"],
            "event_overhead": med["engine+events"] / med["engine"] - 1,
            "draft_overhead": med["engine+drafts"] / med["engine"] - 1,
            "identical_tokens": identical,
        })
    return rows


def candidates_long(lm, candidates: int = 4, tokens: int = 4000, steps: int = 16, repeats: int = 3) -> dict:
    """``candidates`` candidates after a ``tokens``-token prompt, one canvas: ``generate`` on
    the same batch (the prompt repeated per row) against the fused engine, alternating."""
    times: dict[str, list[float]] = {"generate": [], "fused": []}
    scoring = []
    ids = long_prompt_ids(lm, tokens)
    C = lm.canvas_length
    for r in range(repeats):
        pair = [("generate", lambda r=r: run_generate(lm, ids, steps, r, C, candidates)),
                ("fused", lambda r=r: run_engine(lm, steps, r, C, None, "fused", ids, candidates))]
        for name, fn in pair if r % 2 == 0 else pair[::-1]:
            out = fn()
            times[name].append(out[0])
            if name == "fused":
                scoring.append(out[4])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"candidates": candidates, "prompt_tokens": tokens, "steps": steps, "median_s": med,
            "min_max_s": {k: [min(v), max(v)] for k, v in times.items()}, "scoring_s": statistics.median(scoring),
            "speed_ratio_fused_vs_generate": med["generate"] / med["fused"]}


def prefill_long(lm, tokens: int = 8000, steps: int = 4, repeats: int = 3) -> dict:
    """A ``tokens``-token prompt then one canvas: the prefill in one piece (as before chunks)
    against 1,024-token chunks, alternating; prefill seconds, the run's peak of tensor
    memory on top of the weights, and whether the tokens are the same."""
    from dgterm.bench.memory import TensorPeak
    from dgterm.engine import events
    from dgterm.engine.local import denoise, prefill

    ids = long_prompt_ids(lm, tokens)
    params = lm.defaults.replace(steps=steps, seed=0, max_new_tokens=lm.canvas_length, mode="fused")
    arms = {"one piece": tokens, "chunked": prefill.CHUNK}
    times: dict[str, list[float]] = {k: [] for k in arms}
    peaks, outputs = {}, {}

    def run(chunk, meter=None):
        saved, prefill.CHUNK = prefill.CHUNK, chunk
        try:
            with meter or contextlib.nullcontext():
                result = denoise.denoise(lm, [events.Window(prefix=ids)], params).collect()
        finally:
            prefill.CHUNK = saved
        return result

    for r in range(repeats):
        for name in arms if r % 2 == 0 else list(arms)[::-1]:
            result = run(arms[name])
            times[name].append(result.timings["encode"])
            outputs[name] = result.canvases[0].tolist()
    for name, chunk in arms.items():
        meter = TensorPeak()
        run(chunk, meter)
        peaks[name] = meter.peak
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"prompt_tokens": tokens, "prefill_median_s": med,
            "prefill_min_max_s": {k: [min(v), max(v)] for k, v in times.items()},
            "peak_bytes": peaks, "speed_ratio": med["one piece"] / med["chunked"],
            "memory_ratio": peaks["one piece"] / peaks["chunked"],
            "identical_tokens": outputs["one piece"] == outputs["chunked"]}


PROFILED = {"encoder": ("prefill.py", "encode"), "decoder": ("denoise.py", "decoder_logits"),
            "sampler": ("sampler.py", "step"), "scoring": ("scoring.py", "loglik")}


def profile_run(lm, candidates: int = 1, tokens: int | None = None, steps: int = 48) -> dict:
    """Where a whole task's time goes (cProfile, cumulative): the encoder, the decoder
    forwards, the sampler, the likelihood scoring, and the rest (Python between them:
    events, the step loop, ranking). Seconds, and each as a share of the whole."""
    import cProfile
    import pstats

    ids = long_prompt_ids(lm, tokens) if tokens else _prompt_ids(lm)
    run_engine(lm, steps, 0, lm.canvas_length, None, "fused", ids, candidates)  # warm
    profiler = cProfile.Profile()
    t = time.perf_counter()
    profiler.runcall(run_engine, lm, steps, 0, lm.canvas_length, "events", "fused", ids, candidates)
    whole = time.perf_counter() - t
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # pstats' table, not in typeshed

    def cumulative(where, fn):  # seconds in fn, less what the scoring spent in it (counted there)
        return sum(v[3] - sum(c[3] for caller, c in v[4].items() if caller[2] == "loglik")
                   for (file, _, func), v in stats.items() if file.endswith(f"/{where}") and func == fn)

    parts = {name: cumulative(where, fn) for name, (where, fn) in PROFILED.items()}
    parts["rest"] = whole - sum(parts.values())
    return {"candidates": candidates, "prompt_tokens": len(ids), "steps": steps, "whole_s": whole, "seconds": parts,
            "share": {k: v / whole for k, v in parts.items()}}


def load_and_first_run(engine_args: EngineArgs) -> dict:
    """Load time (after imports) of the model ``engine_args`` names and a 128-token continuation at
    default settings."""
    import torch  # noqa: F401  (imports are not part of the load time)
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion  # noqa: F401

    from dgterm.engine import tasks
    from dgterm.engine.local import loading  # noqa: F401  (as the imports above)

    t = time.perf_counter()
    lm = engine_args.load()
    load = time.perf_counter() - t
    times = []
    for seed in range(3):
        t = time.perf_counter()
        tasks.continue_text(lm, PROMPT, lm.defaults.replace(seed=seed, max_new_tokens=128)).collect()
        times.append(time.perf_counter() - t)
    return {"load_s": load, "continue_128_s": statistics.median(times), "continue_128_all": times}


def sampler_alone(rows: int = 256, vocab: int = 262_144, repeats: int = 3, seed: int = 0, device: str = "cpu") -> dict:
    """One sampler step on random logits of the real shape (1 × rows × vocab, float32) on
    ``device`` (the Triton kernel on CUDA): the reference draw against the fused one,
    interleaved, after one warm-up each; medians, min–max and the ratio."""
    import torch

    from dgterm.engine.local.sampler import Sampler
    from dgterm.engine.params import SamplerParams

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    g = torch.Generator(device=device).manual_seed(seed)
    logits = torch.randn(1, rows, vocab, generator=g, device=device) * 4
    times: dict[str, list[float]] = {"reference": [], "fused": []}
    for r in range(repeats + 1):
        for mode in (["reference", "fused"] if r % 2 == 0 else ["fused", "reference"]):
            sampler = Sampler(SamplerParams(mode=mode), vocab, [torch.Generator(device=device).manual_seed(seed)])
            canvas = sampler.initial_canvas(1, rows, device)
            x = logits.clone()  # the fused pass writes in place: each run gets fresh logits
            finished = torch.zeros(1, dtype=torch.bool, device=device)
            sync()
            t = time.perf_counter()
            sampler.step(x, canvas, canvas, None, finished, 24, torch.float32)
            sync()
            if r:  # the first round warms up (Triton compiles its kernel)
                times[mode].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"shape": [rows, vocab], "median_s": med, "min_max_s": {k: [min(v), max(v)] for k, v in times.items()},
            "speed_ratio_fused_vs_reference": med["reference"] / med["fused"]}


def compiled_vs_eager(lm, steps: int = 48, seeds=(0, 1, 2), repeats: int = 1, backend="inductor") -> dict:
    """The decoder step compiled (``--compile``: torch.compile with ``backend`` over the
    static context) against the eager step (the default) and the eager static step, the
    fused sampler, one canvas, rotating order, after the compiled step's warm-up (timed
    apart); whether the compiled tokens are the eager ones."""
    from dgterm.engine import events
    from dgterm.engine.local.denoise import denoise

    arms = {"eager": (False, None), "static": (True, None), "compiled": (True, backend)}

    def run(name, seed):
        params = lm.defaults.replace(steps=steps, seed=seed, max_new_tokens=lm.canvas_length, mode="fused")
        static, compiler = arms[name]
        t = time.perf_counter()
        result = denoise(lm, [events.Window(prefix=_prompt_ids(lm))], params, static=static, backend=compiler).collect()
        return time.perf_counter() - t, result

    _, first = run("compiled", seeds[0])
    warmup = first.timings.get("warm-up", 0.0)
    times: dict[str, list[float]] = {k: [] for k in arms}
    identical = True
    for r in range(repeats):
        for seed in seeds:
            outputs = {}
            names = list(arms)
            for name in names[(r + seed) % 3:] + names[: (r + seed) % 3]:
                elapsed, result = run(name, seed)
                times[name].append(elapsed)
                outputs[name] = result.canvases[0]
            identical &= bool((outputs["compiled"] == outputs["eager"]).all())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"steps": steps, "warmup_s": warmup, "median_s": med,
            "min_max_s": {k: [min(v), max(v)] for k, v in times.items()},
            "speed_ratio_compiled_vs_eager": med["eager"] / med["compiled"],
            "speed_ratio_static_vs_eager": med["eager"] / med["static"], "identical_tokens": identical}
