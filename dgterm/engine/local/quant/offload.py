"""Experts partly in host RAM: how many layers' experts to keep off the GPU, how each step
reaches them, and what a step costs. Torch-free (the weights come from the planner's meta build).

A denoising step runs the decoder over a whole canvas (256 tokens × top-8 of 128 experts),
so nearly every expert of every layer is read each step. The experts of an offloaded layer
are either *streamed* (copied over PCIe, from pinned memory, as each is used) or *computed
on the CPU* (its tokens go to the host, the host's cores run the experts, the result comes
back), whichever :func:`step_estimate` says is faster. ``auto`` keeps the fewest layers off
the GPU that let the plan fit.

The step times are estimates from the card's memory bandwidth and throughput, the PCIe link
and the host (the constants below; a typical consumer card of each size), not measurements:
``scripts/gpu_quant_bench.py`` measures them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dgterm.engine.local.quant.planner import MemoryPlan, choose_plan, plan_memory
from dgterm.engine.local.quant.plans import GiB
from dgterm.engine.local.quant.profiles import load_config

RESERVE = 512 << 20  # what the loader keeps free (planner.MemoryPlan.fits)


@dataclass(frozen=True)
class Card:
    """What a step's estimate needs to know of a GPU (a typical card of its memory size)."""

    name: str
    memory: int  # bytes
    bandwidth: float  # device memory, bytes/s
    flops: float  # dense bf16 matmul, sustained, FLOP/s


# Typical cards (published specs; sustained flops taken as about half the peak).
CARDS = (Card("RTX 4070 (12 GiB)", 12 * GiB, 504e9, 60e12),
         Card("RTX 4080 (16 GiB)", 16 * GiB, 717e9, 100e12),
         Card("RTX 4090 (24 GiB)", 24 * GiB, 1008e9, 160e12))
PCIE = 25e9  # PCIe 4.0 x16, from pinned memory, bytes/s
HOST_BANDWIDTH = 50e9  # dual-channel DDR5, bytes/s
HOST_FLOPS = 0.5e12  # a desktop CPU's cores on dequantized experts, FLOP/s


def card_for(memory: int) -> Card:
    """The typical card nearest ``memory`` bytes, with that memory."""
    near = min(CARDS, key=lambda c: abs(c.memory - memory))
    return Card(near.name if near.memory == memory else f"a {memory / GiB:.3g} GiB card", memory, near.bandwidth,
                near.flops)


def parse_layers(text: str | int) -> int | str:
    """``auto`` or a whole number of layers (``--offload-experts``); ValueError otherwise."""
    if str(text).strip().lower() == "auto":
        return "auto"
    n = int(text)
    if n < 0:
        raise ValueError(text)
    return n


@dataclass
class StepEstimate:
    seconds: float
    mode: str  # 'resident' | 'stream' | 'cpu'
    moved: int  # bytes over PCIe per step
    read: int  # bytes of device memory read per step


def _touched(config, candidates: int) -> float:
    """The share of a layer's experts one decoder step reads: each of E experts is missed by
    all canvas tokens' top-k with probability (1 - k/E)^tokens."""
    t = load_config(config).text_config
    if not t.num_experts:
        return 0.0
    tokens = load_config(config).canvas_length * candidates
    return 1 - (1 - t.top_k_experts / t.num_experts) ** tokens


def step_estimate(config, memory: MemoryPlan, card: Card) -> StepEstimate:
    """The time of one decoder step of ``memory`` (a plan, maybe with offloaded layers) on
    ``card``: the device reads its weights, cache and logits (or computes, if that takes
    longer); each offloaded layer adds the faster of streaming its touched experts over PCIe
    and running them on the host."""
    cfg = load_config(config)
    t = cfg.text_config
    share = _touched(cfg, memory.candidates)
    experts = memory.components.get("experts", 0)
    resident_experts = experts - memory.offloaded
    read = int(memory.weights - resident_experts * (1 - share) + memory.kv_cache + 2 * memory.logits)
    params = memory.parameters
    active = (sum(params.values()) - params.get("vision", 0) - params.get("experts", 0)
              + params.get("experts", 0) * (t.top_k_experts / t.num_experts if t.num_experts else 0))
    tokens = cfg.canvas_length * memory.candidates
    device = max(read / card.bandwidth, 2 * tokens * active / card.flops)
    if not memory.offloaded_layers:
        return StepEstimate(device, "resident", 0, read)
    moved = int(memory.offloaded * share)
    stream = moved / PCIE
    per_layer_flops = 2 * tokens * (t.top_k_experts or 0) * 3 * t.hidden_size * (t.moe_intermediate_size or 0)
    cpu = max(moved / HOST_BANDWIDTH, memory.offloaded_layers * per_layer_flops / HOST_FLOPS)
    if stream <= cpu:
        return StepEstimate(device + stream, "stream", moved, read)
    activations = 4 * memory.offloaded_layers * tokens * t.hidden_size * 2  # there and back, per layer
    return StepEstimate(device + cpu + activations / PCIE, "cpu", activations, read)


@dataclass
class CardPlan:
    """What to run on a card: the plan and offloaded layers that fit, or why nothing does."""

    memory: int
    context: int
    plan: str | None = None
    offload_layers: int = 0
    mode: str = "resident"
    total: int = 0  # device bytes
    host: int = 0  # expert bytes in host RAM
    step_seconds: float | None = None
    moved_per_step: int = 0
    card: str = ""
    why_not: str | None = None

    @property
    def quant(self) -> str | None:
        return None if self.plan is None else "none" if self.plan == "bf16" else self.plan

    def flags(self) -> list[str]:
        """The flags that choose this plan on the command line."""
        if self.plan is None:
            return []
        return ["--quant", self.quant or "none"] + (["--offload-experts", str(self.offload_layers)]
                                                   if self.offload_layers else [])

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "quant": self.quant, "flags": self.flags()}


def fewest_layers(config, plan: str, free: int, context: int, candidates: int = 1, dtype="bf16") -> int | None:
    """The fewest layers whose experts must leave the device for ``plan`` to fit ``free``
    bytes, or None when even all of them are not enough."""
    layers = load_config(config).text_config.num_hidden_layers
    for n in range(layers + 1):
        if plan_memory(config, plan, context, candidates, dtype, offload=n).fits(free, RESERVE):
            return n
    return None


def plan_for_card(config, memory: int, context: int = 8192, candidates: int = 1, dtype="bf16",
                  card: Card | None = None) -> CardPlan:
    """The best plan for a card with ``memory`` bytes free: the highest-quality plan that fits
    whole (bf16 > int8 > nf4), else nf4 with the fewest layers' experts in host RAM, else a
    plain why-not."""
    cfg = load_config(config)
    card = card or card_for(memory)
    out = CardPlan(memory=memory, context=context, card=card.name)
    whole = choose_plan(cfg, memory, context, candidates, dtype, RESERVE)
    layers = None if whole is not None else fewest_layers(cfg, "nf4", memory, context, candidates, dtype)
    if whole is None and layers is None:
        shorter = _longest_offloaded(cfg, memory, candidates, dtype)
        least = plan_memory(cfg, "nf4", context, candidates, dtype, offload=True)
        out.why_not = (f"even with every layer's experts in host RAM the nf4 plan needs {least.total / GiB:.1f} GiB "
                       f"+ {RESERVE / GiB:.1f} GiB headroom at {context} tokens of context, more than "
                       f"{memory / GiB:.3g} GiB" + (f"; it fits at most {shorter} tokens" if shorter >= 1024 else ""))
        return out
    chosen = whole or plan_memory(cfg, "nf4", context, candidates, dtype, offload=layers or 0)
    est = step_estimate(cfg, chosen, card)
    out.plan, out.offload_layers, out.total, out.host = chosen.plan, chosen.offloaded_layers, chosen.total, \
        chosen.offloaded
    out.mode, out.step_seconds, out.moved_per_step = est.mode, est.seconds, est.moved
    return out


def _longest_offloaded(config, memory: int, candidates: int, dtype) -> int:
    """The longest context (a multiple of 256) at which nf4 fits with every layer offloaded, 0 if none."""
    lo, hi = 0, load_config(config).text_config.max_position_embeddings // 256
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if plan_memory(config, "nf4", mid * 256, candidates, dtype, offload=True).fits(memory, RESERVE):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


__all__ = ["CARDS", "Card", "CardPlan", "StepEstimate", "card_for", "fewest_layers", "parse_layers",
           "plan_for_card", "step_estimate"]
