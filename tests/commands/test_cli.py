"""The script-facing CLI as a user runs it: real processes, real files."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

from dgterm.cli import main
from tests.helpers.cli import dgterm
from tests.corpus import BINARY, INVALID_UTF8, odd_files





def test_a_user_error_in_a_real_process_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "infill", tmp_path / "missing.py", "--span", "0:1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"dgterm: {tmp_path / 'missing.py'} does not exist; give an existing file."]


def test_open_checks_its_flags_and_needs_a_terminal(tmp_path):
    path = tmp_path / "f.md"
    out = dgterm("open", path, "--steps", "-3")
    assert out.returncode == 2 and "steps must be at least 1" in out.stderr
    out = dgterm("open", path)  # pytest's stdin and stdout are not a terminal
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "dgterm: dgterm open needs a terminal; in scripts use dgterm infill or dgterm generate."]
    assert not path.exists()


@pytest.fixture
def odd_copy(tmp_path):
    """The odd corpus copied to a temp dir (tests write in place)."""
    paths = []
    for src in odd_files():
        dst = tmp_path / src.name
        shutil.copyfile(src, dst)
        paths.append(dst)
    return paths


def test_infill_in_place_keeps_everything_outside_the_span_byte_for_byte(tiny_dir, odd_copy):
    from dgterm.editor import Document

    checked = 0
    for path in odd_copy:
        doc = Document.open(path)
        text = doc.text
        # A span without a line break: a deleted line ending cannot remember its style.
        a = next((i for i in range(len(text) - 1) if "\n" not in text[i : i + 2]), None)
        if a is None or doc.read_only:
            continue
        before_bytes = path.read_bytes()
        out = dgterm("infill", path, "--span", f"{a}:{a + 2}", "--in-place", "--model", tiny_dir, "--seed", "0",
                     "--json")
        assert out.returncode == 0, out.stderr
        new_span = json.loads(out.stdout)["candidates"][0]["spans"][0].replace(doc.newline, "\n")  # as in the file
        after = Document.open(path)
        assert after.text == text[:a] + new_span + text[a + 2 :], path.name
        assert after.encoding == doc.encoding, path.name
        # Writing the old text back through the same file restores the very same bytes.
        after.replace(a, a + len(new_span), text[a : a + 2])
        after.save()
        assert path.read_bytes() == before_bytes
        checked += 1
    assert checked >= 10


def test_generate_json_and_trace(tiny_dir, tmp_path):
    trace = tmp_path / "run.jsonl"
    out = dgterm("generate", "def main():", "--model", tiny_dir, "--seed", "3", "--json", "--trace", trace)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["stats"]["steps_per_canvas"]
    from dgterm.engine.output.trace import read_trace

    t = read_trace(trace)
    assert t.header["task"] == "generate"
    assert len(t.steps) == sum(report["stats"]["steps_per_canvas"])
    assert t.result["candidates"][0]["text"] == report["candidates"][0]["text"]
    first = t.steps[0]
    assert len(first["argmax"][0]) == len(first["entropy"][0]) == len(first["accepted"][0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--span", "0:9999"], "outside the file"),
        (["--span", "0:5", "--span", "3:8"], "overlap"),
        (["--span", "a:b"], "whole numbers"),
        ([], "No span"),
        (["--span", "5:2"], "ends before it starts"),
        (["--span", "0:5:-3"], "Span length -3 is negative"),
        (["--span", "0:5", "--trace", "/nonexistent/t.jsonl"], "the folder /nonexistent does not exist"),
        (["--span", "0:5", "--trace", "/tmp"], "--trace /tmp is a folder"),
    ],
)
def test_bad_spans_exit_2_with_one_sentence_and_leave_the_file(tiny_dir, tmp_path, args, message):
    path = tmp_path / "f.py"
    path.write_bytes(b"x = 1\r\ny = 2\r\n")
    out = dgterm("infill", path, *args, "--in-place", "--model", tiny_dir)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == b"x = 1\r\ny = 2\r\n"


def test_a_prompt_that_is_not_utf8_is_one_sentence():
    out = dgterm("generate", "abc\udcff")  # how Python passes the byte 0xff of an argument
    assert out.returncode == 2 and out.stderr.strip() == (
        "dgterm: The prompt holds bytes that are not UTF-8; convert it to UTF-8 first.")


def test_bad_files_exit_2(tiny_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    for path, message in [(BINARY, "binary"), (tmp_path, "folder"), (empty, "empty"),
                          (tmp_path / "missing.txt", "does not exist")]:
        out = dgterm("infill", path, "--span", "0:1", "--model", tiny_dir)
        assert out.returncode == 2, path
        assert message in out.stderr and "Traceback" not in out.stderr
    out = dgterm("infill", INVALID_UTF8, "--span", "0:1", "--in-place", "--model", tiny_dir)
    assert out.returncode == 2 and "read-only" in out.stderr


@pytest.mark.parametrize(
    "model, message",
    [("/no/such/dir", "does not exist"), ("nobody/no-such-model", "not in the local Hugging Face cache")],
)
def test_model_errors_exit_2(model, message, tmp_path):
    out = dgterm("generate", "hi", "--model", model)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_checkpoint_problems_are_named(tiny_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = dgterm("generate", "hi", "--model", broken)
    assert out.returncode == 2 and "corrupt" in out.stderr
    (broken / "model.safetensors").unlink()
    out = dgterm("generate", "hi", "--model", broken)
    assert out.returncode == 2 and "no *.safetensors" in out.stderr
    cfg = json.loads((tiny_dir / "config.json").read_text())
    cfg["model_type"] = "llama"
    shutil.copyfile(tiny_dir / "model.safetensors", broken / "model.safetensors")
    (broken / "config.json").write_text(json.dumps(cfg))
    out = dgterm("generate", "hi", "--model", broken)
    assert out.returncode == 2 and "'llama'" in out.stderr
    (broken / "config.json").write_text((tiny_dir / "config.json").read_text())
    (broken / "tokenizer.json").unlink()
    out = dgterm("generate", "hi", "--model", broken)
    assert out.returncode == 2 and "no tokenizer" in out.stderr


def test_cuda_requested_without_a_gpu(tiny_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = dgterm("generate", "hi", "--model", tiny_dir, "--device", "cuda")
    assert out.returncode == 2 and "no usable CUDA GPU" in out.stderr


def test_out_of_memory_during_a_run_is_one_line_and_exit_2(continue_runs_out_of_memory):
    r = dgterm("generate", "def main():", "--candidates", "3", "--steps", "2")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == ["dgterm: Out of memory on the device during the run; nothing was changed — try "
                                     "fewer candidates (now 3), a shorter context or --quant nf4."]


@pytest.mark.parametrize("args, words", [
    (["bench", "speed", "--steps", "0"], "argument --steps: 0 is too small: give 1 or more"),
    (["bench", "speed", "--steps", "16,a"], "argument --steps: 'a' is not a whole number"),
    (["bench", "speed", "--repeats", "0"], "argument --repeats: 0 is too small"),
    (["bench", "quality", "-n", "-1"], "argument -n: -1 is too small"),
    (["bench", "quality", "--kinds", "token,lines"], "argument --kinds: unknown kind 'lines'"),
    (["bench", "quality", "--candidates", "0"], "argument --candidates: 0 is too small"),
    (["doctor", "--context", "-5"], "argument --context: -5 is too small"),
])
def test_counts_on_the_command_line_are_checked_by_argparse(args, words):
    out = dgterm(*args)
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr


def test_a_piped_repl_without_a_model_exits_2(tmp_path):
    out = dgterm("repl", "--model", tmp_path / "nope")  # pytest's stdin is not a terminal: a script
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = dgterm("repl", "--steps", "0")
    assert out.returncode == 2 and "steps must be at least 1" in out.stderr


def test_infill_in_place_leaves_a_file_changed_during_the_run(tiny_dir, tmp_path, monkeypatch):
    from dgterm.commands import output
    from dgterm.editor import journal

    path = tmp_path / "f.py"
    path.write_text("x = 1\ny = 2\n")
    drive = output.drive

    def someone_edits(*args):
        result = drive(*args)
        path.write_text("theirs\n")
        return result

    monkeypatch.setattr(output, "drive", someone_edits)
    out = dgterm("infill", path, "--span", "0:1", "--in-place", "--model", tiny_dir)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"dgterm: {path} changed on disk during the run, so it was left as it is; run the infill again."]
    assert path.read_text() == "theirs\n" and not journal.journal_dir(str(path)).exists()


def test_infill_json_echoes_the_spans_in_the_order_given(tiny_dir, tmp_path):
    path = tmp_path / "a.py"
    path.write_text("def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n")
    out = dgterm("infill", path, "--span", "33:44", "--span", "4:7:2", "--model", tiny_dir, "--seed", "0", "--json",
                 "--candidates", "2")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["spans"] == [{"start": 33, "end": 44, "length": None, "text": "print(add(1"},
                               {"start": 4, "end": 7, "length": 2, "text": "add"}]
    text = path.read_text()
    for cand in report["candidates"]:
        late, early = cand["spans"]  # the order given
        assert cand["text"] == text[:4] + early + text[7:33] + late + text[44:]
        assert cand["valid"] in (True, False) and cand["score"] <= 0 and "entropy" in cand
        assert bool(cand["reason"]) != cand["valid"]


def test_require_valid_draws_until_a_candidate_parses_or_says_none_did(tiny_dir, tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"name": "x", "size": 12}\n')
    before = path.read_bytes()
    out = dgterm("infill", path, "--span", "9:12", "--model", tiny_dir, "--seed", "0", "--json", "--candidates", "2",
                 "--require-valid", "4", "--in-place")
    report = json.loads(out.stdout)
    if out.returncode == 0:  # a random model may find one; then it is valid and written
        assert report["candidates"][0]["valid"] and path.read_text() == report["candidates"][0]["text"]
    else:
        assert out.returncode == 1 and len(report["candidates"]) == 4 and not any(c["valid"] for c in report["candidates"])
        assert out.stderr.startswith(f"dgterm: none of the 4 candidates leaves {path} valid (the likeliest: ")
        assert out.stderr.rstrip().endswith("the file is left as it is.") and path.read_bytes() == before
    notes = tmp_path / "notes.md"
    notes.write_text("some notes\n")
    out = dgterm("infill", notes, "--span", "0:4", "--model", tiny_dir, "--require-valid")
    assert out.returncode == 2 and "--require-valid needs a file dgterm can parse (Python, JSON" in out.stderr


def test_torch_threads_spin_briefly_unless_the_user_set_how(monkeypatch):
    """``dgterm`` sets GNU OpenMP's spin count before torch loads (docs/benchmarks.md, "CPU
    threads on a busy machine"), and leaves the wait alone when the user chose one."""
    import os

    from dgterm import cli

    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert os.environ["GOMP_SPINCOUNT"] == cli.SPINCOUNT
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "7")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert os.environ["GOMP_SPINCOUNT"] == "7"
