#!/usr/bin/env python
"""GPU check of the quantized runtime: DiffusionGemma 26B-A4B, random weights, one GPU.

    python scripts/gpu_quant_bench.py                    # H200: nf4 and bf16, < 8 minutes
    python scripts/gpu_quant_bench.py --out bench.json   # also write the numbers as JSON
    python scripts/gpu_quant_bench.py --profile bundled --device cpu --context 64 --steps 2,3 \
        --compile eager  # dry run (dynamo's eager backend: the graph is captured, nothing generated)

For each plan it builds the full-size model from runtime/profiles/<profile>/config.json
on the one device (no checkpoint needed: random N(0, 0.02) weights, quantized on the GPU
with the loader's own code), then

* compares the weights' bytes on the device (``torch.cuda.memory_allocated``) with the
  planner's ``weights``, and the peak of a run (``max_memory_allocated``: prefill of
  ``--context`` tokens, then one 256-token canvas) with the planner's ``total`` at that
  context: both must agree within 5 %;
* times one canvas at 16 and at 48 denoising steps with the fused sampler (the default) and
  the reference one (random weights never stop early, so every step runs): tokens/s, ms
  per decoder forward, tokens per forward, and the time to the first canvas (prefill, one
  forward, one sampler step: what a user waits for before anything is painted);
* times the compiled decoder step (``--compile``, the static context of
  ``dgterm.engine.local.static``; default backends inductor and cudagraphs, the latter a CUDA
  graph of the whole step) against the eager one, fused sampler, after a warm-up timed apart
  (bf16 only: the quantized experts' forward branches on the data, so it is not one graph);
* times the sampler alone at the real shape (256 × 262,144 float32 logits on the device):
  the Triton kernel against the reference (``dgterm.bench.speed.sampler_alone``).

Then the kernel self-check table (``dgterm doctor --selftest``'s: each Triton kernel against
its torch reference on this device), and decode with the experts of 0, some and ``auto``
layers in pinned host RAM (``--offload 0,4,auto``; ``auto``: the fewest layers that fit a
``--offload-card`` of 16 GiB), measured beside the offload planner's estimate of a step.

Before that, smoke checks that need a GPU: the Triton NF4 kernel against its torch twin
in bf16, and ``loading.load(..., quant="nf4")`` of the bundled (trained) checkpoint onto
``cuda:N``: logits against the dense model, the Triton path against the torch twin, a
generation, and no allocation on any other GPU.

It prints a markdown table for docs/benchmarks.md and exits 1 if a memory check fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dgterm.engine.local import quant  # noqa: E402
from dgterm.engine.local.quant import loader  # noqa: E402
from dgterm.engine.local.quant.modules import QuantWeight  # noqa: E402
from dgterm.engine.local.quant.shards import CHUNK_BYTES  # noqa: E402

GiB = 1 << 30


def random_init(model, std: float = 0.02, seed: int = 0) -> None:
    """Fill a built model with random weights (the benchmark's stand-in for a checkpoint):
    the model's own init for dense modules, N(0, std) quantized in place for quantized ones."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, QuantWeight):
                lead = module.shape[0] if len(module.shape) == 3 else None
                if lead is None:
                    module.load_dense_(torch.randn(module.shape, device=module.device) * std)
                else:
                    per = max(1, CHUNK_BYTES // (4 * module.shape[1] * module.shape[2]))
                    for e in range(0, lead, per):
                        n = min(per, lead - e)
                        w = torch.randn((n, *module.shape[1:]), device=module.device) * std
                        module.load_dense_(w, index=slice(e, e + n))
            else:
                try:
                    model._init_weights(module)
                except Exception:  # e.g. Gemma 4's axial vision rope: its table was computed by build()
                    if not getattr(module, "_non_persistent_buffers_set", None):
                        raise


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def allocated(device) -> int:
    return torch.cuda.memory_allocated(device) if device.startswith("cuda") else 0


def smoke(device: str) -> dict:
    """Triton kernel vs twin on the GPU; quantized load of a saved checkpoint onto the device."""
    from dgterm.engine import tasks
    from dgterm.engine.local import loading
    from dgterm.engine.local.kernels import grouped
    from dgterm.engine.local.kernels import nf4 as K
    from dgterm.engine.local.kernels.selfcheck import triton_available

    out = {}
    if device.startswith("cuda") and triton_available():
        torch.manual_seed(0)
        for name, (e, n, k, rows) in {"experts": (128, 1408, 2816, 2048), "down": (128, 2816, 704, 2048),
                                      "prefill": (128, 1408, 2816, 65536), "linear": (1, 4096, 2816, 300)}.items():
            w = torch.randn(e, n, k, device=device, dtype=torch.bfloat16) * 0.02
            q, a = K.quantize_nf4(w)
            del w
            idx = torch.randint(0, e, (rows,), device=device).sort().values
            offsets = torch.zeros(e + 1, dtype=torch.long, device=device)
            offsets[1:] = torch.bincount(idx, minlength=e).cumsum(0)
            x = torch.randn(rows, k, device=device, dtype=torch.bfloat16)
            twin = K.grouped_matmul_nf4_torch(x, offsets, q, a, k)
            tri = grouped.grouped_matmul_nf4(x, offsets, q, a, k, impl="triton")
            err = ((tri.float() - twin.float()).norm() / twin.float().norm()).item()
            times = {}
            for impl in ("torch", "triton"):
                grouped.grouped_matmul_nf4(x, offsets, q, a, k, impl=impl)
                sync(device)
                t = time.perf_counter()
                for _ in range(5):
                    grouped.grouped_matmul_nf4(x, offsets, q, a, k, impl=impl)
                sync(device)
                times[impl] = (time.perf_counter() - t) / 5 * 1e3
            out[f"kernel_{name}"] = {"rel_err": err, "ms_torch": times["torch"], "ms_triton": times["triton"]}
            log(f"kernel {name}: rel err {err:.2e}, torch twin {times['torch']:.2f} ms, "
                f"triton {times['triton']:.2f} ms")
            assert err < 2e-2, f"Triton kernel disagrees with its twin ({name}: {err})"
            del q, a, x, twin, tri
    # The trained bundled model: a random MoE routes by noise, so any perturbation flips experts.
    dt = "bf16" if device.startswith("cuda") else "fp32"
    ref = loading.load("bundled", device=device, dtype=dt)
    lm = loading.load("bundled", device=device, dtype=dt, quant="nf4")
    torch.manual_seed(1)
    ids = torch.randint(0, ref.vocab_size, (2, 64), device=lm.device)
    canvas = torch.randint(0, ref.vocab_size, (2, ref.canvas_length), device=lm.device)

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids, decoder_input_ids=canvas).logits.float()

    a, b = logits(ref.model), logits(lm.model)
    rel = ((a - b).norm() / a.norm()).item()
    top1 = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    previous = os.environ.get("DGTERM_KERNELS")
    os.environ["DGTERM_KERNELS"] = "torch"
    try:
        c = logits(lm.model)
    finally:
        os.environ.pop("DGTERM_KERNELS") if previous is None else os.environ.__setitem__("DGTERM_KERNELS", previous)
    twin = ((b - c).norm() / c.norm()).item()
    result = tasks.continue_text(lm, "def f(x):", lm.defaults.replace(seed=0, max_new_tokens=64)).collect()
    others = []
    if device.startswith("cuda"):
        mine = torch.device(lm.device).index
        others = [i for i in range(torch.cuda.device_count()) if i != mine and torch.cuda.memory_allocated(i)]
    out["load"] = {"device": lm.device, "logits_rel_err_vs_dense": rel, "top1_vs_dense": top1,
                   "kernel_vs_twin_rel_err": twin, "generated": int(result.run.generated.sum()),
                   "other_gpus_with_allocations": others}
    log(f"bundled nf4 on {lm.device}: logits vs dense {rel:.2%} (top-1 {top1:.1%}), Triton vs twin path "
        f"{twin:.2e}, other GPUs touched: {others or 'none'}")
    assert not others, f"allocations on other GPUs: {others}"
    assert rel < 0.05 and twin < 0.02, out["load"]
    del ref, lm
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def bench_plan(config, plan: str, device: str, dtype, context: int, steps_list, seed: int = 0,
               backends=()) -> dict:
    from dgterm.engine import events
    from dgterm.engine.local import denoise
    from dgterm.engine.local.loading import LoadedModel
    from dgterm.engine.params import SamplerParams

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    base = allocated(device)
    eb = torch.empty((), dtype=dtype).element_size()
    planned = quant.plan_memory(config, plan, context=context, candidates=1, dtype=eb, sampler="fused")
    t = time.perf_counter()
    model = loader.build(config, plan, device, dtype)
    random_init(model, seed=seed)
    sync(device)
    init_s = time.perf_counter() - t
    weights = allocated(device) - base
    log(f"[{plan}] built and initialized in {init_s:.1f} s: {weights / GiB:.2f} GiB on {device} "
        f"(planned {planned.weights / GiB:.2f} GiB)")
    lm = LoadedModel(model=model, tokenizer=None, path=Path("."), spec=f"random:{plan}", device=device, dtype=dtype,
                     quant=plan, defaults=SamplerParams())
    vocab = config.text_config.vocab_size
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, vocab, (context,), generator=g).tolist()

    def run(steps, mode="fused", backend=None):
        params = SamplerParams(steps=steps, seed=seed, max_new_tokens=config.canvas_length, mode=mode)
        task = denoise.denoise(lm, [events.Window(prefix=prompt)], params, candidates=1, stop_at_eos=False,
                               backend=backend)
        t, first = time.perf_counter(), None
        for _ in task:
            if first is None:
                sync(device)
                first = time.perf_counter() - t
        sync(device)
        return task.result, first

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    warm, _ = run(2)  # prefill + compile/warm-up; its peak is the memory check (the planner's fused sampler)
    peak = (torch.cuda.max_memory_allocated(device) - base) if device.startswith("cuda") else 0
    run(2, "reference")
    row = {"plan": plan, "context": context, "canvas": config.canvas_length, "init_seconds": init_s,
           "weights_planned": planned.weights, "weights_measured": weights, "peak_planned": planned.total,
           "peak_measured": peak,
           "prefill_seconds": warm.timings.get("encode", 0.0), "speed": {}}
    if plan != "bf16":  # the quantized experts branch on the data (dgterm.engine.local.quant.modules): no whole graph
        log(f"[{plan}] compiled step: not compiled (the quantized experts' forward is not one graph)")
        backends = ()
    for backend in backends:  # the warm-up: compiling the step's one shape
        r, _ = run(2, "fused", backend)
        row[f"warmup_s_{backend}"] = r.timings.get("warm-up", 0.0)
        log(f"[{plan}] compiled step ({backend}): warm-up {row[f'warmup_s_{backend}']:.1f} s")
    arms = [("fused", None), ("reference", None), *(("fused", b) for b in backends)]
    for steps in steps_list:
        for mode, backend in arms:
            r, first = run(steps, mode, backend)
            decode = r.elapsed - r.timings.get("encode", 0.0)
            fwd = int(r.forwards.sum())
            mode = mode if backend is None else f"compiled-{backend}"
            row["speed"][f"{mode}@{steps}"] = {
                "tokens_per_s": config.canvas_length / decode, "ms_per_forward": decode / fwd * 1e3, "forwards": fwd,
                "tokens_per_forward": r.tokens_per_forward[0], "first_canvas_s": first}
            log(f"[{plan}] {mode} sampler, {steps} steps: {config.canvas_length / decode:.1f} tok/s, "
                f"{decode / fwd * 1e3:.1f} ms/forward, first canvas after {first:.2f} s")
    if device.startswith("cuda"):
        row["reserved"] = torch.cuda.memory_reserved(device)
        row["peak_all_runs"] = torch.cuda.max_memory_allocated(device) - base
    lm = model = None  # free the weights before the next plan (run() holds lm)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def to_host(model, layers: int, mode: str) -> int:
    """Keep the experts of the last ``layers`` layers in (pinned, on CUDA) host RAM, as
    ``--offload-experts`` loads them, reached by ``mode``; the bytes they hold there."""
    from dgterm.engine.local.quant.loader import _layer_of
    from dgterm.engine.local.quant.modules import QuantizedExperts

    total = model.config.text_config.num_hidden_layers
    held, seen = 0, set()
    for name, m in model.named_modules():
        if isinstance(m, QuantizedExperts) and _layer_of(name) >= total - layers and id(m) not in seen:
            seen.add(id(m))
            m.offload = mode
            for w in (m.gate_up_proj, m.down_proj):
                for k, b in list(w._buffers.items()):
                    if b is not None and b.device.type != "cpu":
                        w._buffers[k] = b.to("cpu").pin_memory() if torch.cuda.is_available() else b.to("cpu")
                held += w.nbytes()
    return held


def bench_offload(config, device: str, dtype, context: int, steps: int, layers_list, card_bytes: int,
                  seed: int = 0) -> list[dict]:
    """Decode one canvas with the experts of each number of layers in host RAM (streamed, and
    run on the CPU), beside the planner's estimate for this device. One model: the layers
    move to the host in increasing numbers."""
    from dgterm.engine import events
    from dgterm.engine.local import denoise
    from dgterm.engine.local.loading import LoadedModel
    from dgterm.engine.local.quant import offload
    from dgterm.engine.params import SamplerParams

    eb = torch.empty((), dtype=dtype).element_size()
    card = (offload.card_for(torch.cuda.get_device_properties(device).total_memory) if device.startswith("cuda")
            else offload.card_for(card_bytes))
    resolved = sorted(((offload.fewest_layers(config, "nf4", card_bytes, context, 1, eb) or 0) if a == "auto"
                       else int(a), str(a)) for a in layers_list)
    gc.collect()
    model = loader.build(config, "nf4", device, dtype)
    random_init(model, seed=seed)
    lm = LoadedModel(model=model, tokenizer=None, path=Path("."), spec="random:nf4", device=device, dtype=dtype,
                     quant="nf4", defaults=SamplerParams())
    prompt = torch.randint(3, config.text_config.vocab_size, (context,),
                           generator=torch.Generator().manual_seed(seed)).tolist()
    rows = []
    for n, asked in resolved:
        for mode in (("stream", "cpu") if n else ("resident",)):
            held = to_host(model, n, mode)
            params = SamplerParams(steps=steps, seed=seed, max_new_tokens=config.canvas_length)
            task = denoise.denoise(lm, [events.Window(prefix=prompt)], params, candidates=1, stop_at_eos=False)
            for _ in task:
                pass
            sync(device)
            r = task.result
            decode = r.elapsed - r.timings.get("encode", 0.0)
            fwd = int(r.forwards.sum())
            est = offload.step_estimate(config, quant.plan_memory(config, "nf4", context, 1, eb, offload=n), card)
            rows.append({"asked": asked, "layers": n, "mode": mode, "host_bytes": held,
                         "ms_per_step": decode / fwd * 1e3, "tokens_per_s": config.canvas_length / decode,
                         "estimated_ms_per_step": est.seconds * 1e3, "estimated_mode": est.mode, "card": card.name})
            log(f"[offload {asked}: {n} layers, {mode}] {decode / fwd * 1e3:.1f} ms/step "
                f"(planner: {est.seconds * 1e3:.1f} ms on {card.name}, {est.mode})")
    lm = model = None
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def offload_table(rows, gpu: str) -> str:
    lines = [f"nf4 decode with experts in host RAM on {gpu} (random weights, one canvas)", "",
             "| --offload-experts | layers | how | host RAM | ms/step measured | ms/step planned | tok/s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['asked']} | {r['layers']} | {r['mode']} | {r['host_bytes'] / GiB:.2f} GiB | "
                     f"{r['ms_per_step']:.1f} | {r['estimated_ms_per_step']:.1f} ({r['estimated_mode']}) | "
                     f"{r['tokens_per_s']:.1f} |")
    return "\n".join(lines)


def pct(measured, planned):
    return (measured - planned) / planned * 100 if planned else float("nan")


def table(rows, steps_list, gpu: str, name: str) -> str:
    runs = [f"{mode}@{s}" for s in steps_list for mode in ("fused", "reference")]
    head = ("| plan | weights planned | weights measured | Δ | peak planned | peak measured | Δ | "
            + " | ".join(f"tok/s {r.replace('@', ' @')} steps" for r in runs) + " | ms/forward | first canvas s |")
    lines = [f"{name} (random weights), {gpu}, context {rows[0]['context']} tokens, 1 candidate, "
             f"canvas {rows[0]['canvas']}; `python scripts/gpu_quant_bench.py`", "", head,
             "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(runs) + "---:|---:|"]
    for r in rows:
        speeds = " | ".join(f"{r['speed'][k]['tokens_per_s']:.1f}" for k in runs)
        last = r["speed"][runs[0]]
        lines.append(
            f"| {r['plan']} | {r['weights_planned'] / GiB:.2f} GiB | {r['weights_measured'] / GiB:.2f} GiB | "
            f"{pct(r['weights_measured'], r['weights_planned']):+.1f}% | {r['peak_planned'] / GiB:.2f} GiB | "
            f"{r['peak_measured'] / GiB:.2f} GiB | {pct(r['peak_measured'], r['peak_planned']):+.1f}% | {speeds} | "
            f"{last['ms_per_forward']:.0f} | {last['first_canvas_s']:.2f} |")
    return "\n".join(lines)


def compiled_table(rows, steps_list, backends, gpu: str) -> str:
    """The compiled step against the eager one (fused sampler): tok/s and the ratio."""
    lines = [f"compiled decoder step against the eager one, {gpu} (fused sampler, after the warm-up)", "",
             "| plan | backend | warm-up s | " + " | ".join(f"{s} steps tok/s (× eager)" for s in steps_list) + " |",
             "|---|---|---:|" + "---:|" * len(steps_list)]
    for r in rows:
        for b in backends if f"warmup_s_{backends[0]}" in r else ():
            cells = []
            for s in steps_list:
                mine, eager = r["speed"][f"compiled-{b}@{s}"]["tokens_per_s"], r["speed"][f"fused@{s}"]["tokens_per_s"]
                cells.append(f"{mine:.1f} ({mine / eager:.2f}×)")
            lines.append(f"| {r['plan']} | {b} | {r[f'warmup_s_{b}']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sampler_table(alone: dict, gpu: str) -> str:
    m, mm = alone["median_s"], alone["min_max_s"]
    return (f"sampler alone, {alone['shape'][0]} × {alone['shape'][1]:,} float32 on {gpu}: reference "
            f"{m['reference'] * 1e3:.2f} ms ({mm['reference'][0] * 1e3:.2f}–{mm['reference'][1] * 1e3:.2f}), fused "
            f"{m['fused'] * 1e3:.2f} ms ({mm['fused'][0] * 1e3:.2f}–{mm['fused'][1] * 1e3:.2f}): "
            f"{alone['speed_ratio_fused_vs_reference']:.1f}×")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="diffusiongemma-26b-a4b", help="profile name, config directory or 'bundled'")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--plans", default="nf4,bf16")
    ap.add_argument("--steps", default="16,48")
    ap.add_argument("--context", type=int, default=8192, help="prompt tokens prefilled before the canvas")
    ap.add_argument("--tolerance", type=float, default=5.0, help="allowed planner error, percent")
    ap.add_argument("--no-smoke", action="store_true")
    ap.add_argument("--sampler-shape", default="256,262144", help="rows,vocab of the sampler-alone check")
    ap.add_argument("--compile", default="inductor,cudagraphs",
                    help="torch.compile backends of the compiled step, against the eager one ('' for none)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--offload", default="0,4,auto", help="numbers of layers (or auto) to decode with in host RAM")
    ap.add_argument("--offload-card", default="16GiB", help="the card `auto` plans for")
    ap.add_argument("--offload-steps", type=int, default=8, help="denoising steps of each offload run")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    device = loader.pin_device(a.device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    steps_list = [int(s) for s in a.steps.split(",")]
    results = {"device": device, "gpu": gpu, "torch": torch.__version__}
    if not a.no_smoke:
        results["smoke"] = smoke(device)
    from dgterm.bench import speed

    shape = [int(x) for x in a.sampler_shape.split(",")]
    results["sampler"] = speed.sampler_alone(*shape, repeats=5, device=device)
    log(sampler_table(results["sampler"], gpu))
    from dgterm.commands.doctor_selftest import format_rows
    from dgterm.commands.quantize import parse_size
    from dgterm.engine.local.kernels import selfcheck

    results["selfcheck"] = selfcheck.selftest([torch.device(device)])
    selftest_md = format_rows(results["selfcheck"])
    log(selftest_md)
    config = quant.load_config(a.profile)
    backends = [b for b in a.compile.split(",") if b]
    rows = [bench_plan(config, p, device, dtype, a.context, steps_list, backends=backends) for p in a.plans.split(",")]
    results["rows"] = rows
    layers_list = [x if x == "auto" else int(x) for x in a.offload.split(",") if x]
    results["offload"] = bench_offload(config, device, dtype, a.context, a.offload_steps, layers_list,
                                       parse_size(a.offload_card)) if layers_list else []
    md = (table(rows, steps_list, gpu, a.profile) + "\n\n" + sampler_table(results["sampler"], gpu) + "\n\n"
          + "```\n" + selftest_md + "\n```")
    if results["offload"]:
        md += "\n\n" + offload_table(results["offload"], gpu)
    if backends:
        md += "\n\n" + compiled_table(rows, steps_list, backends, gpu)
    results["markdown"] = md
    ok = True
    if device.startswith("cuda"):
        for r in rows:
            for what in ("weights", "peak"):
                err = pct(r[f"{what}_measured"], r[f"{what}_planned"])
                good = abs(err) <= a.tolerance
                ok &= good
                log(f"[{r['plan']}] {what}: measured vs planned {err:+.1f}% {'ok' if good else 'OUTSIDE'} "
                    f"±{a.tolerance:.0f}%")
    results["ok"] = ok
    results["seconds"] = time.perf_counter() - t0
    print(md)
    print(f"\nplanner within ±{a.tolerance:.0f}%: {'yes' if ok else 'NO'}; total {results['seconds']:.0f} s")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
