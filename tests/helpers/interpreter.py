"""Run a script under Triton's interpreter (TRITON_INTERPRET=1: kernels on the CPU) in a fresh
process, since the interpreter is chosen when triton is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_interpreted(script: str, stderr_too: bool = False):
    """The JSON object the script prints last (skips the test where triton is missing); with
    ``stderr_too``, (that object, the script's stderr)."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return (report, proc.stderr) if stderr_too else report
