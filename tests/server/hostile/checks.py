"""What every hostile test checks: one OpenAI-style error, and that the server answers the next request."""

from __future__ import annotations

import httpx

KEY = "hostile-key-0123456789"
NAMES = ("team-model", "alias")


def headers(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def assert_api_error(response: httpx.Response, status: int, words: str = "") -> dict:
    """One OpenAI-style error: the status, and a body {"error": {message, type, param, code}}."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == status
    assert isinstance(error["message"], str) and words in error["message"], error["message"]
    return error


def assert_answers(server) -> None:
    """The next request succeeds: a small completion, under the served name."""
    r = httpx.post(server.url + "/v1/completions", headers=headers(), timeout=120,
                   json={"model": NAMES[0], "prompt": "x = ", "max_tokens": 4, "seed": 1,
                         "dgterm": {"sampler": {"steps": 1}}})
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length"), r.text


def rss(server) -> int:
    with open(f"/proc/{server.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) * 1024
