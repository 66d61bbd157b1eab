"""Out of memory during a run: one sentence with what to shrink, and the session goes on."""

from __future__ import annotations

import pytest
import torch

from dgterm.engine.local import oom
from dgterm.errors import DgtermError, OutOfMemory


def test_explain_oom_is_one_sentence_with_suggestions():
    msg = oom.explain_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"), "int8", candidates=4, context=8192)
    assert msg.count(".") == 1 and msg.endswith(".")
    assert "fewer candidates (now 4)" in msg and "shorter context (now 8192 tokens)" in msg and "--quant nf4" in msg
    assert "--quant" not in oom.explain_oom(RuntimeError("out of memory"), "nf4")


def test_guard_oom_turns_oom_into_a_dgterm_error_and_lets_others_through():
    with pytest.raises(OutOfMemory) as err:
        with oom.guard_oom("nf4", candidates=2):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert isinstance(err.value, DgtermError) and "fewer candidates" in str(err.value)
    with pytest.raises(OutOfMemory):
        with oom.guard_oom():
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
    with pytest.raises(ValueError):
        with oom.guard_oom():
            raise ValueError("not memory")


def test_a_session_continues_after_an_oom(tiny):
    """A run that dies of OOM leaves the model usable: the next run works."""
    from dgterm.engine import tasks

    params = tiny.defaults.replace(seed=0, steps=2, max_new_tokens=16)
    real = tiny.model.forward
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(*a, **k)

    tiny.model.forward = flaky
    try:
        with pytest.raises(OutOfMemory):
            with oom.guard_oom(tiny.quant, candidates=1):
                tasks.continue_text(tiny, "x = ", params).collect()
        result = tasks.continue_text(tiny, "x = ", params).collect()
    finally:
        del tiny.model.forward
    assert result.candidates
