"""`dgterm refine` and `dgterm infill --json`'s tokens, as a user runs them: real files, real models."""

from __future__ import annotations

import json

import pytest

from tests.corpus import BINARY
from tests.helpers.cli import dgterm

CRLF = "def add(a, b):\r\n    return a + b  # é\r\nprint(add(1, 2))\r\n"


@pytest.fixture
def path(tmp_path):
    """A file with CRLF line ends and a non-ASCII character, as a user's might be."""
    file = tmp_path / "a.py"
    file.write_bytes(CRLF.encode())
    return file


def report(*args) -> dict:
    """``dgterm ARGS --json``'s report; the command must succeed."""
    out = dgterm(*args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_refine_json_lists_kept_and_renoised_tokens_in_the_files_characters(tiny_dir, path):
    refined = report("refine", path, "--span", "4:40", "--below", "0.5", "--model", tiny_dir, "--seed", "0",
                     "--candidates", "2")
    assert refined["span"] == {"start": 4, "end": 40} and refined["below"] == 0.5
    tokens = sorted(refined["kept"] + refined["renoised"], key=lambda t: t["start"])
    assert tokens[0]["start"] == 4 and tokens[-1]["end"] == 40
    assert all(a["end"] == b["start"] for a, b in zip(tokens, tokens[1:]))  # they tile the span
    assert all(CRLF[t["start"] : t["end"]] == t["text"] for t in tokens)
    assert refined["renoised"] and all(t["confidence"] < 0.5 for t in refined["renoised"])
    assert all(t["confidence"] >= 0.5 for t in refined["kept"])
    for cand in refined["candidates"]:
        rebuilt = []
        for t in tokens:  # the original, each run of re-noised tokens replaced by its new text
            if t in refined["renoised"]:
                if not rebuilt or rebuilt[-1] is not None:
                    rebuilt.append(None)
            else:
                rebuilt.append(t["text"])
        runs = iter(cand["runs"])
        middle = "".join(next(runs)["text"] if piece is None else piece for piece in rebuilt)
        assert cand["text"] == CRLF[:4] + middle + CRLF[40:]
        assert [cand["text"][r["start"] : r["end"]] for r in cand["runs"]] == [r["text"] for r in cand["runs"]]
    assert path.read_bytes() == CRLF.encode()  # not --in-place


def test_refine_in_place_writes_the_best_and_keeps_every_other_byte(tiny_dir, path):
    best = report("refine", path, "--span", "16:35", "--below", "0.9", "--in-place", "--model", tiny_dir,
                  "--seed", "1")["candidates"][0]
    written = path.read_bytes().decode()
    assert written == best["text"] and written.startswith(CRLF[:16]) and written.endswith(CRLF[35:])


@pytest.mark.parametrize(("args", "sentence"), [
    (["--span", "0:999"], "Span 0:999 is outside the file (0:57); give offsets inside it."),
    (["--span", "3:3"], "The span to refine is empty; give START:END with START < END."),
    (["--span", "0:4:2"], "Span '0:4:2' is START:END; a refine keeps the span's tokens, so it takes no LENGTH."),
    (["--span", "0:4", "--below", "1.5"], "--below takes a probability between 0 and 1, like 0.1, not '1.5'."),
    (["--span", "0:4", "--below", "nan"], "--below takes a probability between 0 and 1, like 0.1, not 'nan'."),
    (["--span", "0:4", "--below", "most"], "--below takes a probability between 0 and 1, like 0.1, not 'most'."),
    ([], "No span given; pass --span START:END (character offsets into the file)."),
    (["--span", "0:4", "--below", "0"], "No token of the span is under the threshold 0; raise it to refine more."),
])
def test_refine_bad_input_is_one_sentence_and_leaves_the_file(tiny_dir, path, args, sentence):
    out = dgterm("refine", path, *args, "--in-place", "--model", tiny_dir)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"dgterm: {sentence}"]
    assert path.read_bytes() == CRLF.encode()


def test_refine_refuses_a_binary_file(tiny_dir):
    out = dgterm("refine", BINARY, "--span", "0:4", "--model", tiny_dir)
    assert out.returncode == 2 and "binary" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_infill_json_gives_each_candidates_tokens_with_confidence_at_file_offsets(tiny_dir, path):
    filled = report("infill", path, "--span", "41:46", "--span", "4:7:3", "--model", tiny_dir, "--seed", "0",
                    "--candidates", "2")
    for cand in filled["candidates"]:
        assert len(cand["tokens"]) == 2  # per span, in the order given
        for tokens in cand["tokens"]:
            for t in tokens:
                assert cand["text"][t["start"] : t["end"]] == t["text"] and 0 <= t["confidence"] <= 1
        late, early = cand["tokens"]
        assert early[0]["start"] == 4 and late[0]["start"] > early[-1]["end"]
        assert "".join(t["text"] for t in _whole(early)) == cand["spans"][1]


def _whole(tokens):
    """One entry per character range (the byte pieces of a character share its offsets)."""
    seen, out = set(), []
    for t in tokens:
        if (t["start"], t["end"]) not in seen:
            seen.add((t["start"], t["end"]))
            out.append(t)
    return out
