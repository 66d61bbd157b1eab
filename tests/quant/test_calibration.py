"""The planner against measured runs of the bundled model: the peak of tensor memory a
whole task holds on top of its weights (prefill, every step, scoring) within 10% of the
planner's ``runtime_bytes``, for each way a run can peak."""

from __future__ import annotations

import pytest
import torch

from dgterm.bench.memory import TensorPeak
from dgterm.engine import tasks
from dgterm.engine.kernels import sampling
from dgterm.engine.prefill import CHUNK
from dgterm.engine.quant import planner

PROSE = "def step(canvas, logits):\n    return canvas.where(logits.argmax(-1) > 0, canvas)\n\n" * 400


@pytest.mark.parametrize("prompt, candidates, windows, sampler", [
    (250, 1, 1, "fused"),  # the sampler's moment
    (250, 1, 2, "reference"),  # its six float32 temporaries
    (2000, 4, 2, "fused"),  # four candidates' canvases encoded into the cache for a second window
    (3000, 1, 1, "fused"),  # a prefill of three chunks and a remainder
])
def test_the_planner_holds_within_ten_percent_of_a_measured_run(bundled, prompt, candidates, windows, sampler):
    tok = bundled.tokenizer
    text = tok.decode(tok(PROSE, add_special_tokens=False)["input_ids"][:prompt])
    params = bundled.defaults.replace(steps=3, seed=0, max_new_tokens=bundled.canvas_length * windows, mode=sampler)
    task = tasks.continue_text(bundled, text, params, candidates=candidates)
    with TensorPeak() as meter:
        result = task.collect()
    assert result.run.windows == windows
    cached = len(task.plans[0].prompt) + bundled.canvas_length * (windows - 1)  # when the last canvas is denoised
    planned = planner.runtime_bytes(bundled.model.config, cached, candidates, bundled.dtype, sampler)
    assert 0.9 <= planned / meter.peak <= 1.1, (planned, meter.peak)
    assert meter.live < 64 << 10  # only the result (token ids, entropies) outlives the run


def test_the_meter_counts_new_storage_once_and_not_views_or_weights():
    weights = torch.zeros(1 << 18)
    with TensorPeak() as meter:
        a = torch.empty(1 << 18)  # 1 MiB
        view, _ = a[: 1 << 10], weights.t()
        a.add_(1)
        b = a * 2  # 2 MiB alive
        del a, view, b
        c = torch.ones(1 << 17)  # 0.5 MiB
    assert meter.peak == 2 << 20 and meter.live == 1 << 19
    del c
    assert meter.live == 0


def test_the_planner_restates_the_engine_sizes():
    assert planner.PREFILL_CHUNK == CHUNK
    assert (planner.SAMPLER_ROW_BLOCK, planner.SAMPLER_CDF_CHUNK) == (sampling.ROW_BLOCK_BYTES, sampling.CDF_CHUNK)
