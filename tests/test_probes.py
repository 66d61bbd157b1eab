"""`dgterm doctor` on this machine (CPU-only here) and with models that cannot run."""

from __future__ import annotations

import json

import pytest

from dgterm import cli, probes


def _run(capsys, *argv):
    rc = cli.main(["doctor", *argv])
    return rc, capsys.readouterr().out


@pytest.fixture(scope="module")
def cuda():
    import torch

    return torch.cuda.is_available()


def test_the_bundled_model_passes(capsys, cuda):
    rc, out = _run(capsys)
    assert rc == 0
    for line in ("  torch ", "  transformers ", "  bitsandbytes ", "  triton ", "model bundled",
                 "offline       resolves", "parameters    6.", "--quant none", "--quant nf4",
                 "recommended   dgterm repl --model bundled --device", "ok: the chosen setup can run."):
        assert line in out
    from dgterm.config import config_path, state_dir

    assert f"  config        {config_path()}" in out and f"  state         {state_dir()} " in out
    if not cuda:
        assert "CUDA          none: this torch build has no CUDA support" in out or "sees no GPU" in out
        assert "recommended   dgterm repl --model bundled --device cpu\n" in out
        assert "cpu (fp32)" in out


def test_json_has_the_same_report(capsys):
    rc, out = _run(capsys, "--json", "--context", "2048")
    report = json.loads(out)
    assert rc == 0 and report["ok"] and report["chosen"]["problem"] is None
    assert set(report["packages"]) == {"torch", "transformers", "bitsandbytes", "triton"}
    assert report["model"]["parameters"] == sum(report["model"]["by_component"].values())
    cpu = next(row for row in report["memory"]["devices"] if row["device"] == "cpu")
    assert report["memory"]["context"] == 2048
    assert cpu["needs"]["nf4"] <= cpu["needs"]["int8"] <= cpu["needs"]["none"] and cpu["fits"]["none"]
    assert report["chosen"]["needs"] == cpu["needs"]["none"] or report["chosen"]["device"] != "cpu"


def test_a_broken_model_path_fails_with_one_sentence(capsys, tmp_path):
    rc, out = _run(capsys, "--model", str(tmp_path / "missing"))
    assert rc == 1
    sentence = (f"Model path {tmp_path / 'missing'} does not exist; pass a checkpoint directory, a Hugging Face id, "
                "or 'bundled'.")
    assert out.rstrip().endswith("problem: " + sentence) and out.count(sentence) == 1
    assert "memory at" not in out and "recommended" not in out
    (tmp_path / "empty").mkdir()
    rc, out = _run(capsys, "--model", str(tmp_path / "empty"))
    assert rc == 1
    assert out.rstrip().endswith(f"problem: {tmp_path / 'empty'} has no config.json; it is not a model checkpoint.")


def test_a_device_that_is_not_there(capsys, cuda):
    if cuda:
        pytest.skip("this machine has a GPU")
    rc, out = _run(capsys, "--device", "cuda")
    assert rc == 1
    assert out.rstrip().endswith("problem: Device cuda was requested but this machine has no usable CUDA GPU; "
                                 "use --device cpu.")
    assert "recommended   dgterm repl --model bundled --device cpu" in out  # what would run instead


def test_not_enough_memory_anywhere(capsys, monkeypatch):
    real = probes._cpu
    monkeypatch.setattr(probes, "_cpu", lambda: {**real(), "ram_available": 1 << 20})
    monkeypatch.setattr(probes, "_cuda", lambda: {"build": None, "available": False, "devices": [], "reason": "none"})
    rc, out = _run(capsys, "--device", "cpu")
    assert rc == 1 and "recommended" not in out
    assert "problem: The bf16 plan needs" in out and "host RAM has 0.0 GiB free" in out


def test_the_gpu_with_room_is_recommended(capsys, monkeypatch):
    """The decision over CUDA devices (this machine may have none: the probe is replaced)."""
    gpus = [{"device": "cuda:0", "name": "Small GPU", "total": 2 << 30, "free": 100 << 20, "capability": "7.5",
             "bf16": False},
            {"device": "cuda:1", "name": "Big GPU", "total": 80 << 30, "free": 40 << 30, "capability": "9.0",
             "bf16": True}]
    monkeypatch.setattr(probes, "_cuda", lambda: {"build": "12.8", "available": True, "devices": gpus, "reason": None})
    rc, out = _run(capsys, "--device", "cpu")
    assert rc == 0
    assert "  cuda:0        Small GPU · 2.0 GiB total, 100 MiB free · compute 7.5 (no bf16: fp16)" in out
    assert "recommended   dgterm repl --model bundled --device cuda:1\n" in out
    small = next(line for line in out.splitlines() if line.startswith("  cuda:0 (fp16)"))
    assert small.count(" no ") == 3  # 0.5 GiB reserve: nothing fits in 100 MiB


def test_a_bad_sampler_table_is_a_problem(capsys, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text("[sampler]\nsteps = 0\n")
    monkeypatch.setenv("DGTERM_CONFIG", str(config))
    rc, out = _run(capsys)
    assert rc == 1 and out.rstrip().endswith(
        "problem: Bad sampler setting: steps must be at least 1; fix the [sampler] table of the config file.")
