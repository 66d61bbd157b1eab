"""The GPU check (scripts/gpu_quant_bench.py) dry-runs on the CPU at a tiny size, so that
it is ready when a GPU is lent: every row, both samplers, the compiled step (dynamo's eager
backend), the sampler alone, the kernel self-check table, decode with experts in host RAM, the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def test_the_gpu_script_dry_runs_on_the_cpu(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_quant_bench.py"), "--profile", "bundled",
                           "--device", "cpu", "--context", "64", "--steps", "2", "--plans", "nf4,bf16", "--no-smoke",
                           "--sampler-shape", "8,1000", "--offload", "1", "--offload-steps", "1", "--compile", "eager",
                           "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    row, dense = result["rows"]
    assert set(row["speed"]) == {"fused@2", "reference@2"}  # nf4: its experts are not one graph
    assert set(dense["speed"]) == {"fused@2", "reference@2", "compiled-eager@2"}
    assert dense["warmup_s_eager"] > 0 and "| bf16 | eager |" in done.stdout
    assert all(r["first_canvas_s"] > 0 and r["tokens_per_forward"] > 0 for r in row["speed"].values())
    assert result["sampler"]["shape"] == [8, 1000] and "sampler alone" in done.stdout
    assert {r["kernel"] for r in result["selfcheck"]} == {"nf4_grouped_matmul", "fused_sampler"}
    assert "kernel self-check" in done.stdout and "nf4 decode with experts in host RAM" in done.stdout
    assert [(r["layers"], r["mode"]) for r in result["offload"]] == [(1, "stream"), (1, "cpu")]
    assert all(r["ms_per_step"] > 0 and r["estimated_ms_per_step"] > 0 for r in result["offload"])
