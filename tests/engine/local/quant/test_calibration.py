"""The planner against measured runs of the bundled model: the peak of tensor memory a
whole task holds on top of its weights (prefill, every step, scoring) within 10% of the
planner's ``runtime_bytes``, for each way a run can peak."""

from __future__ import annotations

import pytest
import torch

from dgterm.bench.memory import TensorPeak, against_planner
from dgterm.engine.local.kernels import sampling
from dgterm.engine.local.prefill import CHUNK
from dgterm.engine.local.quant import planner


@pytest.mark.parametrize("prompt, candidates, windows, sampler", [
    (250, 1, 1, "fused"),  # the sampler's moment
    (250, 1, 2, "reference"),  # its six float32 temporaries
    (2000, 4, 2, "fused"),  # four candidates' canvases encoded into the cache for a second window
    (3000, 1, 1, "fused"),  # a prefill of three chunks and a remainder
])
def test_the_planner_holds_within_ten_percent_of_a_measured_run(bundled, prompt, candidates, windows, sampler):
    row = against_planner(bundled, prompt, candidates, windows, sampler, steps=3)
    assert row["windows"] == windows
    assert 0.9 <= row["planned"] / row["measured"] <= 1.1, row
    assert row["live_after"] < 64 << 10  # only the result (token ids, entropies) outlives the run


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
