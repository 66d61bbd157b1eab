"""Streaming load: host RAM while loading a multi-shard checkpoint stays near the quantized
model plus one chunk, not the checkpoint. Measured in a subprocess (tests/helpers/rss_probe.py)
from the kernel's RSS high-water mark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MiB = 1 << 20


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A ~300 MB float32 checkpoint (32 experts of width 768 per layer) in ~24 MB shards."""
    import torch
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion

    from dgterm.engine.local import checkpoint
    from dgterm.training import recipe as train

    recipe = train.Recipe(hidden_size=256, layers=4, heads=4, kv_heads=2, head_dim=64, intermediate_size=512,
                          experts=32, top_k=2, expert_size=768, canvas_length=16)
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(train.model_config(recipe))
    model.generation_config = train.generation_config(steps=4)
    path = tmp_path_factory.mktemp("sharded") / "ckpt"
    model.save_pretrained(path, max_shard_size="24MB")
    AutoTokenizer.from_pretrained(checkpoint.bundled_dir()).save_pretrained(path)
    return path


@pytest.mark.slow
def test_peak_rss_while_loading_stays_near_the_quantized_model(sharded):
    shards = list(sharded.glob("*.safetensors"))
    checkpoint = sum(f.stat().st_size for f in shards)
    largest = max(f.stat().st_size for f in shards)
    assert len(shards) >= 8
    proc = subprocess.run([sys.executable, str(ROOT / "tests/helpers/rss_probe.py"), str(sharded), "nf4"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    report = (f"checkpoint {checkpoint / MiB:.0f} MiB in {len(shards)} shards (largest {largest / MiB:.0f} MiB), "
              f"quantized model {r['model_bytes'] / MiB:.0f} MiB, RSS peak above baseline {r['delta'] / MiB:.0f} MiB")
    print(report)
    # The model itself lives in host RAM here (device cpu); on top of it: one read chunk
    # (16 MiB), the quantizer's temporaries (2^20 elements at a time) and the meta plan.
    assert r["delta"] <= r["model_bytes"] + 96 * MiB, report
    assert r["delta"] < checkpoint / 2, report
