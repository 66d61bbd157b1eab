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


def out_of_memory_once(forward):
    """``forward`` that dies of a CUDA out-of-memory error on its first call only."""
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return forward(*a, **k)

    return flaky


def test_a_session_continues_after_an_oom(tiny):
    """A run that dies of OOM leaves the model usable: the next run works."""
    from dgterm.engine import tasks

    params = tiny.defaults.replace(seed=0, steps=2, max_new_tokens=16)
    flaky = out_of_memory_once(tiny.model.forward)
    tiny.model.forward = flaky
    try:
        with pytest.raises(OutOfMemory):
            with oom.guard_oom(tiny.quant, candidates=1):
                tasks.continue_text(tiny, "x = ", params).collect()
        result = tasks.continue_text(tiny, "x = ", params).collect()
    finally:
        del tiny.model.forward
    assert result.candidates


def test_as_out_of_memory_is_the_one_way_in_with_a_front_ends_own_sentence(monkeypatch):
    released = []
    monkeypatch.setattr(oom, "release", lambda: released.append(True))
    assert oom.as_out_of_memory(ValueError("not memory")) is None and not released
    error = oom.as_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"), "The REPL's own sentence.")
    assert isinstance(error, OutOfMemory) and str(error) == "The REPL's own sentence." and released == [True]
    assert str(oom.as_out_of_memory(MemoryError(), candidates=3)).startswith("Out of memory on the device")
    with pytest.raises(OutOfMemory, match="^The editor's sentence.$"):
        with oom.guard_oom(sentence="The editor's sentence."):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")


def test_the_servers_batch_ends_its_rows_with_the_out_of_memory_sentence(tiny):
    """The batcher (dgterm serve) takes an OOM the same way: its rows end with the server's
    sentence and the batcher goes on to the next request."""
    import queue

    from dgterm.engine.events import Window
    from dgterm.engine.local.batch import Batcher, Sequence

    flaky = out_of_memory_once(tiny.model.forward)
    news: queue.Queue = queue.Queue()
    params = tiny.defaults.replace(seed=0, steps=2, max_new_tokens=tiny.canvas_length)
    ids = tiny.tokenizer("x = ", add_special_tokens=False)["input_ids"]
    tiny.model.forward = flaky
    batcher = Batcher(tiny, 2)
    try:
        for row in range(2):
            def sink(kind, payload, row=row):
                news.put((row, kind, payload))

            batcher.submit([Sequence([Window(ids)], params, sink)])
            while (got := news.get(timeout=60))[1] not in ("done", "error", "cancelled"):
                pass
            assert got[0] == row
            if row == 0:
                assert got[1] == "error" and got[2] == oom.explain_for_server(1), got
            else:
                assert got[1] == "done", got
    finally:
        batcher.close()
        del tiny.model.forward
