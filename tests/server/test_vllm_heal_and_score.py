"""Healing and scores through vLLM. A span after a space has no leading-space artefact: the
text before it is healed over /tokenize and its first token chosen by a read-only request.
The pseudo-log-likelihood read back through read-only requests (``logprob_token_ids``,
``diffusion_constrained``) equals the in-process score when the stand-in runs the same model."""

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
def fixture_vllm(tokenizer_of_bundled):
    running = Running(StandIn(tokenizer_of_bundled, phrase=" then"))  # one token, after a space
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tokenizer_of_bundled():
    from transformers import AutoTokenizer

    from dgterm.engine.local.checkpoint import bundled_dir

    return AutoTokenizer.from_pretrained(bundled_dir())


@pytest.mark.parametrize("heal", [True, False])
def test_a_span_after_a_space_has_no_leading_space_through_vllm(fixture_vllm, heal):
    engine = RemoteEngine(fixture_vllm.url)
    sent = fixture_vllm.standin.requests
    sent.clear()
    at = DOC.index("sum(values)")  # after "return "
    result = tasks.infill(engine, DOC, [tasks.SpanRequest(at, at + 11)], SamplerParams(steps=2), candidates=2,
                          heal_edges=heal).collect()
    engine.close()
    spans = [c.spans[0] for c in result.candidates]
    if not heal:  # the artefact: the context ends before the space, the stand-in's phrase starts with one
        assert all(s.startswith(" then") for s in spans), spans
        return
    assert all(s.startswith("then then") for s in spans), spans
    assert all(c.text == DOC[:at] + c.spans[0] + DOC[at + 11 :] for c in result.candidates)
    reads = [r for r in sent if r["vllm_xargs"].get("diffusion_read_only") and "logprob_token_ids" not in r]
    runs = [r for r in sent if not r["vllm_xargs"].get("diffusion_read_only")]
    assert len(reads) == len(runs) == 2  # per candidate: the healed position read, then the window with it pinned
    for run in runs:
        seed, pinned = run["vllm_xargs"]["diffusion_seed_canvas"], run["vllm_xargs"]["diffusion_pinned"]
        healed = min(set(range(len(seed))) - set(pinned)) - 1  # the span's first position, pinned now
        assert healed in pinned and engine.tokenizer.decode([seed[healed]]) == " then"


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
