"""Flags: checked before the model loads, values that look like flags, exact token counts."""

from __future__ import annotations

import os

import pytest

from dgterm.engine.output import tokens
from dgterm.editor import Document, DocumentError
from dgterm.engine import tasks
from dgterm.engine.local import loading
from tests.helpers.cli import dgterm


@pytest.fixture
def no_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the flags were checked")

    monkeypatch.setattr(loading, "load", refuse)


@pytest.mark.parametrize("command", [("generate", "hi"), ("infill", __file__, "--span", "0:3")])
@pytest.mark.parametrize("flag", [("--steps", "0"), ("--t-max", "-5"), ("--confidence", "nan")])
def test_sampler_flags_are_checked_before_the_model_loads(no_load, command, flag):
    out = dgterm(*command, *flag)
    assert out.returncode == 2 and "Bad sampler setting" in out.stderr


def test_a_span_that_looks_like_a_flag_is_taken_as_a_value(tmp_path, no_load):
    path = tmp_path / "f.txt"
    path.write_text("hello world\n")
    out = dgterm("infill", path, "--span", "-1:3")
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "dgterm: Span -1:3 is outside the file (0:12); give offsets inside it."]


@pytest.mark.parametrize("n", [1, 16, 130])
def test_max_new_tokens_is_honoured_exactly(bundled, n):
    params = bundled.defaults.replace(max_new_tokens=n, seed=1, steps=4)
    task = tasks.continue_text(bundled, "def f(x):", params)
    result = task.collect()
    ids = [int(i) for c in result.run.canvases for i in c[0].tolist()]
    assert len(ids) >= n  # canvases are whole ...
    assert result.best.text == tokens.decode(bundled.tokenizer, ids[:n])  # ... but the text is the first n tokens


def test_a_read_only_file_system_is_named(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    path.write_text("x")
    doc = Document.open(path)
    doc.insert(0, "y")
    real = os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            return os.ST_RDONLY | self.st.f_flag if name == "f_flag" else getattr(self.st, name)

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real(p)))
    with pytest.raises(DocumentError, match="file system is mounted read-only; save it somewhere else") as e:
        doc.save()
    assert "permissions" not in str(e.value)
    assert path.read_text() == "x"
