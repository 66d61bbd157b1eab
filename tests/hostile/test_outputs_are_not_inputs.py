"""1. An output path that is an input is refused before anything
is written (the trace once replaced the very file being infilled)."""

from __future__ import annotations

import os

import pytest

from tests.cli.test_cli import dgterm


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
