"""1. An output path that is an input is refused, for every command, before anything
is written (the trace once replaced the very file being infilled)."""

from __future__ import annotations

import os

import pytest

from dgterm.engine.local import checkpoint
from tests.helpers.cli import dgterm


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"hello world, this is a file\n")
    return path


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("how", ["same name", "hard link", "symlink", "dotted path"])
def test_infill_trace_naming_the_input_is_refused(text, in_place, how):
    trace = {"same name": text, "hard link": text.with_name("hard"), "symlink": text.with_name("soft"),
             "dotted path": text.parent / "." / text.name}[how]
    if how == "hard link":
        os.link(text, trace)
    elif how == "symlink":
        trace.symlink_to(text)
    before = text.read_bytes()
    out = dgterm("infill", text, "--span", "0:5", *(["--in-place"] if in_place else []), "--trace", trace)
    assert out.returncode == 2 and out.stdout == ""
    assert "--trace" in out.stderr and "choose another path" in out.stderr and len(out.stderr.splitlines()) == 1
    assert text.read_bytes() == before


def test_generate_trace_naming_a_model_file_is_refused(tiny_dir, tmp_path):
    weights = tiny_dir / "model.safetensors"
    before = weights.stat().st_size
    out = dgterm("generate", "hi", "--model", tiny_dir, "--trace", weights)
    assert out.returncode == 2 and "--trace" in out.stderr and "choose another path" in out.stderr
    assert weights.stat().st_size == before


def test_generate_trace_naming_the_bundled_tokenizer_is_refused():
    tokenizer = checkpoint.bundled_dir() / "tokenizer.json"
    before = tokenizer.read_bytes()
    out = dgterm("generate", "hi", "--trace", tokenizer)
    assert out.returncode == 2 and "choose another path" in out.stderr
    assert tokenizer.read_bytes() == before


def test_generate_trace_naming_standard_input_is_refused(text, monkeypatch):
    with open(text) as f:
        monkeypatch.setattr("sys.stdin", f)
        os_stdin = os.dup(0)
        os.dup2(f.fileno(), 0)
        try:
            out = dgterm("generate", "-", "--trace", text)
        finally:
            os.dup2(os_stdin, 0)
            os.close(os_stdin)
    assert out.returncode == 2 and "standard input" in out.stderr
    assert text.read_bytes() == b"hello world, this is a file\n"


def test_quantize_into_a_folder_holding_the_sources_files_is_refused(tiny_dir, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "model.safetensors").symlink_to(tiny_dir / "model.safetensors")
    before = (tiny_dir / "model.safetensors").read_bytes()
    out = dgterm("quantize", tiny_dir, out_dir, "--overwrite", "--device", "cpu")
    assert out.returncode == 2 and "checkpoint being quantized" in out.stderr
    assert (tiny_dir / "model.safetensors").read_bytes() == before
