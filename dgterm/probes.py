"""``dgterm doctor``: probe the setup, then say whether the chosen model can run and how.

Every value in the report comes from a probe on this machine (package metadata, torch's
CUDA queries, /proc/meminfo, the checkpoint on disk, the engine's memory planner on a
``meta`` build of the model); nothing is assumed. :func:`probe` returns the report as a
dict (``--json`` prints it), :func:`format_text` renders it for people.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgterm import __version__
from dgterm.engine.local.checkpoint import QUANTS
from dgterm.errors import DgtermError

if TYPE_CHECKING:
    from dgterm.engine.args import EngineArgs

GiB = 1 << 30
PACKAGES = ("torch", "transformers", "bitsandbytes", "triton")
Report = dict[str, Any]  # a section of the report, as JSON would hold it
# The model's config: a transformers DiffusionGemmaConfig (Any: transformers types its
# ``text_config`` as possibly a dict or None).
Config = Any


def probe(engine_args: EngineArgs, context: int | None = None, gpu_memory: int | None = None) -> Report:
    """The whole report for ``engine_args`` (an :class:`dgterm.engine.args.EngineArgs`).
    ``gpu_memory`` adds a GPU with that many bytes free to the memory table, so "would it
    fit on my card?" has an answer on any machine."""
    settings = engine_args.settings
    report: Report = {"dgterm": __version__,
                      "python": {"version": platform.python_version(), "executable": sys.executable},
                      "packages": {name: _version(name) for name in PACKAGES}}
    report["files"] = _files()
    report["cuda"] = _cuda()
    report["cpu"] = _cpu()
    model, config = _model(settings.model, engine_args.download)
    report["model"] = model
    if config is not None:
        most = config.text_config.max_position_embeddings
        planned = min(context or 8192, most)
        report["memory"] = _memory(config, planned, report["cuda"]["devices"], report["cpu"], gpu_memory)
        if context and context > most:
            report["memory"]["note"] = (f"--context {context:,} is more than the model's {most:,} positions, so the "
                                        f"memory is planned for {most:,}.")
        if model["kind"] == "checkpoint":
            report["recommended"] = _recommend(settings.model, report["memory"])
        report["cards"] = _cards(config, planned, report["cuda"]["devices"], gpu_memory, model, settings.model)
    report["chosen"] = _chosen(engine_args, model, config, report)
    report["ok"] = report["chosen"]["problem"] is None
    return report


def _cards(config: Config, context: int, cuda_devices: list[Report], gpu_memory: int | None, model: Report,
           spec: str) -> list[Report]:
    """A verdict for the card asked (or the GPUs here and 24, 16 and 12 GiB): the plan that
    fits (quantization, experts kept in host RAM), its estimated step time and the command
    to run it once the checkpoint is on disk; or why nothing fits."""
    from dgterm.engine.local.quant import offload

    typical = [(size * GiB, "cuda") for size in (24, 16, 12)]
    sizes = [(gpu_memory, "cuda")] if gpu_memory else [(d["free"], d["device"]) for d in cuda_devices] + typical
    name = (model.get("source") or spec) if model["kind"] == "profile" else spec
    out = []
    for size, device in sizes:
        verdict = offload.plan_for_card(config, size, context).as_dict()
        verdict["device"] = device
        verdict["command"] = (" ".join(["dgterm", "repl", "--model", name, "--device", device, *verdict["flags"]])
                              if verdict["plan"] else None)
        out.append(verdict)
    return out


# ------------------------------------------------------------------ probes


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _files() -> Report:
    """Where the settings, the user's themes and the recovery journals live."""
    from dgterm.config import config_dir, config_path, state_dir

    config = config_path()
    return {"config": str(config), "config_exists": config.exists(), "themes": str(config_dir() / "themes"),
            "state": str(state_dir())}


def _cuda() -> Report:
    import torch

    out: Report = {"build": torch.version.cuda, "available": torch.cuda.is_available(), "devices": [], "reason": None}
    if torch.version.cuda is None:
        out["reason"] = (f"this torch build has no CUDA support (torch {torch.__version__}); "
                         "install a CUDA build of torch to use a GPU")
    elif not out["available"] or torch.cuda.device_count() == 0:
        out["reason"] = (f"torch is built for CUDA {torch.version.cuda} but sees no GPU "
                         "(no driver, or CUDA_VISIBLE_DEVICES hides them)")
    else:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            out["devices"].append({"device": f"cuda:{i}", "name": props.name, "total": total, "free": free,
                                   "capability": f"{props.major}.{props.minor}", "bf16": props.major >= 8})
    return out


def _cpu() -> Report:
    from dgterm.engine.local.quant import host_memory

    ram = host_memory()
    total, available = ram["total"], ram["available"]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable, "ram_total": total, "ram_available": available}


def _model(spec: str, download: bool) -> tuple[Report, Config | None]:
    """Resolve the model offline and read its config; (report, DiffusionGemmaConfig or None)."""
    from dgterm.engine.local import checkpoint, quant

    out: Report = {"spec": spec, "path": None, "resolves_offline": False, "kind": None, "problem": None}
    profile = quant.profiles.find_profile(spec)
    if profile is not None:
        path: Path = profile
        out.update(path=str(path), kind="profile", source=quant.profiles.SOURCES.get(profile.name))
    else:
        try:
            path = checkpoint.resolve(spec, download)
            checkpoint.check_checkpoint(path)
            out.update(path=str(path), resolves_offline=True, kind="checkpoint")
        except DgtermError as e:
            out["problem"] = str(e)
            return out, None
    try:
        config = quant.load_config(str(path))
    except DgtermError as e:
        out["problem"] = str(e)
        return out, None
    except Exception as e:  # noqa: BLE001 - this transformers cannot read the config
        out["problem"] = (f"transformers {_version('transformers')} cannot read {path}/config.json "
                          f"({type(e).__name__}); upgrade transformers.")
        return out, None
    from dgterm.engine.local.quant import loader

    if out["kind"] == "checkpoint":
        out["problem"] = _cannot_run(path, config, loader.is_prequantized(path))
    counts = quant.parameter_counts(config)
    out.update(
        parameters=counts["total"], by_component={k: v for k, v in counts.items() if k not in ("text", "total") and v},
        canvas_length=config.canvas_length, vocab_size=config.text_config.vocab_size,
        layers=config.text_config.num_hidden_layers, max_positions=config.text_config.max_position_embeddings,
        chat_template=out["kind"] == "checkpoint" and _has_chat_template(path),
        prequantized=(loader.read_marker(path)["plan"]
                      if out["kind"] == "checkpoint" and loader.is_prequantized(path) else None),
    )
    return out, config


def _cannot_run(path: Path, config: Config, prequantized: bool) -> str | None:
    """Why a checkpoint whose config reads fine still cannot run: its weights do not match
    the architecture, or its tokenizer does not load."""
    from dgterm.engine.local import checkpoint

    try:
        if not prequantized:
            checkpoint.check_weights(path, config)
        checkpoint.check_finite(path)
    except DgtermError as e:
        return str(e)
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any failure of the tokenizer files
        return f"The tokenizer in {path} cannot be loaded ({type(e).__name__}); restore the tokenizer files."
    return None


def _has_chat_template(path: Path) -> bool:
    import json

    if (path / "chat_template.jinja").exists():
        return True
    try:
        return bool(json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return False


def _targets(cuda_devices: list[Report], cpu: Report, gpu_memory: int | None = None) -> list[Report]:
    """Where the model could run, with the free bytes and the compute dtype checkpoint.pick_dtype would choose
    (plus a GPU of ``gpu_memory`` bytes that is not here, marked ``asked``)."""
    gpus = [{"device": d["device"], "free": d["free"], "dtype": "bf16" if d["bf16"] else "fp16"} for d in cuda_devices]
    asked = ([{"device": f"{gpu_memory / GiB:.3g}G GPU", "free": gpu_memory, "dtype": "bf16", "asked": True}]
             if gpu_memory else [])
    return gpus + asked + [{"device": "cpu", "free": cpu["ram_available"], "dtype": "fp32"}]


def _memory(config: Config, context: int, cuda_devices: list[Report], cpu: Report,
            gpu_memory: int | None = None) -> Report:
    """The planner's bytes for each --quant on each device, and whether they fit."""
    from dgterm.engine.local import quant

    rows = []
    for target in _targets(cuda_devices, cpu, gpu_memory):
        plans = {q: quant.plan_memory(config, quant.QUANT_TO_PLAN[q], context, 1, target["dtype"]) for q in QUANTS}
        rows.append({**target, "needs": {q: p.total for q, p in plans.items()},
                     "fits": {q: p.fits(target["free"]) for q, p in plans.items()}})
    return {"context": context, "candidates": 1, "reserve": 512 << 20, "devices": rows}


def _recommend(spec: str, memory: Report) -> str | None:
    """The best setup: the GPU with the most free memory at the least quantization that fits, else the CPU."""
    gpus = sorted((r for r in memory["devices"] if r["device"] != "cpu" and not r.get("asked")),
                  key=lambda r: -r["free"])
    cpus = [r for r in memory["devices"] if r["device"] == "cpu"]
    for row in gpus + cpus:
        for q in QUANTS:
            if row["fits"][q]:
                quant_flag = "" if q == "none" else f" --quant {q}"
                return f"dgterm repl --model {spec} --device {row['device']}{quant_flag}"
    return None


def _chosen(engine_args: EngineArgs, model: Report, config: Config | None, report: Report) -> Report:
    """Can the configured model/device/dtype/quant run? ``problem`` is one sentence or None."""
    from dgterm.engine.local import checkpoint, quant

    settings = engine_args.settings

    out: Report = {"model": settings.model, "device": settings.device, "dtype": settings.dtype, "quant": settings.quant,
           "needs": None, "free": None, "problem": None}
    if config is not None and model["kind"] == "profile":  # a plan, not a problem: a card's verdict is the answer
        asked = report["cards"][0] if report["cards"] else None
        if asked is not None and asked["plan"] is None and len(report["cards"]) == 1:
            out["problem"] = f"On a {asked['memory'] / GiB:.3g} GiB card {asked['why_not']}."
        return out
    if config is None or model["kind"] != "checkpoint" or model["problem"]:
        out["problem"] = model["problem"]
        return out
    try:
        device = checkpoint.pick_device(settings.device)
        dtype = checkpoint.pick_dtype(settings.dtype, device)
    except DgtermError as e:
        out["problem"] = str(e)
        return out
    try:
        engine_args.check()
    except DgtermError as e:
        out["problem"] = str(e)
        return out
    if device == "cuda":
        import torch

        device = f"cuda:{torch.cuda.current_device()}"
    quant_name = model["prequantized"] or settings.quant
    if quant_name not in quant.QUANT_TO_PLAN:
        out["problem"] = f"Unknown quantization '{quant_name}'; use one of {', '.join(QUANTS)}."
        return out
    eb = quant.dense_bytes_per_element(dtype)
    context = report["memory"]["context"]
    need = quant.plan_memory(config, quant.QUANT_TO_PLAN[quant_name], context, 1, eb)
    free = next(r["free"] for r in report["memory"]["devices"] if r["device"] == device)
    out.update(device=device, dtype=str(dtype).removeprefix("torch."), quant=quant_name, needs=need.total, free=free)
    if not need.fits(free):
        where = device if device != "cpu" else "host RAM"
        out["problem"] = quant.refusal(config, quant.QUANT_TO_PLAN[quant_name], free, context, 1, eb, where)
    return out


# ------------------------------------------------------------------ text


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB / 10 else f"{n / (1 << 20):.0f} MiB"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}"


def format_text(r: Report) -> str:
    lines = [f"dgterm doctor {r['dgterm']}", "", "software"]
    lines.append(f"  python        {r['python']['version']}  {r['python']['executable']}")
    notes = {"bitsandbytes": "not installed (not needed: dgterm quantizes with its own kernels)",
             "triton": "not installed: quantized experts use the PyTorch kernels"}
    for name, version in r["packages"].items():
        lines.append(f"  {name:<13} {version or notes.get(name, 'not installed')}")
    files = r["files"]
    lines += ["", "files",
              f"  config        {files['config']}{'' if files['config_exists'] else ' (not there: defaults apply)'}",
              f"  themes        {files['themes']}",
              f"  state         {files['state']} (recovery journals, REPL history)"]
    lines += ["", "devices"]
    cuda = r["cuda"]
    if cuda["devices"]:
        for d in cuda["devices"]:
            lines.append(f"  {d['device']:<13} {d['name']} · {_gib(d['total'])} total, {_gib(d['free'])} free · "
                         f"compute {d['capability']}{'' if d['bf16'] else ' (no bf16: fp16)'}")
    else:
        lines.append(f"  CUDA          none: {cuda['reason']}")
    cpu = r["cpu"]
    lines.append(f"  cpu           {cpu['usable_cores']} of {cpu['cores']} cores usable · "
                 f"{_gib(cpu['ram_total'])} RAM, {_gib(cpu['ram_available'])} available")
    m = r["model"]
    lines += ["", f"model {m['spec']}"]
    if m["path"]:
        lines.append(f"  path          {m['path']}")
    offline = ("resolves" if m["resolves_offline"] else
               "a memory profile: a config without weights" if m["kind"] == "profile" else "does not resolve")
    lines.append(f"  offline       {offline}")
    if "parameters" in m:
        parts = ", ".join(f"{k} {_count(v)}" for k, v in sorted(m["by_component"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  parameters    {_count(m['parameters'])} ({parts})")
        lines.append(f"  shape         {m['layers']} layers · vocab {m['vocab_size']} · canvas {m['canvas_length']} · "
                     f"context up to {m['max_positions']}")
        if m["kind"] == "checkpoint":
            pre = f" · pre-quantized {m['prequantized']}" if m["prequantized"] else ""
            lines.append(f"  chat template {'yes' if m['chat_template'] else 'no (plain mode only)'}{pre}")
    mem = r.get("memory")
    if mem:
        lines += ["", f"memory at {mem['context']} tokens of context, 1 candidate (engine planner, "
                      f"{_gib(mem['reserve'])} kept in reserve)"]
        lines.append("  " + f"{'':<16}" + "".join(f"{'--quant ' + q:<17}" for q in QUANTS) + "free")
        for row in mem["devices"]:
            cells = "".join(f"{_gib(row['needs'][q]) + (' fits' if row['fits'][q] else ' no'):<17}" for q in QUANTS)
            lines.append(f"  {row['device'] + ' (' + row['dtype'] + ')':<16}{cells}{_gib(row['free'])}")
        if "note" in mem:
            lines.append(f"  note: {mem['note']}")
    lines += _format_cards(r)
    c = r["chosen"]
    lines.append("")
    if c["needs"] is not None:
        lines.append(f"chosen        --model {c['model']} on {c['device']} ({c['dtype']}), --quant {c['quant']}: "
                     f"needs {_gib(c['needs'])} of {_gib(c['free'])} free")
    if r.get("recommended"):
        lines.append(f"recommended   {r['recommended']}")
    ok = ("ok: a plan runs it (above); download the checkpoint first." if r["model"]["kind"] == "profile"
          else "ok: the chosen setup can run.")
    lines.append(ok if r["ok"] else f"problem: {c['problem']}")
    return "\n".join(lines)


def _format_cards(r: Report) -> list[str]:
    cards = r.get("cards") or []
    if not cards:
        return []
    lines = ["", f"on a GPU, at {cards[0]['context']} tokens of context (step times are estimates for a typical card)"]
    for v in cards:
        head = f"  {v['memory'] / GiB:.3g} GiB".ljust(12) if v["device"] == "cuda" else f"  {v['device']:<10}"
        if v["plan"] is None:
            lines.append(f"{head}no plan: {v['why_not']}")
            continue
        where = (f", experts of {v['offload_layers']} layers in host RAM ({_gib(v['host'])}, "
                 f"{'streamed' if v['mode'] == 'stream' else 'run on the CPU'})" if v["offload_layers"] else "")
        lines.append(f"{head}--quant {v['quant']}{where}: {_gib(v['total'])} on the card, "
                     f"~{v['step_seconds'] * 1000:.0f} ms a step on {v['card']}")
        lines.append(f"{'':12}{v['command']}")
    source = r["model"].get("source")
    if r["model"]["kind"] == "profile" and source:
        lines.append(f"  download    dgterm doctor --model {source} --download")
    return lines
