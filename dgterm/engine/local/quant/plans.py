"""Quantization plans: every weight of DiffusionGemma belongs to a *component*, and a plan
says which format each component gets (the table is in :mod:`dgterm.engine.local.quant`).
Torch-free: the planner, the loader, ``dgterm doctor`` and the flags read these names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dgterm.errors import ModelLoadError

GiB = 1 << 30
PLAN_NAMES = ("bf16", "int8", "nf4")
COMPONENTS = ("experts", "attention", "mlp", "self_conditioning", "router", "embed", "vision", "other")
QUANT_TO_PLAN = {"none": "bf16", "bf16": "bf16", "int8": "int8", "nf4": "nf4"}
# Rows (token x top-k pairs) the quantized experts process at once; bounds their activations
# (dgterm.engine.local.quant.modules.QuantizedExperts; the planner counts it).
MOE_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class PlanSpec:
    name: str
    experts: str
    attention: str
    mlp: str
    self_conditioning: str
    router: str = "dense"
    embed: str = "dense"
    vision: str = "dense"
    other: str = "dense"
    blocksize: int = 64

    def format_of(self, component: str) -> str:
        return getattr(self, component)

    def formats(self) -> dict:
        return {c: self.format_of(c) for c in COMPONENTS}


PLANS = {
    "bf16": PlanSpec("bf16", experts="dense", attention="dense", mlp="dense", self_conditioning="dense"),
    "int8": PlanSpec("int8", experts="int8", attention="int8", mlp="int8", self_conditioning="int8"),
    "nf4": PlanSpec("nf4", experts="nf4", attention="int8", mlp="int8", self_conditioning="int8", vision="int8"),
}


def get_plan(plan) -> PlanSpec:
    if isinstance(plan, PlanSpec):
        return plan
    name = QUANT_TO_PLAN.get(str(plan))
    if name is None:
        raise ModelLoadError(f"Unknown quantization plan '{plan}'; use one of {', '.join(PLAN_NAMES)}.")
    return PLANS[name]


_COMPONENT_RULES = (
    (re.compile(r"(^|\.)(lm_head|embed_tokens)(\.|$)"), "embed"),
    (re.compile(r"(^|\.)(vision_tower|embed_vision)(\.|$)"), "vision"),
    (re.compile(r"(^|\.)experts(\.|$)"), "experts"),
    (re.compile(r"(^|\.)router\.proj(\.|$)"), "router"),
    (re.compile(r"(^|\.)self_attn\."), "attention"),
    (re.compile(r"(^|\.)self_conditioning\.(gate|up|down)_proj(\.|$)"), "self_conditioning"),
    (re.compile(r"(^|\.)mlp\.(gate|up|down)_proj(\.|$)"), "mlp"),
)


def component_of(name: str) -> str:
    """The component of a parameter or module name (checkpoint naming)."""
    for rule, component in _COMPONENT_RULES:
        if rule.search(name):
            return component
    return "other"
