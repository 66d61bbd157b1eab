"""The memory planner on the meta device, against the published 26B-A4B numbers and a hand
computation."""

from __future__ import annotations

import json

import pytest

from dgterm.engine.local import quant
from dgterm.engine.local.quant import export, planner
from dgterm.errors import ModelLoadError

GiB = quant.GiB
PROFILE = "diffusiongemma-26b-a4b"
L, E, H, I, V = 30, 128, 2816, 704, 262144  # noqa: E741 - the profile's layers, experts, hidden, intermediate, vocab


@pytest.fixture(scope="module")
def cfg():
    return quant.load_config(PROFILE)


@pytest.fixture(scope="module")
def plans(cfg):
    return {p.plan: p for p in quant.all_plans(cfg, context=8192, candidates=1)}


def test_profile_is_the_published_config(cfg):
    t = cfg.text_config
    assert (t.vocab_size, t.hidden_size, t.num_hidden_layers, t.num_attention_heads) == (V, H, L, 16)
    assert t.layer_types.count("full_attention") == 5 and t.sliding_window == 1024
    assert (t.per_layer_config[0].num_key_value_heads, t.per_layer_config[0].head_dim) == (8, 256)
    assert (t.per_layer_config[5].num_key_value_heads, t.per_layer_config[5].head_dim) == (2, 512)
    assert (t.intermediate_size, t.num_experts, t.top_k_experts, t.moe_intermediate_size) == (2112, E, 8, I)
    assert t.max_position_embeddings == 262144 and t.use_bidirectional_attention == "vision"
    assert cfg.canvas_length == 256 and cfg.tie_word_embeddings


def test_parameter_counts_match_the_published_model(plans):
    p = plans["bf16"].parameters
    text = sum(v for k, v in p.items() if k != "vision")
    assert p["experts"] == L * E * (2 * I * H + H * I) == 22_837_985_280
    assert p["embed"] == V * H  # tied: counted once
    assert 25.2e9 < text < 25.35e9  # ~25.3B text
    assert 0.5e9 < p["vision"] < 0.6e9  # the Gemma 4 vision tower, ~0.55B
    assert 25.7e9 < text + p["vision"] < 26.0e9  # ~26B


def test_plan_bytes_match_a_hand_computation(plans):
    bf16, int8, nf4 = plans["bf16"], plans["int8"], plans["nf4"]
    experts = L * E * (2 * I * H + H * I)
    assert bf16.components["experts"] == 2 * experts
    assert int8.components["experts"] == L * E * (2 * I * H + 2 * I * 4 + H * I + H * 4)
    # nf4: half a byte per weight + a float16 absmax per 64 weights
    assert nf4.components["experts"] == L * E * (2 * I * (H // 2 + H // 64 * 2) + H * (I // 2 + I // 64 * 2))
    for p in plans.values():
        assert 0 <= p.components["embed"] - 2 * V * H < 64  # the compute dtype (+ two float32 embed scales)
    kv = 25 * 2 * 1024 * 8 * 256 * 2 + 5 * 2 * 8192 * 2 * 512 * 2
    assert all(p.kv_cache == kv for p in plans.values())
    # held: the bf16 self-conditioning logits; at the sampler: the float32 logits, the bf16
    # processed ones, the CPU pass's two 2 MiB row blocks and its two chunk-wide pieces
    assert nf4.logits == 256 * V * 2
    assert nf4.workspace == 256 * V * (4 + 2) + 2 * (2 << 20) + 2 * (2 << 20) * 1024 // V
    reference = quant.plan_memory(PROFILE, "nf4", 8192, sampler="reference")
    assert reference.workspace == 256 * V * 4 * (1 + planner.SAMPLER_WORKSPACE_FP32)
    step = nf4.kv_cache + nf4.logits + max(nf4.workspace, nf4.activations)
    assert nf4.total == nf4.weights + max(nf4.prefill, step)
    assert nf4.activations == 256 * V * (2 + 8)  # the lm head's bf16 logits, then two float32 at a time


def test_nf4_at_8k_context_fits_in_18_gib(plans):
    nf4 = plans["nf4"]
    assert nf4.total <= 18 * GiB, nf4.summary()
    assert nf4.fits(24 * GiB) and not plans["int8"].fits(24 * GiB)
    assert 48 * GiB < plans["bf16"].weights < 48.5 * GiB
    assert nf4.weights < plans["int8"].weights < plans["bf16"].weights


def test_runtime_buffers_scale_with_context_and_candidates(cfg, plans):
    four = quant.plan_memory(cfg, "nf4", context=8192, candidates=4)
    assert four.kv_cache == 4 * plans["nf4"].kv_cache and four.logits == 4 * plans["nf4"].logits
    assert four.prefill == plans["nf4"].prefill  # one prefill for every candidate
    long = quant.plan_memory(cfg, "nf4", context=32768)
    assert long.kv_cache > plans["nf4"].kv_cache and long.weights == plans["nf4"].weights
    off = quant.plan_memory(cfg, "nf4", offload=True)
    assert off.offloaded == plans["nf4"].components["experts"] and off.weights < 4 * GiB


def test_choose_plan_picks_the_best_that_fits(cfg):
    assert quant.choose_plan(cfg, 80 * GiB).plan == "bf16"
    assert quant.choose_plan(cfg, 32 * GiB).plan == "int8"
    assert quant.choose_plan(cfg, 24 * GiB).plan == "nf4"
    assert quant.choose_plan(cfg, 12 * GiB) is None
    assert 0 < quant.max_context(cfg, "nf4", 18 * GiB) < quant.max_context(cfg, "nf4", 24 * GiB)


def test_load_config_accepts_profiles_directories_and_bundled(tmp_path):
    from dgterm.engine.local import checkpoint

    assert PROFILE in quant.list_profiles()
    assert quant.load_config("bundled").text_config.hidden_size == 256
    assert quant.load_config(str(checkpoint.bundled_dir())).canvas_length == 128
    assert quant.load_config(str(quant.profiles_dir() / PROFILE)).text_config.num_experts == E
    with pytest.raises(ModelLoadError, match="not a profile"):
        quant.load_config(str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelLoadError, match="not DiffusionGemma"):
        quant.load_config(str(tmp_path))


def test_plans_serialise_for_doctor(plans, capsys):
    d = plans["nf4"].as_dict()
    assert d["total"] == plans["nf4"].total and d["formats"]["experts"] == "nf4"
    json.dumps(d)
    assert "| experts |" in export.table(list(plans.values()))
    from dgterm import cli

    assert cli.main(["bench", "plans", PROFILE, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["plan"] for p in out] == ["bf16", "int8", "nf4"]


def test_importing_quant_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, dgterm.engine.local.quant, dgterm.engine.local.quant.planner, "
            "dgterm.engine.local.quant.profiles, dgterm.engine.local.checkpoint; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
