"""The REPL stays up (or says one sentence) whatever its input, model or history is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest



def test_bad_input_lines_and_bad_models_keep_a_piped_repl_up(tmp_path):
    script = b"/model " + str(tmp_path / "nope").encode() + b"\n/model " + str(tmp_path).encode() + \
        b"\nhi \xff there\n/model bundled\n/steps 2\n"
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "repl", "--mode", "plain"], input=script,
                         capture_output=True, timeout=300)
    err = out.stderr.decode("utf-8", "replace")
    assert out.returncode == 1 and "Traceback" not in err
    assert "does not exist" in err and "no config.json" in err and "not UTF-8" in err
    assert err.count("stdlib-7m:") == 2 and "steps = 2" in out.stdout.decode() + err


def test_a_closed_stdin_is_one_sentence():
    out = subprocess.run(f"{sys.executable} -m dgterm.cli repl <&-", shell=True, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "dgterm: Standard input is closed, and the REPL reads from it; give it a terminal or a file."]


@pytest.mark.parametrize("kind", ["folder", "/dev/zero", "too big"])
def test_a_bad_history_file_is_noted_once(run_repl, bundled, isolated_user_dirs, kind):  # noqa: F811
    state = isolated_user_dirs / "state"
    state.mkdir(exist_ok=True)
    history = state / "repl_history"
    if kind == "folder":
        history.mkdir()
    elif kind == "/dev/zero":
        history.symlink_to("/dev/zero")
    else:
        with open(history, "wb") as f:
            f.truncate(17 << 20)
    r = run_repl(["/help", "/steps 3"], lm=bundled)
    assert r.err.count("History will not be saved") == 1 and "Traceback" not in r.err + r.out
    assert "steps = 3" in r.out + r.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_history_file_is_noted(run_repl, bundled, isolated_user_dirs):  # noqa: F811
    state = isolated_user_dirs / "state"
    state.mkdir(exist_ok=True)
    (state / "repl_history").write_text("")
    (state / "repl_history").chmod(0)
    r = run_repl(["/help"], lm=bundled)
    assert r.err.count("History will not be saved") == 1


def test_trace_onto_a_fifo_is_refused(run_repl, bundled, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run_repl(["/steps 2", "/canvases 1", "hello", f"/trace {fifo}"], lm=bundled)
    assert f"/trace {fifo} is a FIFO, not a file" in r.err and "Traceback" not in r.err + r.out


def test_model_with_nan_weights_keeps_the_working_model(run_repl, bundled, tiny_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    model = shutil.copytree(tiny_dir, tmp_path / "nan")
    tensors = load_file(model / "model.safetensors")
    tensors[sorted(tensors)[0]].view(-1)[0] = float("nan")
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    r = run_repl([f"/model {model}", "/steps 2"], lm=bundled)
    assert "hold NaN or infinite values" in r.err and "Traceback" not in r.err + r.out
    assert r.repl.lm is bundled  # still loaded, not unloaded for the bad one
