"""Hostile request bodies: each gets one OpenAI-style 4xx error, and the server answers the next request."""

from __future__ import annotations

import hmac
import json

import httpx
import pytest

from tests.server.hostile.checks import NAMES, assert_answers, assert_api_error, headers

pytestmark = pytest.mark.slow
MAX_BODY = 65536


def post(server, path: str, body: bytes, **extra) -> httpx.Response:
    return httpx.post(server.url + path, content=body, timeout=60,
                      headers={**headers(), "content-type": "application/json", **extra})


def dumps(**fields) -> bytes:
    return json.dumps({"prompt": "x", **fields}).encode()


MALFORMED = [
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe\x00{", "not valid JSON"),
    (b'{"prompt": "x", "temperature": NaN}', "not valid JSON"),  # Python's json takes NaN; JSON does not
    (b"[" * 30000 + b"]" * 30000, "not valid JSON"),  # nested past the parser's recursion
    (b"[1, 2]", "JSON object"),
    (b'"a string"', "JSON object"),
]
WRONG_TYPES = [
    (dumps(prompt=5), "prompt"),
    (dumps(prompt=[]), "prompt"),
    (dumps(prompt=[1, "2"]), "prompt"),
    (dumps(prompt=[True]), "prompt"),
    (dumps(max_tokens="ten"), "max_tokens must be an integer"),
    (dumps(max_tokens=1.5), "max_tokens must be an integer"),
    (dumps(stream="yes"), "stream must be a boolean"),
    (dumps(seed="1"), "seed must be an integer"),
    (dumps(vllm_xargs=[1]), "vllm_xargs must be an object"),
    (dumps(vllm_xargs=[]), "vllm_xargs must be an object"),
    (dumps(vllm_xargs={"diffusion_pinned": "all", "diffusion_seed_canvas": [0] * 128}), "diffusion_pinned"),
    (dumps(dgterm=3), "dgterm must be an object"),
    (dumps(dgterm={"sampler": []}), "dgterm.sampler takes"),
    (dumps(dgterm={"allowed": {"0": "not base64!"}}), "bitmap"),
    (dumps(dgterm={"allowed": {"999": ""}}), "inside the canvas"),
    (dumps(logprob_token_ids="all"), "logprob_token_ids"),
    (dumps(temperature="hot"), "temperature must be a number"),
]
UNKNOWN = [
    (dumps(stop=["\n"]), "Unknown field 'stop'"),
    (dumps(logit_bias={"1": 5}), "Unknown field 'logit_bias'"),
    (dumps(temperature=0.2), "temperature other than 1 is not taken"),
    (dumps(vllm_xargs={"diffusion_everything": True}), "Unknown field 'vllm_xargs.diffusion_everything'"),
    (dumps(dgterm={"framez": True}), "Unknown field 'dgterm.framez'"),
]
OUT_OF_RANGE = [
    (dumps(max_tokens=-1), "max_tokens must be between 1 and 512"),
    (dumps(max_tokens=10**18), "max_tokens must be between 1 and 512"),
    (dumps(n=-3), "n must be between 1 and 8"),
    (dumps(n=10_000), "n must be between 1 and 8"),  # 10,000 candidates
    (dumps(seed=-1), "seed must be between 0"),
    (dumps(seed=2**70), "seed must be between 0"),
    (dumps(logprobs=10**6), "logprobs must be between 0 and 20"),
    (dumps(vllm_xargs={"diffusion_max_steps": 10**12}), "diffusion_max_steps must be between 1 and 1024"),
    (dumps(vllm_xargs={"diffusion_max_steps": -5}), "diffusion_max_steps must be between 1 and 1024"),
    (dumps(dgterm={"sampler": {"steps": 10**9}}), "dgterm.sampler.steps must be between 1 and 1024"),
    (dumps(dgterm={"sampler": {"steps": -1}}), "dgterm.sampler.steps must be between 1 and 1024"),
    (dumps(dgterm={"sampler": {"entropy_bound": -1}}), "Bad sampler setting: entropy bound"),
    (b'{"prompt": "x", "dgterm": {"sampler": {"t_max": 1e999}}}', "Bad sampler setting: t_max must be a number"),
    (dumps(dgterm={"sampler": {"t_min": -1e300}}), "Bad sampler setting: temperatures need"),
    (dumps(dgterm={"sampler": {"confidence": 0}}), "Bad sampler setting"),
    (dumps(vllm_xargs={"diffusion_canvas_length": 0}), "diffusion_canvas_length must be between 1"),
]
TOO_LONG = [
    (dumps(prompt="word " * 12000), "do not fit the model's context"),  # under the body limit, over the context
    (dumps(prompt=[7] * 17000), "more than the 16384 this server takes"),
]


@pytest.mark.parametrize("body, words", MALFORMED + WRONG_TYPES + UNKNOWN + OUT_OF_RANGE + TOO_LONG)
def test_a_bad_completion_is_one_400(server, body, words):
    assert len(body) <= MAX_BODY
    assert assert_api_error(post(server, "/v1/completions", body), 400, words)["type"] == "invalid_request_error"
    assert_answers(server)


@pytest.mark.parametrize("path, body, words", [
    ("/v1/chat/completions", b'{"messages": "hi"}', "messages must be"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": 5}]}', "messages must be"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "top_logprobs": -1, '
                             b'"logprobs": true}', "top_logprobs"),
    ("/tokenize", b'{"prompt": 5}', "prompt must be a string"),
    ("/tokenize", b'{"messages": [{"role": "wizard", "content": "hi"}]}', "messages must be"),
    ("/detokenize", b'{"tokens": [-1]}', "tokens must be a list of token ids"),
    ("/detokenize", b'{"tokens": "abc"}', "tokens must be a list of token ids"),
    ("/dgterm/score", b'{"windows": [{}], "canvases": ' + json.dumps([[]] * 10_000).encode() + b"}",
     "At most 64 candidates"),
    ("/dgterm/score", b'{"windows": [{"prefix": [1]}], "canvases": [[[0, 1]]]}', "canvases must hold"),
    ("/dgterm/score", b'{"windows": [{"prefix": "x"}], "canvases": [[' + json.dumps([0] * 128).encode() + b"]]}",
     "prefix must be a list of token ids"),
])
def test_bad_bodies_on_every_route_are_one_400(server, path, body, words):
    assert_api_error(post(server, path, body), 400, words)
    assert_answers(server)


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(server):
    big = b'{"prompt": "' + b"x" * MAX_BODY + b'"}'
    assert_api_error(post(server, "/v1/completions", big), 413, f"larger than the {MAX_BODY} bytes")

    def chunks():  # no content-length: the limit holds while the body streams in
        for _ in range(8):
            yield b"x" * (MAX_BODY // 4)

    r = httpx.post(server.url + "/v1/completions", content=chunks(), timeout=60,
                   headers={**headers(), "content-type": "application/json"})
    assert_api_error(r, 413, "larger than")
    assert_answers(server)


def test_a_model_it_does_not_serve_is_a_404_naming_what_it_serves(server):
    for model in ("stdlib-7m", "/etc/passwd", ["team-model"]):
        error = assert_api_error(post(server, "/v1/completions", dumps(model=model)), 404, "serves 'team-model', "
                                 "'alias'")
        assert error["type"] == "model_not_found"
    listed = [m["id"] for m in httpx.get(server.url + "/v1/models", headers=headers()).json()["data"]]
    assert listed == list(NAMES)
    assert_answers(server)


@pytest.mark.parametrize("given", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic a2V5"},
                                   {"Authorization": "hostile-key-0123456789"},
                                   {"Authorization": "Bearer hostile-key-0123456789x"},
                                   {"Authorization": "Bearer " + "k" * 5000}])
def test_a_wrong_key_is_a_401(server, given):
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "x"}, headers=given, timeout=30)
    assert assert_api_error(r, 401, "API key")["type"] == "authentication_error"
    assert_answers(server)


def test_the_key_is_compared_in_constant_time(monkeypatch):
    """hmac.compare_digest, whose time does not depend on where the first wrong byte is."""
    from types import SimpleNamespace

    from dgterm.server import app
    from dgterm.server.protocol import ApiError

    seen, original = [], hmac.compare_digest

    def compare(a, b):
        seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr(app.hmac, "compare_digest", compare)
    server = SimpleNamespace(config=SimpleNamespace(api_key="k1"))
    request = SimpleNamespace(headers={"authorization": "Bearer k2"})
    with pytest.raises(ApiError):
        app.Server._authorize(server, request)
    assert seen == [(b"Bearer k2", b"Bearer k1")]


def test_a_wrong_method_or_route_is_one_error(server):
    assert_api_error(httpx.get(server.url + "/v1/completions", headers=headers()), 405, "GET is not allowed")
    assert_api_error(httpx.get(server.url + "/v1/../../etc/passwd", headers=headers()), 404, "No route")
    assert_answers(server)
