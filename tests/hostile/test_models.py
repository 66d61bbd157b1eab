"""Broken checkpoints: each is refused with one sentence before it can run (or write
output into a file), and ``dgterm doctor`` does not call it ok."""

from __future__ import annotations

import json
import os
import shutil
import struct

import pytest
from safetensors.torch import load_file, save_file

from tests.helpers.cli import dgterm


@pytest.fixture
def model(tiny_dir, tmp_path):
    """A private copy of the tiny checkpoint, to break."""
    return shutil.copytree(tiny_dir, tmp_path / "model")


def _config(model, **changes):
    path = model / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _tensors(model, change):
    path = model / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _drop_one(t):
    del t[sorted(t)[-1]]


def _add_one(t):
    t["model.decoder.extra.weight"] = next(iter(t.values())).clone()


def _nan(t):
    t[sorted(t)[0]].view(-1)[0] = float("nan")


def _reshape(t):
    name = next(n for n, x in t.items() if x.dim() == 2)
    t[name] = t[name][:-1].clone()


def _huge_header(model):
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 62) + b"{}")


BREAKS = {
    "config.json is a list": lambda m: (m / "config.json").write_text("[1, 2]"),
    "canvas_length 0": lambda m: _config(m, canvas_length=0),
    "canvas_length negative": lambda m: _config(m, canvas_length=-4),
    "config.json is /dev/zero": lambda m: ((m / "config.json").unlink(), (m / "config.json").symlink_to("/dev/zero")),
    "weights are a FIFO": lambda m: ((m / "model.safetensors").unlink(), os.mkfifo(m / "model.safetensors")),
    "safetensors header impossible": _huge_header,
    "a tensor missing": lambda m: _tensors(m, _drop_one),
    "an unexpected tensor": lambda m: _tensors(m, _add_one),
    "a tensor of the wrong shape": lambda m: _tensors(m, _reshape),
    "NaN weights": lambda m: _tensors(m, _nan),
}


@pytest.mark.parametrize("name", list(BREAKS), ids=list(BREAKS))
def test_a_broken_checkpoint_is_one_sentence_and_writes_nothing(model, tmp_path, name):
    BREAKS[name](model)
    text = tmp_path / "t.txt"
    text.write_text("hello there world\n")
    out = dgterm("infill", text, "--span", "0:5", "--in-place", "--model", model)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith("dgterm: ") and "memory" not in line.lower()
    assert text.read_text() == "hello there world\n"


DOCTOR_BREAKS = ["canvas_length 0", "a tensor missing", "an unexpected tensor", "a tensor of the wrong shape",
                 "config.json is a list", "weights are a FIFO"]


@pytest.mark.parametrize("name", DOCTOR_BREAKS, ids=DOCTOR_BREAKS)
def test_doctor_does_not_call_a_broken_checkpoint_ok(model, name):
    BREAKS[name](model)
    out = dgterm("doctor", "--model", model)
    assert out.returncode == 1 and "problem:" in out.stdout and "ok:" not in out.stdout


def test_doctor_says_what_generate_says_of_nan_weights(model):
    _tensors(model, _nan)
    doctor, generate = dgterm("doctor", "--model", model), dgterm("generate", "hi", "--model", model)
    assert doctor.returncode == 1 and generate.returncode == 2
    assert doctor.stdout.splitlines()[-1] == "problem: " + generate.stderr.strip().removeprefix("dgterm: ")


def test_doctor_sees_a_tokenizer_that_does_not_load(model):
    (model / "tokenizer.json").write_text("{ not json")
    out = dgterm("doctor", "--model", model)
    assert out.returncode == 1 and "tokenizer" in out.stdout.splitlines()[-1]


@pytest.mark.parametrize("template", ["{% if %}", "{{ raise_exception('no chat here') }}"], ids=["broken", "raising"])
def test_a_chat_template_that_fails_is_one_sentence(model, template):
    (model / "chat_template.jinja").write_text(template)
    out = dgterm("generate", "hi", "--chat", "--model", model)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert "template" in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_model_folder_is_one_sentence(model):
    model.chmod(0)
    try:
        out = dgterm("generate", "hi", "--model", model)
    finally:
        model.chmod(0o755)
    assert out.returncode == 2 and "cannot be read" in out.stderr


@pytest.fixture(scope="module")
def prequantized(tiny_dir, tmp_path_factory):
    """The tiny checkpoint saved pre-quantized (nf4), as `dgterm quantize` writes it."""
    out = tmp_path_factory.mktemp("nf4") / "tiny-nf4"
    assert dgterm("quantize", tiny_dir, out, "--dtype", "fp32", "--device", "cpu").returncode == 0
    return out


def _prequantized_tensors(model, change):
    (path,) = model.glob("*.safetensors")
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _nan_in_a_norm(t):
    t[next(n for n in sorted(t) if n.endswith("norm.weight"))].view(-1)[0] = float("nan")


PREQUANTIZED_BREAKS = {"a tensor missing": _drop_one, "an unexpected tensor": _add_one, "NaN weights": _nan_in_a_norm}


@pytest.mark.parametrize("name", list(PREQUANTIZED_BREAKS), ids=list(PREQUANTIZED_BREAKS))
def test_a_broken_prequantized_checkpoint_is_refused_too(prequantized, tmp_path, name):
    model = shutil.copytree(prequantized, tmp_path / "model")
    _prequantized_tensors(model, PREQUANTIZED_BREAKS[name])
    text = tmp_path / "t.txt"
    text.write_text("hello there world\n")
    out = dgterm("infill", text, "--span", "0:5", "--in-place", "--model", model)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert ("NaN" if name == "NaN weights" else "weights (") in line and "memory" not in line.lower()
    assert text.read_text() == "hello there world\n"
