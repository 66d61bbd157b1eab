"""The fixture is shaped like the released checkpoint: files, configs, names, tokenizer."""

from __future__ import annotations

import json

import pytest

from dgterm.engine.params import SamplerParams

from .make_checkpoint import PROFILE


def test_files_configs_and_shards_have_the_real_layout(realshape):
    ckpt = realshape.checkpoint
    config = json.loads((ckpt / "config.json").read_text())
    profile = json.loads(PROFILE.read_text())
    assert config["architectures"] == ["DiffusionGemmaForBlockDiffusion"] and config["model_type"] == "diffusion_gemma"
    for key in ("eos_token_id", "pad_token_id", "bos_token_id", "boi_token_id", "eoi_token_id", "image_token_id",
                "tie_word_embeddings"):
        assert config[key] == profile[key], key
    text, real = config["text_config"], profile["text_config"]
    for key in ("vocab_size", "max_position_embeddings", "sliding_window", "use_bidirectional_attention",
                "final_logit_softcapping", "rope_parameters", "enable_moe_block", "tie_word_embeddings"):
        assert text[key] == real[key], key
    assert text["layer_types"] == real["layer_types"][:6] and text["layer_types"][5] == "full_attention"
    assert config["vision_config"]["model_type"] == "gemma4_vision"
    gen = json.loads((ckpt / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [1, 106, 50] and gen["pad_token_id"] == 0
    assert (gen["max_denoising_steps"], gen["t_max"], gen["t_min"], gen["sampler_config"]["entropy_bound"]) == (
        48, 0.8, 0.4, 0.1)

    index = json.loads((ckpt / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in ckpt.glob("*.safetensors"))
    assert len(shards) >= 3 and sorted(set(index["weight_map"].values())) == shards
    names = set(index["weight_map"])
    for part in (".embed_tokens.weight", "model.encoder.vision_tower.",
                 "model.encoder.embed_vision.", "model.decoder.self_conditioning.", ".experts.gate_up_proj",
                 ".router.proj.weight", ".mlp.gate_proj.weight"):
        assert any(part in n for n in names), part
    assert "lm_head.weight" not in names  # tied: the encoder, decoder and head share one stored embedding


def test_the_cache_snapshot_is_what_huggingface_hub_resolves_offline(realshape, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import snapshot_download

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(realshape.hf_home / "hub"))
    assert snapshot_download(realshape.repo_id, local_files_only=True) == str(realshape.snapshot)
    assert all(p.is_symlink() for p in realshape.snapshot.iterdir())
    names = sorted(p.name for p in realshape.snapshot.iterdir())
    assert names == sorted(p.name for p in realshape.checkpoint.iterdir())


SPECIAL_IDS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "<|tool_response>": 50,
               "<|think|>": 98, "<|channel>": 100, "<channel|>": 101, "<|turn>": 105, "<turn|>": 106,
               "<|image>": 255999, "<|image|>": 258880, "<image|>": 258882}


def test_the_tokenizer_follows_gemma_conventions(gemma):
    tok = gemma.tokenizer
    assert len(tok) == 262144 == gemma.vocab_size
    assert {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_IDS} == SPECIAL_IDS
    assert "<start_of_turn>" not in tok.get_vocab()  # Gemma 2/3's markers are not Gemma 4's
    assert gemma.eos_ids == [1, 106, 50] and gemma.pad_id == 0
    assert gemma.defaults == SamplerParams(steps=48, entropy_bound=0.1, t_max=0.8, t_min=0.4, stability=1,
                                           confidence=0.005, max_new_tokens=256)
    assert tok("a b", add_special_tokens=False)["input_ids"][0] != tok.bos_token_id  # no BOS added
    text = "Tab\there, CRLF\r\nemoji 🙂 and 東京, é."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert "▁" in "".join(pieces) and "<0xF0>" in pieces and "<0xE6>" in pieces  # ▁ for spaces, byte fallback
    assert tok.decode(ids) == text


@pytest.mark.parametrize("thinking", [False, True])
def test_the_chat_template_has_gemma4_turns_and_a_thinking_switch(gemma, thinking):
    tok = gemma.tokenizer
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "reasoning_content": "r"},
                {"role": "user", "content": "Again"}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=thinking)
    assert text.startswith("<bos>") and text.endswith("<|turn>model\n")
    assert "<|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\nr<channel|>Hello<turn|>\n" in text
    assert ("<|think|>" in text) is thinking
