"""Bad paths, broken outputs, bad flags and configs: one sentence each, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.cli import dgterm

LONG = "x" * 300


@pytest.fixture
def bad_paths(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return {"symlink loop": loop, "inside a loop": loop / "a", "name too long": tmp_path / LONG,
            "folder name too long": tmp_path / LONG / "a"}


COMMANDS = {
    "infill": lambda p: ("infill", p, "--span", "0:1"),
    "generate --trace": lambda p: ("generate", "hi", "--trace", p),
    "generate --model": lambda p: ("generate", "hi", "--model", p),
    "infill --trace": lambda p: ("infill", __file__, "--span", "0:1", "--trace", p),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", ["symlink loop", "inside a loop", "name too long", "folder name too long"])
def test_a_bad_path_is_one_sentence(bad_paths, command, kind):
    out = dgterm(*COMMANDS[command](bad_paths[kind]))
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1 and out.stderr.startswith("dgterm: ")


@pytest.mark.parametrize("kind", ["symlink loop", "name too long"])
def test_doctor_and_the_config_take_a_bad_path(bad_paths, kind, monkeypatch):
    out = dgterm("doctor", "--model", bad_paths[kind])
    assert out.returncode == 1 and "cannot be used" in out.stdout.splitlines()[-1]
    monkeypatch.setenv("DGTERM_CONFIG", str(bad_paths[kind]))
    out = dgterm("generate", "hi")
    assert out.returncode == 2 and "config file" in out.stderr and len(out.stderr.splitlines()) == 1


def test_a_document_with_a_bad_path_says_so(bad_paths):
    from dgterm.editor import Document, DocumentError

    for path in bad_paths.values():
        with pytest.raises(DocumentError, match="Cannot open"):
            Document.open(path)


# ---- the config ----------------------------------------------------------------------------


@pytest.mark.parametrize("content,words", [
    (b"\xef\xbb\xbfmodel = 'bundled'\n", "byte order mark"),
    (b"[keymap]\n'dgterm.rewrite' = 3\n", "[keymap]"),
    (b"[keymap]\n'dgterm.rewrite' = ['ctrl+r']\n", "[keymap]"),
])
def test_a_bad_config_is_one_sentence(isolated_user_dirs, content, words):
    (isolated_user_dirs / "config.toml").write_bytes(content)
    out = dgterm("generate", "hi")
    assert out.returncode == 2 and words in out.stderr and len(out.stderr.splitlines()) == 1


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_config_that_is_not_a_file_does_not_hang(tmp_path, monkeypatch, special):
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)
    monkeypatch.setenv("DGTERM_CONFIG", str(special))
    out = dgterm("generate", "hi")
    assert out.returncode == 2 and "not a regular file" in out.stderr


@pytest.mark.parametrize("value,allowed", [("maybe", False), ("1", True), ("off", True)])
def test_allow_offload_must_be_yes_or_no(monkeypatch, value, allowed):
    from dgterm.config import load_settings
    from dgterm.errors import DgtermError

    monkeypatch.setenv("DGTERM_ALLOW_OFFLOAD", value)
    if allowed:
        load_settings()
    else:
        with pytest.raises(DgtermError, match="DGTERM_ALLOW_OFFLOAD='maybe' is not a yes or no"):
            load_settings()


# ---- broken outputs ------------------------------------------------------------------------


def test_output_to_a_full_disk_and_to_a_closed_stdout():
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "dgterm.cli", "generate", "hi", "--max-new-tokens", "4"],
                             stdout=full, stderr=subprocess.PIPE, timeout=300, text=True)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "dgterm: cannot write the output (No space left on device); check the disk or where the output goes."]
    out = subprocess.run(f"{sys.executable} -m dgterm.cli generate hi >&-", shell=True, stderr=subprocess.PIPE,
                         timeout=300, text=True)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "dgterm: standard output is closed; redirect it to a file or /dev/null."]


def test_a_broken_pipe_is_quiet():
    out = subprocess.run(f"{sys.executable} -m dgterm.cli generate hi --max-new-tokens 300 --json | head -c1",
                         shell=True, capture_output=True, timeout=300, text=True)
    assert out.stdout == "{" and "Traceback" not in out.stderr and "Error" not in out.stderr


def test_a_trace_on_a_full_disk_or_with_undecodable_bytes_in_its_name(tmp_path):
    out = dgterm("generate", "hi", "--max-new-tokens", "4", "--trace", "/dev/full")
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "dgterm: Cannot write the trace /dev/full (No space left on device); free some space or choose another path."]
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/tr\xff.jsonl")
    src = os.fsdecode(os.fsencode(str(tmp_path)) + b"/f\xfe.txt")
    with open(src, "w") as f:
        f.write("hello world\n")
    out = dgterm("infill", src, "--span", "0:5", "--trace", name)
    assert out.returncode == 0, out.stderr
    from dgterm.engine.output.trace import read_trace

    assert read_trace(name).header["file"] == src


# ---- dgterm train and bench ---------------------------------------------------------------


@pytest.mark.parametrize("args,words", [
    (["{file}"], "is a file"),
    (["{dir}", "--export", "{file}"], "is a file"),
    (["{dir}", "--batch-size", "0"], "too small"),
    (["{dir}", "--steps", "-1"], "too small"),
    (["{dir}", "--lr", "nan"], "not a learning rate"),
    (["{dir}", "--device", "quantum"], "Unknown device"),
    (["{corrupt}"], "damaged"),
    (["{corrupt stream}"], "stream.pt is not a token cache dgterm wrote (it is damaged); delete it"),
    (["{corrupt stream}", "--no-resume"], "damaged"),
])
def test_train_refuses_bad_input_before_training(tmp_path, args, words):
    (tmp_path / "f").write_text("x")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "checkpoint.pt").write_text("garbage")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "stream.pt").write_text("garbage")
    names = {"file": tmp_path / "f", "dir": tmp_path / "w", "corrupt": tmp_path / "c", "corrupt stream": tmp_path / "s"}
    out = dgterm("train", *[a.format(**names) for a in args])
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr


def test_bench_quality_takes_no_negative_seed():
    out = dgterm("bench", "quality", "--seed", "-1")
    assert out.returncode == 2 and "too small" in out.stderr


# ---- closed standard input, FIFOs, empty names ------------------------------------------------


def test_generate_from_a_closed_stdin_is_one_sentence():
    out = subprocess.run(f"{sys.executable} -m dgterm.cli generate - <&-", shell=True, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "dgterm: Standard input is closed, so there is no prompt to read; give the prompt as an argument or "
        "from a file."]


def test_a_trace_onto_a_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "generate", "hi", "--trace", str(fifo)],
                         capture_output=True, text=True, timeout=120)  # before the fix: blocked in open()
    assert out.returncode == 2 and out.stderr.splitlines() == [
        f"dgterm: --trace {fifo} is a FIFO, not a file; give the name of a regular file."]


def test_an_empty_model_name_is_an_error_not_the_default_model():
    out = dgterm("generate", "hi", "--model", "")
    assert out.returncode == 2 and "the model name is empty" in out.stderr and not out.stdout


def test_doctor_says_it_plans_a_huge_context_for_the_model_s_most():
    out = dgterm("doctor", "--context", "99999999999999")
    assert "note: --context 99,999,999,999,999 is more than the model's 32,768 positions, so the memory is planned " \
        "for 32,768." in out.stdout and "memory at 32768 tokens" in out.stdout
