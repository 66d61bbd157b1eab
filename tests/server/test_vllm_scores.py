"""Scores through vLLM: the pseudo-log-likelihood read back through read-only requests
(``logprob_token_ids``, ``diffusion_constrained``) equals the in-process score when the
stand-in runs the same model."""

from __future__ import annotations

import pytest

from dgterm.engine import tasks
from dgterm.engine.params import SamplerParams
from dgterm.engine.remote.client import RemoteEngine
from dgterm.engine.tasks.infill import plan_infill
from tests.helpers.vllm_standin import Running, StandIn

pytestmark = pytest.mark.slow
DOC = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([1, 2, 3]))\n"


@pytest.fixture(scope="module")
def vllm(bundled):
    running = Running(StandIn(bundled.tokenizer, model=bundled))
    yield running
    running.stop()


@pytest.fixture
def engine(vllm):
    engine = RemoteEngine(vllm.url)
    yield engine
    engine.close()


def spans_of(text, *pieces):
    return [tasks.SpanRequest(text.index(p), text.index(p) + len(p)) for p in pieces]


@pytest.mark.parametrize("skip_pad", [False, True])
def test_scores_through_vllm_equal_the_in_process_ones(engine, bundled, vllm, skip_pad):
    plan = plan_infill(bundled, DOC, spans_of(DOC, "sum(values)", "[1, 2, 3]"))
    windows = list(plan.windows())
    assert any(w.allowed for w in windows)  # a healed position: read over its ids (diffusion_constrained)
    run = engine.denoise(windows, SamplerParams(steps=2), candidates=2).collect()
    for w, canvas in zip(windows, run.canvases):  # the healed position holds an allowed id, as a healed run's does
        for p, ids in w.allowed.items():
            canvas[:, p] = ids[len(ids) // 2]
    vllm.standin.requests.clear()
    remote = engine.score_run(windows, run, skip_pad=skip_pad, seed=5)
    local = bundled.score_run(windows, run, skip_pad=skip_pad, seed=5)
    assert remote == pytest.approx(local, abs=1e-4)
    assert all(s < 0 for s in remote) and remote[0] != pytest.approx(engine.score_run(windows, run, skip_pad=skip_pad,
                                                                                      seed=6)[0], abs=1e-9)
    sent = vllm.standin.requests
    assert all(r["vllm_xargs"]["diffusion_read_only"] and r["logprob_token_ids"] for r in sent)
    assert any(r["vllm_xargs"].get("diffusion_constrained") for r in sent)
