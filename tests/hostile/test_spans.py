"""--span offsets count the file's own characters: CRLF is two, a BOM none; what is printed
keeps the file's line endings, and the bytes outside the span never change."""

from __future__ import annotations

import codecs
import json

import pytest

from tests.helpers.cli import dgterm

RAW = "first line\r\nsecond line\r\nthe last line"  # no final newline


@pytest.fixture
def crlf(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(codecs.BOM_UTF8 + RAW.encode())
    return path


def test_an_in_place_infill_on_a_bom_crlf_file_touches_only_its_span(crlf):
    start = RAW.index("second")
    end = start + len("second")
    out = dgterm("infill", crlf, "--span", f"{start}:{end}", "--in-place", "--steps", "4", "--seed", "1")
    assert out.returncode == 0, out.stderr
    data = crlf.read_bytes()
    head, tail = codecs.BOM_UTF8 + RAW[:start].encode(), RAW[end:].encode()
    assert data.startswith(head) and data.endswith(tail)
    assert b"\n" not in data[len(head):len(data) - len(tail)].replace(b"\r\n", b"")
    printed = out.stdout[:-1] if not RAW.endswith("\n") else out.stdout  # print adds a final newline
    assert printed.encode() == data[len(codecs.BOM_UTF8):]  # printed as the file holds it: CRLF kept


def test_the_json_text_keeps_the_files_line_endings(crlf):
    out = dgterm("infill", crlf, "--span", "0:5", "--json", "--steps", "4", "--seed", "1")
    text = json.loads(out.stdout)["candidates"][0]["text"]
    assert text.endswith("\r\nsecond line\r\nthe last line") and "\r\n" in text


def test_an_offset_inside_a_crlf_is_refused(crlf):
    inside = RAW.index("\r\n") + 1
    out = dgterm("infill", crlf, "--span", f"0:{inside}")
    assert out.returncode == 2 and "between the CR and LF" in out.stderr
    out = dgterm("infill", crlf, "--span", f"0:{len(RAW) + 1}")
    assert out.returncode == 2 and f"outside the file (0:{len(RAW)})" in out.stderr
