"""`dgterm doctor` answers "will it run on my card, and how?": a verdict per card with the
command to run, exit 0 when a plan exists, the profile found by name or by any path, and every
command an error message suggests is one the CLI accepts."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest

from dgterm import cli
from dgterm.engine.local import quant
from dgterm.engine.local.quant import GiB
from tests.helpers.cli import dgterm

PROFILE = "diffusiongemma-26b-a4b"
ROOT = Path(__file__).resolve().parents[2]


def _doctor(*argv):
    out = dgterm("doctor", "--model", PROFILE, "--json", *argv)
    return out.returncode, json.loads(out.stdout)


def _parses(command: str) -> None:
    """The command is one the CLI's parser accepts (argparse exits on anything else)."""
    argv = shlex.split(command)
    assert argv[0] == "dgterm"
    args = cli.build_parser().parse_args(argv[1:])
    assert args.run


@pytest.mark.parametrize("gib", [24, 16, 12])
def test_a_card_gets_a_plan_and_the_command_that_runs_it(gib):
    code, report = _doctor("--gpu-memory", f"{gib}GiB")
    assert code == 0 and report["ok"] and report["chosen"]["problem"] is None
    [card] = report["cards"]
    assert card["memory"] == gib * GiB and card["plan"] == "nf4"
    assert card["total"] + (512 << 20) <= gib * GiB  # it fits, with the loader's reserve
    assert card["command"].startswith("dgterm repl --model google/diffusiongemma-26B-A4B-it --device cuda --quant nf4")
    if gib == 24:
        assert card["offload_layers"] == 0 and "--offload-experts" not in card["command"]
    else:  # the fewest layers that fit: one layer fewer would not
        n = card["offload_layers"]
        assert n > 0 and card["command"].endswith(f"--offload-experts {n}") and card["host"] > 0
        fewer = quant.plan_memory(PROFILE, "nf4", report["memory"]["context"], offload=n - 1)
        assert not fewer.fits(gib * GiB)
    assert card["step_seconds"] > 0
    _parses(card["command"])


def test_without_a_card_asked_it_answers_for_24_16_and_12_gib(capsys):
    code, report = _doctor()
    assert code == 0
    assert [c["memory"] for c in report["cards"]][-3:] == [24 * GiB, 16 * GiB, 12 * GiB]
    assert cli.main(["doctor", "--model", PROFILE]) == 0
    text = capsys.readouterr().out
    assert "on a GPU, at 8192 tokens of context (step times are estimates" in text
    assert "dgterm doctor --model google/diffusiongemma-26B-A4B-it --download" in text
    assert text.rstrip().endswith("ok: a plan runs it (above); download the checkpoint first.")
    for command in re.findall(r"^ +(dgterm .+)$", text, re.M):
        _parses(command)


def test_a_card_too_small_for_any_plan_says_why_and_exits_1():
    out = dgterm("doctor", "--model", PROFILE, "--gpu-memory", "2GiB")
    assert out.returncode == 1
    assert "problem: On a 2 GiB card even with every layer's experts in host RAM the nf4 plan needs" in out.stdout


@pytest.mark.parametrize("how", ["name", "folder", "config.json", "relative elsewhere"])
def test_the_profile_is_found_by_name_or_by_any_path(how, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root
    folder = quant.profiles_dir() / PROFILE
    spec = {"name": PROFILE, "folder": str(folder), "config.json": str(folder / "config.json"),
            "relative elsewhere": f"runtime/profiles/{PROFILE}"}[how]
    out = dgterm("doctor", "--model", spec, "--gpu-memory", "24GiB", "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["model"]["kind"] == "profile" and report["cards"][0]["plan"] == "nf4"


def _suggested_commands() -> list[tuple[str, str]]:
    """Every `dgterm ...` with arguments in the message of a ``raise`` in dgterm/, with each
    f-string field filled in by a sample value."""
    found = []
    for path in sorted((ROOT / "dgterm").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.JoinedStr):
                    text = "".join(v.value if isinstance(v, ast.Constant) else "google/some-model" for v in sub.values)
                elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    text = sub.value
                else:
                    continue
                found += [(path.name, m) for m in re.findall(r"`(dgterm [^`]+)`", text)
                          if " -" in m or m.count(" ") > 1]
    return found


def test_every_command_an_error_message_suggests_parses():
    commands = _suggested_commands()
    assert ("checkpoint.py", "dgterm doctor --model google/some-model --download") in commands
    for _, command in commands:
        _parses(command)


def test_the_cache_miss_suggestion_downloads_through_doctor(monkeypatch):
    """The suggested `dgterm doctor --model ID --download` asks the hub (here: cannot reach it)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = dgterm("doctor", "--model", "google/not-here-xyz")
    assert "`dgterm doctor --model google/not-here-xyz --download`" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_selftest_runs_every_kernel_on_every_device_here(capsys):
    pytest.importorskip("triton")
    assert cli.main(["doctor", "--selftest", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["selftest"]
    cpu = {r["kernel"]: r for r in rows if r["device"] == "cpu (interpreter)"}  # no GPU here: the interpreter
    assert set(cpu) == {"nf4_grouped_matmul", "fused_sampler"} and all(r["ok"] for r in cpu.values())
    paths = {r["kernel"]: r for r in rows if r["device"] == "cpu"}  # and the CPU paths, against plain torch
    assert set(paths) == set(cpu) and all(r["ok"] and r["path"] == "torch (CPU)" for r in paths.values())


def test_the_selftest_table_says_which_kernel_failed_and_what_runs_instead():
    from dgterm.commands.doctor_selftest import format_rows

    rows = [{"kernel": "nf4_grouped_matmul", "device": "cuda:0", "ok": False, "path": "reference", "seconds": 0.02,
             "detail": "mismatch: relative error 0.5"},
            {"kernel": "fused_sampler", "device": "cuda:0", "ok": True, "path": "triton", "seconds": 0.01,
             "detail": "agrees with the reference"}]
    text = format_rows(rows)
    assert "nf4_grouped_matmul  cuda:0              FAILED    reference" in text
    assert text.endswith("problem: 1 kernel check(s) failed; those kernels run on their PyTorch reference path "
                         "(slower, same results). Please report it with this table.")
