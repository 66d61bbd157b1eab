"""Experts partly in host RAM (``--offload-experts N|auto``): the planner counts the VRAM and the
bytes a step moves and picks the fewest layers that fit; the loader keeps exactly those layers'
experts off the device; on the CPU (device = host) the tokens equal those of no offload."""

from __future__ import annotations

import pytest
import torch

from dgterm.engine import tasks
from dgterm.engine.args import EngineArgs
from dgterm.engine.local import loading, quant
from dgterm.engine.local.quant import GiB, loader, offload
from dgterm.engine.local.quant.modules import QuantizedExperts
from dgterm.errors import ModelLoadError

PROFILE = "diffusiongemma-26b-a4b"


def _offloaded(model) -> dict[str, QuantizedExperts]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantizedExperts) and "offload" in vars(m)}


def test_offloaded_layers_give_the_same_tokens_as_resident_ones_on_the_cpu():
    resident = loading.load("bundled", quant="nf4")
    off = loading.load("bundled", quant="nf4", offload_experts="2")
    assert off.info["offload_layers"] == 2 and off.info["offload_mode"] == "stream"
    assert any("experts of 2 layers in host RAM" in n for n in off.info["notes"])
    layers = {n.split(".")[-2] for n in _offloaded(off.model)}
    assert layers == {"2", "3"}  # the last two of the bundled model's four
    params = resident.defaults.replace(seed=11, steps=8, max_new_tokens=48)
    want = tasks.continue_text(resident, "def mean(xs):", params).collect().best.text
    assert tasks.continue_text(off, "def mean(xs):", params).collect().best.text == want
    for m in _offloaded(off.model).values():  # the path that runs the experts where they are
        m.offload = "cpu"
    assert tasks.continue_text(off, "def mean(xs):", params).collect().best.text == want


def test_auto_offloads_nothing_when_the_host_is_the_device():
    lm = loading.load("bundled", quant="nf4", offload_experts="auto")
    assert lm.info["offload_layers"] == 0 and not _offloaded(lm.model)


def test_offload_needs_a_quantized_plan_and_is_a_setting_everywhere(monkeypatch):
    with pytest.raises(ModelLoadError, match="add --quant nf4"):
        loading.load("bundled", offload_experts="2")
    monkeypatch.setenv("DGTERM_OFFLOAD_EXPERTS", "auto")
    from dgterm.config import load_settings

    assert load_settings().offload_experts == "auto"
    monkeypatch.setenv("DGTERM_OFFLOAD_EXPERTS", "some")
    with pytest.raises(Exception, match="not 'auto' or a whole number of layers"):
        load_settings()


def test_the_flag_reaches_the_loader(monkeypatch):
    import argparse

    p = argparse.ArgumentParser()
    EngineArgs.add_cli_args(p)
    args = p.parse_args(["--quant", "nf4", "--offload-experts", "3", "--kernels", "reference"])
    engine_args = EngineArgs.from_cli_args(args)
    seen = {}
    monkeypatch.setattr(loading, "load", lambda *a, **k: seen.update(k))
    engine_args.load()
    assert seen["offload_experts"] == "3" and seen["kernels"] == "reference"
    with pytest.raises(SystemExit):
        p.parse_args(["--offload-experts", "many"])


def test_the_real_shaped_model_on_meta_offloads_exactly_the_layers_planned():
    cfg = quant.load_config(PROFILE)
    model = loader.build(cfg, "nf4", "meta", torch.bfloat16, offload_experts="meta", offload_layers=4)
    chosen = _offloaded(model)
    layers = {int(n.split(".")[-2]) for n in chosen}
    assert layers == {26, 27, 28, 29}
    moved = sum(m.gate_up_proj.nbytes() + m.down_proj.nbytes() for m in {id(m): m for m in chosen.values()}.values())
    plan = quant.plan_memory(cfg, "nf4", 8192, offload=4)
    assert plan.offloaded == moved and plan.offloaded_layers == 4
    assert plan.staging == moved // 4  # one layer's experts on the device while a step streams them
    resident = quant.plan_memory(cfg, "nf4", 8192)
    assert plan.total == resident.total - moved + moved // 4


def test_auto_is_the_fewest_layers_that_fit_and_the_planner_estimates_the_step():
    cfg = quant.load_config(PROFILE)
    n = offload.fewest_layers(cfg, "nf4", 16 * GiB, 8192)
    assert n and quant.plan_memory(cfg, "nf4", 8192, offload=n).fits(16 * GiB)
    assert not quant.plan_memory(cfg, "nf4", 8192, offload=n - 1).fits(16 * GiB)
    card = offload.card_for(16 * GiB)
    resident = offload.step_estimate(cfg, quant.plan_memory(cfg, "nf4", 8192), card)
    streamed = offload.step_estimate(cfg, quant.plan_memory(cfg, "nf4", 8192, offload=n), card)
    assert resident.mode == "resident" and streamed.mode == "stream"
    assert streamed.moved > 0 and streamed.seconds > resident.seconds  # each streamed layer costs PCIe time
    more = offload.step_estimate(cfg, quant.plan_memory(cfg, "nf4", 8192, offload=n + 4), card)
    assert more.seconds > streamed.seconds


def test_a_slow_link_makes_the_planner_run_offloaded_experts_on_the_cpu(monkeypatch):
    cfg = quant.load_config(PROFILE)
    monkeypatch.setattr(offload, "PCIE", 0.5e9)  # a x1 riser
    est = offload.step_estimate(cfg, quant.plan_memory(cfg, "nf4", 8192, offload=4), offload.card_for(16 * GiB))
    assert est.mode == "cpu"
