"""`dgterm serve` through the official openai client, plain HTTP and abuse (a real subprocess, loopback)."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from tests.helpers.server import metric, wait_idle

pytestmark = pytest.mark.slow
FAST = {"dgterm": {"sampler": {"steps": 2}}}


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0, timeout=120)


def auth(served):
    return {"Authorization": f"Bearer {served.key}"}


def test_openai_client_completes_and_chats(client):
    r = client.completions.create(model="stdlib-7m", prompt="import os\n", max_tokens=24, seed=3, extra_body=FAST)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens <= 24
    again = client.completions.create(model="stdlib-7m", prompt="import os\n", max_tokens=24, seed=3, extra_body=FAST)
    assert again.choices[0].text == r.choices[0].text  # same seed, same text
    chat = client.chat.completions.create(model="stdlib-7m", messages=[{"role": "user", "content": "Sort a list."}],
                                          max_tokens=16, n=2, extra_body=FAST)
    assert len(chat.choices) == 2 and all(c.message.role == "assistant" for c in chat.choices)
    assert [m.id for m in client.models.list().data] == ["stdlib-7m", "bundled"]


def test_openai_client_streams_one_chunk_per_canvas_and_frames_on_request(client):
    plain = list(client.completions.create(model="stdlib-7m", prompt="def f(x):", max_tokens=200, seed=4, stream=True,
                                           extra_body=FAST))
    whole = client.completions.create(model="stdlib-7m", prompt="def f(x):", max_tokens=200, seed=4, extra_body=FAST)
    assert "".join(c.choices[0].text for c in plain) == whole.choices[0].text
    assert plain[-1].choices[0].finish_reason in ("stop", "length")
    assert not any(getattr(c, "dgterm_frame", None) for c in plain)
    live = list(client.completions.create(model="stdlib-7m", prompt="def f(x):", max_tokens=200, seed=4, stream=True,
                                          extra_body={"dgterm": {"sampler": {"steps": 2}, "frames": True}}))
    frames = [c.dgterm_frame for c in live if getattr(c, "dgterm_frame", None) and "step" in c.dgterm_frame]
    assert frames and frames[0]["step"] == 1 and frames[0]["max_steps"] == 2
    assert len(frames[0]["canvas"]) == len(frames[0]["accepted"]) == len(frames[0]["entropy"]) == 128
    assert "".join(c.choices[0].text for c in live) == whole.choices[0].text  # the frames change no text


def test_small_routes(served):
    h = auth(served)
    assert httpx.get(served.url + "/health", headers=h).status_code == 200
    meta = httpx.get(served.url + "/v1/models", headers=h).json()["data"][0]["dgterm"]
    assert meta["canvas_length"] == 128 and meta["frames"]
    ids = httpx.post(served.url + "/tokenize", json={"prompt": "import os"}, headers=h).json()["tokens"]
    assert ids[0] == meta["bos_token_id"]
    text = httpx.post(served.url + "/detokenize", json={"tokens": ids}, headers=h).json()["prompt"]
    assert text == "import os"
    chat = httpx.post(served.url + "/tokenize", json={"messages": [{"role": "user", "content": "hi"}]}, headers=h)
    assert chat.status_code == 200 and chat.json()["count"] > 2
    metrics = httpx.get(served.url + "/metrics", headers=h).text
    for name in ("dgterm_requests_total", "dgterm_batch_size_bucket", "dgterm_generated_tokens_total",
                 "dgterm_queue_depth"):
        assert name in metrics


def test_the_default_served_names_are_the_checkpoints_and_the_model_argument(served):
    """Started with no --model: 'stdlib-7m' and 'bundled' both name it, the first in every answer."""
    listed = [m["id"] for m in httpx.get(served.url + "/v1/models", headers=auth(served)).json()["data"]]
    assert listed == ["stdlib-7m", "bundled"]
    for name in listed:
        r = httpx.post(served.url + "/v1/completions", headers=auth(served), timeout=120,
                       json={"model": name, "prompt": "x", "max_tokens": 4, "seed": 1, **FAST})
        assert r.status_code == 200 and r.json()["model"] == "stdlib-7m"
    r = httpx.post(served.url + "/v1/completions", headers=auth(served), json={"model": "gpt-4", "prompt": "x"})
    assert r.status_code == 404 and "serves 'stdlib-7m', 'bundled'" in r.json()["error"]["message"]


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"prompt": 5}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "x", "max_tokens": "ten"}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "max_tokens": 10**6}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "n": 99}).encode(), 400, "n must be"),
    (json.dumps({"prompt": "x", "model": "/etc/passwd"}).encode(), 404, "does not exist"),
    (json.dumps({"prompt": [1, 99999]}).encode(), 400, "ids must be in"),
    (json.dumps({"prompt": "x", "vllm_xargs": {"diffusion_seed_canvas": [0, 1]}}).encode(), 400, "exactly 128 ids"),
    (json.dumps({"prompt": "x", "vllm_xargs": {"diffusion_pinned": [0]}}).encode(), 400, "needs a diffusion_seed"),
    (json.dumps({"prompt": "x", "vllm_xargs": {"diffusion_max_steps": True}}).encode(), 400, "integer"),
    (json.dumps({"prompt": "x", "vllm_xargs": {"diffusion_canvas_length": 16, "diffusion_seed_canvas": [0] * 32}}
                ).encode(), 400, "exactly 16 ids"),
    (json.dumps({"prompt": "x", "vllm_xargs": {"diffusion_canvas_length": 129}}).encode(), 400, "between 1 and 128"),
    (json.dumps({"prompt": "x", "vllm_xargs": {"diffusion_constrained": True}}).encode(), 400, "logprob_token_ids"),
    (json.dumps({"prompt": "x", "logprob_token_ids": [5, 5]}).encode(), 400, "distinct"),
    (json.dumps({"prompt": "x", "dgterm": {"rng_state": "AAAA"}}).encode(), 400, "not a generator state"),
    (json.dumps({"prompt": "x", "n": 2, "dgterm": {"rng_state": "AAAA"}}).encode(), 400, "send n = 1"),
    (json.dumps({"prompt": "x", "dgterm": {"sampler": {"t_min": 2.0}}}).encode(), 400, "sampler"),
    (b"x" * (2 << 20), 413, "larger than"),
])
def test_bad_requests_are_clean_4xx(served, body, status, words):
    r = httpx.post(served.url + "/v1/completions", content=body, headers={**auth(served), "content-type": "application/json"})
    assert r.status_code == status
    error = r.json()["error"]
    assert words in error["message"] and error["code"] == status


def test_a_narrower_constrained_read_through_the_openai_client(client, served):
    """vLLM's label read: a 16-wide canvas, the template pinned, the slots sampled from the labels only."""
    h = auth(served)
    tokens = lambda text: httpx.post(served.url + "/tokenize", json={"prompt": text, "add_special_tokens": False},
                                     headers=h).json()["tokens"]
    labels = tokens(" yes no maybe")
    template = (tokens("answer:") + [0] * 16)[:16]
    free = [p for p in range(16) if template[p] == 0]
    r = client.completions.create(
        model="stdlib-7m", prompt="Is it so?", max_tokens=16, logprobs=1,
        extra_body={"return_tokens_as_token_ids": True, "logprob_token_ids": labels,
                    "vllm_xargs": {"diffusion_canvas_length": 16, "diffusion_seed_canvas": template,
                                   "diffusion_pinned": [p for p in range(16) if p not in free],
                                   "diffusion_read_only": True, "diffusion_constrained": True,
                                   "diffusion_max_steps": 2}})
    lp = r.choices[0].logprobs
    out = [int(t.removeprefix("token_id:")) for t in lp.tokens]
    assert len(out) == 16 and all(out[p] == template[p] for p in range(16) if p not in free)
    assert all(out[p] in labels for p in free)
    for p in free:
        top = lp.top_logprobs[p]
        assert sorted(int(t.removeprefix("token_id:")) for t in top) == sorted(labels)
        assert abs(sum(2.718281828459045 ** v for v in top.values()) - 1) < 1e-3


def test_every_request_needs_the_key(served):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": served.key}):
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"), ("GET", "/metrics")):
            r = httpx.request(method, served.url + path, headers=headers, json={"prompt": "x"})
            assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
    assert httpx.get(served.url + "/nope", headers=auth(served)).status_code == 404


def test_a_client_that_leaves_mid_stream_leaves_no_row(served):
    body = {"prompt": "import os\n", "max_tokens": 512, "stream": True,
            "dgterm": {"sampler": {"steps": 48, "confidence": 1e-9}, "frames": True}}
    with httpx.stream("POST", served.url + "/v1/completions", json=body, headers=auth(served), timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # one frame, then hang up
    wait_idle(served)
    assert httpx.get(served.url + "/health", headers=auth(served)).status_code == 200


def rss(served) -> int:
    with open(f"/proc/{served.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) * 1024


def test_twenty_concurrent_clients_get_an_answer_or_503(served):
    """Twice: every client gets an answer or a clean 503, and the second round needs no more memory."""
    after = []
    for _ in range(2):
        twenty_clients(served)
        after.append(rss(served))
    assert after[1] < after[0] * 1.1 + (32 << 20)
    assert metric(served, "dgterm_batch_size_count") > metric(served, 'dgterm_batch_size_bucket{le="1.0"}')


def twenty_clients(served):
    answers = []

    def one(i):
        r = httpx.post(served.url + "/v1/completions", headers=auth(served), timeout=300,
                       json={"prompt": f"x = {i}", "max_tokens": 8, "seed": i, **FAST})
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(answers) == 20
    for status, body in answers:
        assert (status, "choices" in body) == (200, True) or (status, body["error"]["type"]) == (503, "server_busy")
    assert sum(status == 200 for status, _ in answers) >= 4
    wait_idle(served)
    assert httpx.get(served.url + "/health", headers=auth(served)).status_code == 200


def test_batching_is_exact(served):
    """A request's tokens alone and among 3 others: identical for the same seed."""
    prompts = ["def add(a, b):", "import os\nimport sys\n\nclass Config:", "for i in range(3):", "x = ["]

    def ask(i):
        body = {"prompt": prompts[i], "max_tokens": 128, "seed": 10 + i, "logprobs": 0,
                "return_tokens_as_token_ids": True, "dgterm": {"sampler": {"steps": 4}}}
        r = httpx.post(served.url + "/v1/completions", json=body, headers=auth(served), timeout=300)
        return r.json()["choices"][0]["logprobs"]["tokens"]

    alone = [ask(i) for i in range(4)]
    together = [None] * 4

    def run(i):
        together[i] = ask(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert together == alone


def test_refuses_to_listen_beyond_loopback_without_a_key(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DGTERM_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "without an API key" in out.stderr and "Traceback" not in out.stderr
