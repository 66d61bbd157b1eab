"""Memory without bound: user-sized quantities are checked by the planner before anything
is allocated, and files are read only when they are regular and of a sane size."""

from __future__ import annotations

import pytest

from dgterm.engine import tasks
from dgterm.engine.local.quant import planner
from dgterm.errors import DgtermError, InputError
from tests.helpers.cli import dgterm


def test_a_trillion_candidates_is_one_sentence_before_allocating():
    out = dgterm("generate", "def f(", "--candidates", "1000000000000")
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert "1000000000000 candidate(s)" in line and "GiB free" in line and "at most" in line


def test_the_bound_names_a_count_that_fits(bundled, monkeypatch):
    per = planner.runtime_bytes(bundled.model.config, 200, 1, bundled.dtype)
    monkeypatch.setattr(planner, "free_bytes", lambda device: 10 * per)
    with pytest.raises(DgtermError, match=r"use at most (9|10) candidate"):
        tasks.continue_text(bundled, "x" * 10, candidates=50)
    tasks.continue_text(bundled, "x", candidates=2)  # fits: no error


def test_an_address_space_limit_counts_as_the_memory_left():
    free = planner.free_bytes("cpu")
    assert 0 < free < 1 << 50


def test_a_prompt_longer_than_the_context_says_so(bundled):
    most = bundled.model.config.text_config.max_position_embeddings
    ids = [bundled.tokenizer.bos_token_id] + [100] * most
    with pytest.raises(InputError, match=rf"prompt is too long \({most + 1} tokens, the model takes"):
        tasks.continue_ids(bundled, ids)


@pytest.mark.slow
@pytest.mark.parametrize("mib", [100, 500, 700])
def test_under_ulimit_v_it_is_one_sentence_never_the_checkpoints_fault(mib):
    import resource
    import subprocess
    import sys

    limit = mib << 20
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "generate", "hi", "--max-new-tokens", "8"],
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
                         capture_output=True, text=True, timeout=300)
    if out.returncode == 0:  # it fitted
        return
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.splitlines()
    assert "ulimit -v" in line and "checkpoint" not in line


def test_the_bound_counts_the_sampler_the_run_uses(bundled, monkeypatch):
    config, dtype = bundled.model.config, bundled.dtype
    fused, reference = (planner.runtime_bytes(config, 200, 8, dtype, s) for s in ("fused", "reference"))
    assert reference > fused  # six float32 temporaries per candidate
    monkeypatch.setattr(planner, "free_bytes", lambda device: (fused + reference) // 2)
    tasks.continue_text(bundled, "x" * 150, bundled.defaults.replace(mode="fused"), candidates=8)  # fits
    with pytest.raises(DgtermError, match="8 candidate"):
        tasks.continue_text(bundled, "x" * 150, bundled.defaults.replace(mode="reference"), candidates=8)
