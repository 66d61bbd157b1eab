"""The static step: a canvas's steps never wait for the host, and reading the stop test a
step late (as on CUDA) changes nothing."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from dgterm.engine.events import Window
from dgterm.engine.local.denoise import denoise

# what makes the host wait for the device (or, on a CPU tensor, reads it on the host)
SYNCS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "cpu", "masked_select"}


class SyncLog(TorchFunctionMode):
    """Logs every operation that reads a tensor on the host, among the events the run yields."""

    def __init__(self):
        super().__init__()
        self.log: list[tuple] = []
        self.paused = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.paused:
            return func(*args, **(kwargs or {}))
        boolean_index = name in ("__getitem__", "__setitem__") and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in _flat(args[1:2]))
        if name in SYNCS or boolean_index or (name == "where" and len(args) == 1):
            self.log.append(("sync", name))
        return func(*args, **(kwargs or {}))


def _flat(xs):
    for x in xs:
        yield from (_flat(x) if isinstance(x, (tuple, list)) else (x,))


def _windows(prompt, canvases):
    return [Window(prompt)] + [Window([]) for _ in range(canvases - 1)]


def _run(lm, params, candidates, **kw):
    events = []
    run = denoise(lm, _windows([2, 100, 200, 300], 3), params, candidates=candidates, **kw)
    for e in run:
        events.append((e.window, e.step, e.tokens, e.argmax.clone(), e.finished.clone()))
    return run.result, events


@pytest.mark.parametrize("mode", ["reference", "fused"])
def test_reading_the_stop_test_a_step_late_gives_the_same_run(tiny, mode):
    """With lag 1 (CUDA's default) a step after every row finished is computed, then
    undone: the same canvases, steps, forwards, events and random streams as lag 0."""
    head = tiny.model.lm_head.weight.data
    saved = head.clone()
    head *= 40  # a sharpened head: rows stop early, at different steps (as in test_denoise)
    try:
        params = tiny.defaults.replace(seed=20, steps=8, max_new_tokens=48, confidence=0.5, stability=0, mode=mode)
        now, now_events = _run(tiny, params, 3, lag=0)
        late, late_events = _run(tiny, params, 3, lag=1)
    finally:
        head.copy_(saved)
    assert min(now.steps) < params.steps  # the early stop is exercised
    assert [torch.equal(a, b) for a, b in zip(now.canvases, late.canvases, strict=True)] == [True] * len(now.canvases)
    assert now.steps == late.steps and torch.equal(now.forwards, late.forwards)
    assert [e[:3] for e in now_events] == [e[:3] for e in late_events]
    assert all(torch.equal(a[3], b[3]) and torch.equal(a[4], b[4]) for a, b in zip(now_events, late_events))


def test_no_host_read_between_the_steps_of_a_canvas(tiny, monkeypatch):
    """Between two steps of one canvas nothing is read on the host: the stop test and the
    token count come by HostMirror (a non-blocking copy on CUDA, read once its event has
    completed: those reads are left out), the rest once per canvas. (The reference
    sampler: the fused one's CPU pass is host code by design.)"""
    from dgterm.engine.local import static

    params = tiny.defaults.replace(seed=1, steps=6, max_new_tokens=48, mode="reference")
    spy = SyncLog()

    def mirror_read(host):
        spy.paused = True
        try:
            return read(host)
        finally:
            spy.paused = False

    read = static.read
    monkeypatch.setattr(static, "read", mirror_read)
    run = denoise(tiny, _windows([2, 100, 200, 300], 3), params, candidates=2)
    with spy:
        for e in run:
            spy.log.append(("event", e.window, e.step))
    marks = [i for i, entry in enumerate(spy.log) if entry[0] == "event"]
    inside = [spy.log[a + 1 : b] for a, b in zip(marks, marks[1:])
              if spy.log[a][1] == spy.log[b][1]]  # two steps of the same canvas
    assert len(inside) >= 5
    assert [entries for entries in inside if entries] == []
    assert any(entry[0] == "sync" for entry in spy.log)  # the spy sees the per-canvas reads


def _continue(lm, params, prompt, **kw):
    run = denoise(lm, _windows(prompt, params.max_canvases(lm.canvas_length)), params, **kw).collect()
    return torch.cat(run.canvases, -1), run


@pytest.mark.parametrize("seed", [0, 3])
def test_the_static_context_gives_the_dynamic_steps_tokens_in_reference_mode(bundled, seed):
    """Fixed-size buffers, masks over the unfilled slots, the first step's self-conditioning
    masked out rather than absent: the same tokens as the dynamic step (itself generate's)."""
    tok = bundled.tokenizer
    prompt = [tok.bos_token_id] + tok("import os\n\n\ndef main():\n", add_special_tokens=False)["input_ids"]
    params = bundled.defaults.replace(seed=seed, steps=12, max_new_tokens=3 * bundled.canvas_length, mode="reference")
    dynamic, _ = _continue(bundled, params, prompt, static=False)
    static, run = _continue(bundled, params, prompt, static=True)
    assert torch.equal(static, dynamic)
    assert run.timings["warm-up"] >= 0


def test_a_compiled_run_compiles_once_and_never_inside_a_canvas(tiny):
    """Dynamo's frame count (a counting backend: what torch.compile would hand inductor):
    one graph for every step of every canvas of a run, none for a second run of the same
    shapes; the tokens are the eager static step's."""
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    params = tiny.defaults.replace(seed=2, steps=4, max_new_tokens=48, mode="reference")
    eager, _ = _continue(tiny, params, [2, 100, 200, 300], candidates=2, static=True)
    compiled, run = _continue(tiny, params, [2, 100, 200, 300], candidates=2, backend=counter)
    assert len(run.canvases) == 3 and counter.frame_count == 1
    assert torch.equal(compiled, eager)
    _continue(tiny, params.replace(seed=3), [2, 100, 200, 300, 400], candidates=2, backend=counter)
    assert counter.frame_count == 1


def test_compile_with_a_quantized_model_is_one_sentence_at_load():
    from dgterm.engine.local import loading
    from dgterm.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="--compile needs an unquantized model"):
        loading.load("bundled", quant="nf4", compile=True)


def test_the_compile_warm_up_is_said_on_each_step_and_left_out_of_the_rates(tiny):
    from torch._dynamo.testing import CompileCounter

    params = tiny.defaults.replace(seed=2, steps=3, max_new_tokens=16, mode="fused")
    run = denoise(tiny, [Window([2, 100, 200])], params, backend=CompileCounter())
    warmups = [e.warmup for e in run]
    result = run.result
    assert warmups[0] > 0 and len(set(warmups)) == 1 and result.timings["warm-up"] == warmups[0]
    assert result.busy == pytest.approx(result.elapsed - warmups[0])
    eager = denoise(tiny, [Window([2, 100, 200])], params)
    assert {e.warmup for e in eager} == {0.0} and eager.result.busy == eager.result.elapsed
