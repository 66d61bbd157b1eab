"""dgterm's remote engine against the vLLM stand-in and against the real `dgterm serve`: the
vLLM client's tests run on both (``client``), then the dgterm-serve client on the server."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from dgterm.engine import tasks
from dgterm.engine.events import candidate_seed
from dgterm.engine.remote.client import RemoteEngine, RemoteError
from dgterm.engine.tasks import chat
from tests.helpers.server import wait_idle
from tests.helpers.vllm_standin import Running, StandIn

pytestmark = pytest.mark.slow
DOC = "def mean(values):\n    return sum(values) / len(values)\n\n\nprint(mean([1, 2, 3]))\n"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from dgterm.engine.local.checkpoint import bundled_dir

    return AutoTokenizer.from_pretrained(bundled_dir())


@pytest.fixture(scope="module")
def vllm(tokenizer):
    running = Running(StandIn(tokenizer, api_key="k"))
    yield running
    running.stop()


@pytest.fixture(params=["stand-in", "dgterm serve"])
def client(request, vllm):
    """The vLLM client on the stand-in and on the real `dgterm serve` (which takes the same
    fields); the stand-in's log of requests, or None. Tests on it check only what both do."""
    if request.param == "stand-in":
        engine, sent = RemoteEngine(vllm.url, "k"), vllm.standin.requests
        sent.clear()  # the connect probes
    else:
        served = request.getfixturevalue("served")
        engine, sent = RemoteEngine(served.url, served.key, vllm_only=True), None
    yield engine, sent
    engine.close()


def window_runs(sent):
    """The requests that ran windows, not the read-only ones that heal a span's first token and score."""
    return [r for r in sent if not r["vllm_xargs"].get("diffusion_read_only")]


def spans_of(text, *pieces):
    return [tasks.SpanRequest(text.index(p), text.index(p) + len(p)) for p in pieces]


# ------------------------------------------------------------------ the vLLM client: the stand-in and dgterm serve


def test_connects_to_vllm_and_learns_its_canvas(client, vllm):
    engine, sent = client
    assert engine.kind == "vLLM" and not engine.live_steps and engine.has_chat_template
    assert engine.describe().endswith(f"vLLM at {engine.http.host}: one frame per canvas")
    if sent is not None:
        assert engine.canvas_length == 32 and engine.vocab_size == 4096
        assert engine.describe() == f"google/diffusiongemma-26B-A4B-it · vLLM at {vllm.url[7:]}: one frame per canvas"
    else:  # learnt from the errors of refused seed canvases, as from vLLM
        served = RemoteEngine(engine.http.base, engine.http.client.headers["authorization"][7:])
        assert (engine.canvas_length, engine.vocab_size) == (served.canvas_length, served.vocab_size)
        served.close()


def test_infill_through_seed_canvas_and_pins_keeps_the_rest(client):
    engine, sent = client
    p = engine.defaults.replace(steps=3, seed=1)
    result = tasks.infill(engine, DOC, spans_of(DOC, "sum(values)", "[1, 2, 3]"), p).collect()
    best = result.best
    a, b = DOC.index("sum(values)"), DOC.index("[1, 2, 3]")
    text = best.text
    assert text.startswith(DOC[:a]) and text.endswith(DOC[b + len("[1, 2, 3]"):])
    assert text == DOC[:a] + best.spans[0] + DOC[a + 11:b] + best.spans[1] + DOC[b + 9:]
    if sent is None:
        return
    assert all("ok" in s or "then" in s for s in best.spans)  # the stand-in's phrase filled every span
    assert sent and all("seed" not in r for r in sent)  # vLLM refuses a seed for diffusion
    for r in window_runs(sent):
        x = r["vllm_xargs"]
        assert len(x["diffusion_seed_canvas"]) == 32 and r["max_tokens"] == 32 and r["ignore_eos"]
        assert x["diffusion_max_steps"] == 3 and x["diffusion_pinned"]


def test_a_document_wider_than_a_canvas_runs_window_after_window(client):
    engine, sent = client
    text = DOC * (6 if sent is not None else 20)  # wider than the canvas either way
    first, last = text.index("sum(values)"), text.rindex("[1, 2, 3]")
    spans = [tasks.SpanRequest(first, first + 11), tasks.SpanRequest(last, last + 9)]
    result = tasks.infill(engine, text, spans, engine.defaults.replace(steps=2, seed=3)).collect()
    out = result.best.text
    assert result.run.windows >= 2 and out[:first] == text[:first] and out.endswith(text[last + 9:])
    if sent is not None:
        assert len(window_runs(sent)) == result.run.windows
        prompts = [len(r["prompt"]) for r in window_runs(sent)]
        assert prompts == sorted(prompts)  # each window's prompt holds everything before it


def test_continue_streams_one_frame_per_canvas(client):
    engine, sent = client
    p = engine.defaults.replace(steps=4, seed=0, max_new_tokens=2 * engine.canvas_length)
    task = tasks.continue_text(engine, "import os\n", p)
    events = list(task)
    windows = [e.window for e in events]
    assert windows == sorted(set(windows)) and all(e.step == 4 for e in events)  # one frame a canvas, none per step
    if sent is not None:  # the stand-in's second canvas ends at EOS
        assert windows == [0, 1] and bool(task.result.run.finished_at_eos[0])
        assert task.result.run.canvases[1][0, 6:].eq(0).all() and "ok" in task.result.best.text


def test_candidates_are_concurrent_requests(client):
    engine, sent = client
    result = tasks.infill(engine, DOC, spans_of(DOC, "sum(values)"), engine.defaults.replace(steps=2, seed=1),
                          candidates=3).collect()
    assert len(result.candidates) == 3
    if sent is not None:
        assert len(window_runs(sent)) == 3
        assert len({tuple(r["vllm_xargs"]["diffusion_seed_canvas"]) for r in window_runs(sent)}) == 3  # own noise


def test_chat_and_lens_on_vllm(client):
    engine, sent = client
    task = chat.chat(engine, [{"role": "user", "content": "Hi"}], engine.defaults.replace(steps=2, seed=0))
    answer = task.collect().best.text
    scores = engine.confidence(DOC, 0, 30)
    assert scores and all(0 < s.prob <= 1 for s in scores) and scores[0].start == 0
    if sent is not None:
        assert "ok" in answer
        reads = [r for r in sent if r["vllm_xargs"].get("diffusion_read_only")]
        assert reads and all(r["vllm_xargs"]["diffusion_max_steps"] == 1 for r in reads)


@pytest.mark.parametrize("make, words", [
    (lambda tok: StandIn(tok, diffusion=False, api_key="k"), "does not take DiffusionGemma's diffusion fields"),
    (lambda tok: StandIn(tok, api_key="other"), "refused the API key"),
])
def test_what_the_server_lacks_is_one_sentence_at_connect(tokenizer, make, words):
    running = Running(make(tokenizer))
    try:
        with pytest.raises(RemoteError, match=words):
            RemoteEngine(running.url, "k")
    finally:
        running.stop()


def test_an_unreachable_server_is_one_sentence():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteError, match="Cannot reach"):
        RemoteEngine(f"http://127.0.0.1:{port}")


# ------------------------------------------------------------------ the same client on the real dgterm serve


def test_remote_runs_equal_local_ones(remote, bundled):
    p = bundled.defaults.replace(steps=3, seed=7)
    assert remote.describe().endswith(": live steps") and remote.kind == "dgterm serve"
    spans = spans_of(DOC, "sum(values)")
    here = tasks.infill(bundled, DOC, spans, p).collect().best
    there = tasks.infill(remote, DOC, spans, p).collect().best
    assert there.text == here.text  # one window, same seed: the same tokens, healed alike
    here = tasks.continue_text(bundled, "import os\n", p).collect().best.text
    assert tasks.continue_text(remote, "import os\n", p).collect().best.text == here


def test_a_remote_infill_over_several_windows_equals_the_local_one(remote, bundled):
    """The server's random stream goes on from window to window (dgterm.rng_state), so every
    window draws what the in-process run draws."""
    p = bundled.defaults.replace(steps=3, seed=11)
    text = DOC * 20
    spans = [tasks.SpanRequest(text.index("sum"), text.index("sum") + 3),
             tasks.SpanRequest(text.rindex("mean"), text.rindex("mean") + 4)]
    here = tasks.infill(bundled, text, spans, p, candidates=2).collect()
    there = tasks.infill(remote, text, spans, p, candidates=2).collect()
    assert here.run.windows >= 2 and there.run.windows == here.run.windows
    assert {c.seed: c.text for c in there.candidates} == {c.seed: c.text for c in here.candidates}
    for a, b in zip(sorted(here.candidates, key=lambda c: c.seed), sorted(there.candidates, key=lambda c: c.seed)):
        assert a.score == pytest.approx(b.score, abs=1e-4) and a.score < 0


def test_remote_multi_span_search_candidates_and_lens(remote):
    p = remote.defaults.replace(steps=2, seed=2)
    text = DOC * 4
    spans = [tasks.SpanRequest(text.index("sum"), text.index("sum") + 3),
             tasks.SpanRequest(text.rindex("mean"), text.rindex("mean") + 4)]
    task = tasks.infill(remote, text, spans, p, candidates=2)
    events = list(task)
    assert events and events[0].canvas.shape[0] == 2 and task.result.run.windows >= 1
    for cand in task.result.candidates:
        out, cursor = [], 0
        for span, new in zip(spans, cand.spans):
            out += [text[cursor:span.start], new]
            cursor = span.end
        assert cand.text == "".join(out) + text[cursor:]
    search = tasks.infill(remote, DOC, spans_of(DOC, "sum(values)"), p, lengths=[2, 5]).collect()
    assert sorted(c.lengths[0] for c in search.candidates) == [2, 5]
    scores = remote.confidence(DOC, 0, 40)
    assert scores and all(0 <= s.prob <= 1 for s in scores)


def test_cancelling_a_remote_run_closes_its_stream(remote, served):
    cancel = threading.Event()
    p = remote.defaults.replace(steps=48, confidence=1e-9, seed=1, max_new_tokens=512)
    task = tasks.continue_text(remote, "import os\n", p, cancel=cancel)
    for event in task:
        if event.step == 2:
            cancel.set()
    assert task.result.run.cancelled
    wait_idle(served)



def test_generate_runs_on_the_server_from_the_command_line(served, monkeypatch, capsys):
    from dgterm.cli import main

    monkeypatch.setenv("DGTERM_API_KEY", served.key)
    monkeypatch.setenv("DGTERM_SERVER", served.url)
    assert main(["generate", "import os", "--steps", "2", "--seed", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {c["seed"] for c in record["candidates"]} == {1, candidate_seed(1, 1)}  # 2 by default
    assert not record["stats"]["cancelled"]
    monkeypatch.setenv("DGTERM_API_KEY", "wrong")
    assert main(["generate", "import os"]) == 2
    assert "refused the API key" in capsys.readouterr().err


def test_the_command_line_says_once_what_vllm_lacks(vllm, monkeypatch):
    from tests.helpers.cli import dgterm

    monkeypatch.setenv("DGTERM_SERVER", vllm.url)
    monkeypatch.setenv("DGTERM_API_KEY", "k")
    out = dgterm("generate", "import os", "--steps", "2", "--json")
    assert out.returncode == 0 and all(c["score"] < 0 for c in json.loads(out.stdout)["candidates"])  # read-only reads
    notes = [line for line in out.stderr.splitlines() if "not reproducible" in line]
    assert len(notes) == 1 and notes[0].startswith("dgterm: note: google/diffusiongemma-26B-A4B-it · vLLM at")
    assert "healing" not in out.stderr and "no scores" not in out.stderr


# ------------------------------------------------------------------ refine through a server


def check_refined(plan, result):
    """Each candidate is the plan's text with only its runs of re-noised tokens replaced."""
    for cand in result.candidates:
        out, cursor = [], 0
        for (a, b), new in zip(plan.runs, cand.spans):
            out += [plan.text[cursor:a], new]
            cursor = b
        assert cand.text == "".join(out) + plan.text[cursor:]


def test_refine_through_seed_canvas_and_pins(client, vllm):
    from dgterm.engine.tasks.refine import plan_refine, refine

    engine, sent = client
    start, end = DOC.index("return"), DOC.index("print")
    lens = engine.confidence(DOC, start, end)  # over the wire, read-only requests
    # every third token doubted (the stand-in doubts them all)
    lens = [dataclasses.replace(t, prob=0.9 if i % 3 else 0.1) for i, t in enumerate(lens)]
    plan = plan_refine(engine, DOC, start, end, 0.5, lens)
    assert [t.prob for t in plan.tokens] == [t.prob for t in lens]
    assert plan.renoised and plan.kept and "".join(t.text for t in plan.tokens) == DOC[start:end]
    if sent is not None:
        sent.clear()
    result = refine(engine, DOC, start, end, engine.defaults.replace(steps=2, seed=4), plan=plan).collect()
    check_refined(plan, result)
    if sent is None:
        return
    phrase = {engine.tokenizer.decode([i]) for i in vllm.standin.fill}
    assert all(s in phrase for s in result.best.spans)  # each one-token run took the stand-in's phrase
    for r in window_runs(sent):
        x = r["vllm_xargs"]
        assert len(x["diffusion_seed_canvas"]) == engine.canvas_length and x["diffusion_pinned"]
        pinned = set(x["diffusion_pinned"])
        free = [p for p in range(engine.canvas_length) if p not in pinned]
        assert len(free) == sum(len(t.ids) for t in plan.renoised)  # only the doubted tokens are drawn


def test_a_remote_refine_equals_the_local_one(remote, bundled):
    from dgterm.engine.tasks.refine import plan_refine, refine

    p = bundled.defaults.replace(steps=3, seed=5)
    start, end = DOC.index("return"), DOC.index("print")
    plan = plan_refine(bundled, DOC, start, end, 0.3)
    here = refine(bundled, DOC, start, end, p, plan=plan, candidates=2).collect()
    there = refine(remote, DOC, start, end, p, plan=plan, candidates=2).collect()
    check_refined(plan, there)
    assert {c.seed: c.text for c in there.candidates} == {c.seed: c.text for c in here.candidates}
    events = list(refine(remote, DOC, start, end, p, plan=plan))
    assert len(events) > 1  # live steps from `dgterm serve`


def test_refine_runs_on_the_server_from_the_command_line(served, monkeypatch, capsys, tmp_path):
    from dgterm.cli import main

    path = tmp_path / "mean.py"
    path.write_text(DOC)
    monkeypatch.setenv("DGTERM_API_KEY", served.key)
    start, end = DOC.index("return"), DOC.index("print")
    assert main(["refine", str(path), "--span", f"{start}:{end}", "--below", "0.5", "--steps", "2", "--seed", "1",
                 "--server", served.url, "--json", "--in-place"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["renoised"] and {c["seed"] for c in record["candidates"]} == {1, candidate_seed(1, 1)}
    written = path.read_text()
    assert written == record["candidates"][0]["text"] and written[:start] == DOC[:start] and written.endswith(DOC[end:])


def test_a_rewrite_is_sized_to_its_span_through_a_server(client):
    engine, sent = client
    span = spans_of(DOC, "sum(values)")[0]
    task = chat.rewrite(engine, DOC, span, "Use a loop.", engine.defaults.replace(steps=2, seed=1))
    answer = task.plans[0].answer
    cand = task.collect().best
    assert answer < engine.canvas_length and cand.text == DOC[: span.start] + cand.spans[0] + DOC[span.end :]
    if sent is not None:
        x = window_runs(sent)[-1]["vllm_xargs"]
        assert len(x["diffusion_seed_canvas"]) == engine.canvas_length
        assert x["diffusion_pinned"] == list(range(answer, engine.canvas_length))
