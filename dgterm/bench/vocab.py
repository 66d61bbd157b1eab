"""The vocabulary's share of a decoder step at the real model's sizes, on this machine.

The 26B-A4B's config (``runtime/profiles/diffusiongemma-26b-a4b``) with real tensors for
one sliding and one full decoder layer (transformers' own layer classes, random weights)
and the real 262,144-way vocabulary: a canvas's rows go through each layer over a cached
context, then through the vocabulary-sized work of a step (the lm head and its
soft-capping, the sampler's pass, the self-conditioning softmax times the embedding
matrix). The step is estimated as the layers times their count plus the vocabulary work
once; ``rows`` canvas positions (fewer than the canvas: both parts scale with the rows).

The sampler and the self-conditioning see logits spread as a model's are (a few likely
tokens over a long tail, soft-capped, at a low temperature of the schedule), where part
of the softmax is subnormal; the self-conditioning product is timed on them as they come
(before) and floored as the CPU sampler leaves them (after: ``kernels.sampling.FLOOR``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

PROFILE = Path(__file__).resolve().parents[2] / "runtime" / "profiles" / "diffusiongemma-26b-a4b"
TEMPERATURE = 0.4  # the default schedule's lowest
TINY = 1.1754943508222875e-38  # float32's smallest normal number


def _timed(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def vocab_share(rows: int = 16, context: int = 1024, repeats: int = 3, dtype: str = "bfloat16",
                profile: Path = PROFILE, sc_top_k: int = 32) -> dict:
    """Seconds of one sliding and one full layer, and of the vocabulary work, for ``rows``
    canvas positions over ``context`` cached tokens; the vocabulary's share of a step, in
    time on this machine and in FLOPs (``profile``: a model's config directory). "After":
    the same with the self-conditioning over the top ``sc_top_k`` (opt-in, approximate)."""
    import torch
    from transformers import DiffusionGemmaConfig, DynamicCache
    from transformers.models.diffusion_gemma import modeling_diffusion_gemma as dg

    from dgterm.engine.local.kernels.sampling import fused_sample
    from dgterm.engine.local.self_conditioning import soft_embeddings

    torch.manual_seed(0)
    compute = getattr(torch, dtype)
    config: Any = DiffusionGemmaConfig.from_pretrained(profile)  # transformers types text_config loosely
    text = config.text_config
    text._attn_implementation = "sdpa"
    text._experts_implementation = "grouped_mm"  # as the loaded models use
    kinds = {kind: text.layer_types.index(kind) for kind in ("sliding_attention", "full_attention")}
    rotary = dg.DiffusionGemmaTextRotaryEmbedding(text)
    hidden = torch.randn(1, rows, text.hidden_size, dtype=compute)
    positions = torch.arange(context, context + rows)[None]
    layer_s, layer_flops = {}, {}
    for kind, idx in kinds.items():
        layer = dg.DiffusionGemmaDecoderTextLayer(text, idx).to(compute)
        for p in layer.parameters():
            torch.nn.init.normal_(p, std=0.02)
        cache = DynamicCache(config=text)
        heads, dim = layer.self_attn.k_proj.out_features // layer.self_attn.head_dim, layer.self_attn.head_dim
        kv = torch.randn(1, heads, min(context, text.sliding_window - 1) if kind == "sliding_attention" else context,
                         dim, dtype=compute)
        cache.update(kv, kv.clone(), idx)
        rope = rotary(hidden, positions, kind)
        with torch.no_grad():
            layer_s[kind] = _timed(lambda layer=layer, rope=rope, cache=cache: layer(
                hidden, position_embeddings=rope, attention_mask=None, position_ids=positions, cache=cache), repeats)
        layer_flops[kind] = _layer_flops(layer, text, kv.shape[-2] + config.canvas_length)
        del layer, cache
    vocab, width = text.vocab_size, text.hidden_size
    embed = torch.randn(vocab, width, dtype=compute) * 0.02  # tied: the lm head and the embedding matrix
    cap = text.final_logit_softcapping or 30.0

    def head():  # the model's lm head and soft-capping (float32 logits)
        logits = torch.nn.functional.linear(hidden, embed).float()
        return torch.tanh(logits / cap) * cap

    temperature = torch.tensor(TEMPERATURE)
    tempered = model_like_logits(rows, vocab, cap) / temperature
    work = torch.ones(rows, dtype=torch.bool)
    floored = tempered.clone()
    fused_sample(floored, torch.tensor(1.0), work, torch.rand(rows), None, torch.float32)

    def sampler():  # the fused sampler's CPU pass
        fused_sample(tempered.clone(), temperature, work, torch.rand(rows), None, compute)

    def self_conditioning(sc):  # the next step's soft embeddings (transformers' decoder)
        return lambda: torch.matmul(sc.to(compute).softmax(-1, dtype=torch.float32).to(compute), embed)

    def top_k():  # the same from the top sc_top_k of each row (dgterm.engine.local.self_conditioning)
        return soft_embeddings(floored[None], embed, torch.tensor(1.0), sc_top_k)

    with torch.no_grad():
        part = {"lm head + soft-capping": _timed(head, repeats), "sampler pass": _timed(sampler, repeats),
                "self-conditioning": _timed(self_conditioning(floored), repeats)}
        before = {**part, "self-conditioning": _timed(self_conditioning(tempered), repeats)}
        after = {**{k: v for k, v in part.items() if k != "self-conditioning"},
                 f"self-conditioning, top {sc_top_k}": _timed(top_k, repeats)}
    layers = {kind: sum(1 for t in text.layer_types if t == kind) for kind in kinds}
    stack = sum(layer_s[k] * n for k, n in layers.items())
    vocab_s, vocab_before, after_s = sum(part.values()), sum(before.values()), sum(after.values())
    stack_flops = sum(layer_flops[k] * n for k, n in layers.items())
    vocab_flops = 2 * (2 * width * vocab)  # the lm head and the self-conditioning product, per row
    after_flops = 2 * width * (vocab + sc_top_k)  # the lm head, and K embedding rows weighed
    probs = tempered.softmax(-1)
    return {"rows": rows, "context": context, "dtype": dtype, "layers": layers, "layer_s": layer_s,
            "temperature": TEMPERATURE, "subnormal_share": float(((probs > 0) & (probs < TINY)).float().mean()),
            "vocab_s": part, "vocab_s_before": before, "step_s": stack + vocab_s,
            "vocab_share": vocab_s / (stack + vocab_s), "vocab_share_before": vocab_before / (stack + vocab_before),
            "flops_per_row": {"layers": stack_flops, "vocab": vocab_flops},
            "vocab_share_flops": vocab_flops / (stack_flops + vocab_flops),
            "after": {"sc_top_k": sc_top_k, "vocab_s": after, "step_s": stack + after_s,
                      "vocab_share": after_s / (stack + after_s), "flops_per_row": after_flops,
                      "vocab_share_flops": after_flops / (stack_flops + after_flops)}}


def model_like_logits(rows: int, vocab: int, cap: float):
    """Soft-capped logits spread as a language model's: a normal tail (sd 8) and 16 likely
    tokens 25 above it, so that a row spans about 45 of the cap's 60."""
    import torch

    g = torch.Generator().manual_seed(0)
    raw = torch.randn(rows, vocab, generator=g) * 8
    raw[:, :16] += 25
    return torch.tanh(raw / cap) * cap


def _layer_flops(layer, text, keys: int) -> float:
    """Multiply-adds × 2 per canvas row of one decoder layer: every weight it reads once per
    row (the routed experts' weights: the top-k share of them), and attention over ``keys``
    (the cached context the layer keeps, and the canvas)."""
    experts = layer.experts
    routed = sum(p.numel() for p in experts.parameters()) * text.top_k_experts / text.num_experts
    dense = sum(p.numel() for n, p in layer.named_parameters() if not n.startswith("experts."))
    attn = layer.self_attn
    heads = attn.q_proj.out_features // attn.head_dim
    return 2 * (dense + routed) + 4 * heads * attn.head_dim * keys
