"""Kernels that check themselves: a kernel made wrong on purpose is caught before it runs, the
run falls back to the reference path with one sentence, and the verdict is cached per device
and versions (checked again when one changes)."""

from __future__ import annotations

import json

import torch

from dgterm.engine.local.kernels import selfcheck
from tests.helpers.interpreter import run_interpreted

FAULT_SCRIPT = r"""
import json, logging, torch
from dgterm.engine import tasks
from dgterm.engine.local import loading
from dgterm.engine.local.kernels import nf4_triton, sampling_triton, selfcheck

logging.basicConfig(format="%(message)s")
fine = {row["kernel"]: row["ok"] for row in selfcheck.selftest([torch.device("cpu")])}
real = nf4_triton.grouped_matmul_nf4_triton
nf4_triton.grouped_matmul_nf4_triton = lambda *a, **k: real(*a, **k) * 1.5   # wrong on purpose
def launch_error(*a, **k):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")
sampling_triton.gumbel_sample_triton = launch_error
selfcheck.forget()
import pathlib; pathlib.Path(selfcheck.cache_path()).unlink()
lm = loading.load("bundled", quant="nf4", kernels="auto")
params = lm.defaults.replace(seed=3, steps=6, max_new_tokens=40)
auto = tasks.continue_text(lm, "def add(a, b):", params).collect().best.text
verdicts = {k: v.ok for (k, _), v in selfcheck._verdicts.items()}
selfcheck.configure("reference")
reference = tasks.continue_text(lm, "def add(a, b):", params).collect().best.text
print(json.dumps({"fine": fine, "verdicts": verdicts, "same": auto == reference, "notes": lm.info["notes"],
                  "cache": json.loads(selfcheck.cache_path().read_text())}))
"""


def test_an_injected_fault_is_caught_and_the_run_falls_back_with_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("DGTERM_STATE_DIR", str(tmp_path))
    report = run_interpreted(FAULT_SCRIPT, stderr_too=True)
    out, stderr = report
    assert out["fine"] == {"nf4_grouped_matmul": True, "fused_sampler": True}  # the real kernels agree
    assert out["verdicts"] == {"nf4_grouped_matmul": False, "fused_sampler": False}  # checked as the model loads
    assert len(out["notes"]) == 2 and all("failed its self-check" in n for n in out["notes"])
    assert out["same"]  # the reference path ran: the same tokens as --kernels reference
    lines = [line for line in stderr.splitlines() if "self-check" in line]
    assert len(lines) == 2, stderr
    assert "nf4_grouped_matmul failed its self-check on cpu (Triton interpreter) (mismatch" in lines[0] + lines[1]
    assert "fused_sampler failed its self-check" in stderr and "RuntimeError: CUDA error" in stderr
    assert all("PyTorch reference path" in line for line in lines)
    [entry] = out["cache"].values()
    assert entry["nf4_grouped_matmul"]["ok"] is False


def test_the_verdict_is_cached_and_checked_again_when_a_version_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("DGTERM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the CPU counts as a Triton device; the check itself is faked
    monkeypatch.setattr("dgterm.engine.local.kernels.selfcheck.triton_available", lambda: True)
    calls = []
    monkeypatch.setitem(selfcheck.KERNELS, "nf4_grouped_matmul", lambda device: calls.append(device) or None)
    selfcheck.forget()
    cpu = torch.device("cpu")
    assert selfcheck.use_triton("nf4_grouped_matmul", cpu) and len(calls) == 1
    selfcheck.forget()  # a new process: the verdict comes from the cache file
    v = selfcheck.verdict("nf4_grouped_matmul", cpu)
    assert v.ok and v.cached and len(calls) == 1
    stored = json.loads(selfcheck.cache_path().read_text())
    assert list(stored) == [selfcheck.device_key(cpu)] and f"torch {torch.__version__}" in list(stored)[0]
    selfcheck.forget()
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # torch upgraded: checked again
    assert not selfcheck.verdict("nf4_grouped_matmul", cpu).cached and len(calls) == 2
    assert len(json.loads(selfcheck.cache_path().read_text())) == 2
    selfcheck.forget()


def test_the_kernel_mode_overrides_the_check(monkeypatch):
    monkeypatch.setitem(selfcheck.KERNELS, "nf4_grouped_matmul", lambda device: 1 / 0)
    selfcheck.forget()
    try:
        selfcheck.configure("reference")
        assert not selfcheck.use_triton("nf4_grouped_matmul", torch.device("cpu"))
        selfcheck.configure("triton")  # forced, unchecked
        assert selfcheck.use_triton("nf4_grouped_matmul", torch.device("cpu"))
        selfcheck.configure("auto")  # on the CPU without the interpreter Triton does not run: no check
        assert not selfcheck.use_triton("nf4_grouped_matmul", torch.device("cpu"))
    finally:
        selfcheck._mode.clear()
        selfcheck.forget()


def test_the_cpu_paths_agree_with_plain_torch_and_a_wrong_one_is_reported(monkeypatch):
    from dgterm.engine.local.kernels import cpu_paths, sampling

    assert all(cpu_paths.cpu_row(k)["ok"] for k in cpu_paths.CPU_PATHS)
    real = sampling.fused_sample_cpu
    monkeypatch.setattr(sampling, "fused_sample_cpu", lambda *a: (lambda r: (r[0] + 1, r[1], r[2]))(real(*a)))
    row = cpu_paths.cpu_row("fused_sampler")
    assert row["ok"] is False and row["detail"] == "mismatch: argmax differs"
