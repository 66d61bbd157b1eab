"""What a first user runs on the real checkpoint, on its small twin: doctor, generate --chat,
infill, quantize. The weights are random, so the tests check the mechanics (files valid,
text decoded, thinking apart, bytes kept), never what the model says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.cli import dgterm
from tests.helpers.realshape import TEXT, clean


def stored_elements(path) -> int:
    """Numbers held by a checkpoint's safetensors shards (weights and persistent buffers)."""
    import math
    import struct

    total = 0
    for shard in path.glob("*.safetensors"):
        with shard.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def test_doctor_on_the_hub_id_offline_in_a_real_process(realshape, tmp_path):
    env = {**os.environ, "HF_HOME": str(realshape.hf_home), "HF_HUB_OFFLINE": "1",
           "DGTERM_CONFIG": str(tmp_path / "none.toml")}
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "doctor", "--model", realshape.repo_id, "--json"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    model = report["model"]
    assert model["resolves_offline"] and model["path"] == str(realshape.snapshot) and model["chat_template"]
    assert model["parameters"] == stored_elements(realshape.checkpoint)  # the planner's meta build, counted
    components = {"embed", "experts", "mlp", "attention", "vision", "self_conditioning", "router"}
    assert components <= set(model["by_component"])
    assert (model["vocab_size"], model["layers"], model["max_positions"]) == (262144, 6, 262144)
    cpu = next(r for r in report["memory"]["devices"] if r["device"] == "cpu")
    assert set(cpu["needs"]) == {"none", "int8", "nf4"} and cpu["needs"]["nf4"] <= cpu["needs"]["none"]
    assert report["recommended"].startswith(f"dgterm repl --model {realshape.repo_id} --device ")
    assert report["ok"]


@pytest.fixture
def hub_id(realshape, monkeypatch):
    """``--model google/diffusiongemma-26B-A4B-it`` resolves to the fixture's cache, offline."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(realshape.hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(realshape.hf_home / "hub"))
    return realshape.repo_id


def test_generate_chat_on_the_hub_id_prints_a_thought_apart_from_the_answer(hub_id, gemma, monkeypatch):
    """As if the model had opened a thinking channel (random weights never do): the real split
    runs on the generated ids with a thought in front; stdout gets the answer, stderr the thought."""
    from dgterm.engine.output import tokens
    from dgterm.engine.tasks import continuation

    split = tokens.split_thinking
    thought = gemma.tokenizer("<|channel>thought\nfirst 東京<channel|>", add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(continuation, "split_thinking", lambda tokenizer, ids: split(tokenizer, thought + ids))
    out = dgterm("generate", "--chat", "Say hi", "--model", hub_id, "--steps", "2", "--seed", "3",
                 "--max-new-tokens", "32")
    assert out.returncode == 0, out.stderr
    assert "dgterm: thinking: first 東京\n" in out.stderr and "東京" not in out.stdout and clean(out.stdout)





def test_infill_in_place_keeps_crlf_emoji_and_cjk_byte_for_byte(gemma, realshape, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    a = TEXT.index("middle")  # --span counts the file's characters: each CRLF is two
    b = a + len("middle line")
    c = TEXT.index("東京")
    out = dgterm("infill", path, "--span", f"{c}:{c + 2}", "--span", f"{a}:{b}:6", "--model", realshape.checkpoint,
                 "--steps", "2", "--seed", "1", "--in-place", "--json")
    assert out.returncode == 0, out.stderr
    first, second = json.loads(out.stdout)["candidates"][0]["spans"]
    data = path.read_bytes()  # the spans come back in the file's line endings too
    assert data == (TEXT[:c] + first + TEXT[c + 2 : a] + second + TEXT[b:]).encode("utf-8")
    assert data.startswith("第一行：".encode()) and data.endswith(TEXT[b:].encode("utf-8"))
    assert clean(first + second)


def test_quantize_to_nf4_then_load_streamed_and_run(gemma, realshape, tmp_path):
    from dgterm.engine import tasks
    from dgterm.engine.local import loading

    out_dir = tmp_path / "nf4"
    out = dgterm("quantize", realshape.snapshot, out_dir, "--plan", "nf4")
    assert out.returncode == 0, out.stderr
    marker = json.loads((out_dir / "dgterm-quant.json").read_text())
    index = json.loads((out_dir / "model.safetensors.index.json").read_text())
    assert marker["plan"] == "nf4" and sorted(set(index["weight_map"].values())) == marker["shards"]
    assert any(k.startswith("model.encoder.vision_tower.") for k in index["weight_map"])
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "config.json"):
        assert (out_dir / name).is_file() and not (out_dir / name).is_symlink()
    lm = loading.load(str(out_dir))
    assert lm.quant == "nf4" and lm.info["prequantized"]
    assert lm.eos_ids == [1, 106, 50] and lm.has_chat_template and lm.defaults == gemma.defaults
    assert lm.parameters() == gemma.parameters()
    result = tasks.continue_text(lm, "Hello", lm.defaults.replace(steps=2, seed=1, max_new_tokens=32)).collect()
    assert clean(result.best.text)


def test_a_download_cut_short_is_one_sentence(realshape, tmp_path):
    shutil.copytree(realshape.hf_home, tmp_path / "hf_home", symlinks=True)
    snapshot = tmp_path / realshape.snapshot.relative_to(realshape.root)
    shard = sorted(snapshot.glob("model-*.safetensors"))[-1]
    shard.unlink()
    out = dgterm("generate", "Hi", "--model", snapshot)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"dgterm: {snapshot} lacks the weights shard {shard.name} named by its index; "
        "the download is incomplete: download the checkpoint again."]
