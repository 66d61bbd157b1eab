"""Hostile connections: many at once, streams cut mid-step, headers a byte at a time. Each gets
an answer or one OpenAI-style error, the server answers the next request, and its memory
after the storm is within 10% of before."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from tests.helpers.server import wait_idle
from tests.server.hostile.checks import KEY, NAMES, assert_answers, assert_api_error, headers, rss

pytestmark = pytest.mark.slow
SMALL = {"model": NAMES[0], "prompt": "x = ", "max_tokens": 4, "dgterm": {"sampler": {"steps": 1}}}
LONG = {"model": NAMES[0], "prompt": "import os\n", "max_tokens": 512, "stream": True,
        "dgterm": {"frames": True, "sampler": {"steps": 48, "confidence": 1e-9}}}


async def many_at_once(url: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, headers=headers(), timeout=120, limits=limits) as client:
        return await asyncio.gather(*(client.post("/v1/completions", json={**SMALL, "seed": i})
                                      for i in range(count)))


async def cut_streams(url: str, count: int, at_once: int) -> int:
    """``count`` streams, ``at_once`` open together, each closed after its first frame; returns
    how many were cut mid-run (the others were refused with a 503)."""
    gate, cut = asyncio.Semaphore(at_once), 0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal cut
        async with gate, client.stream("POST", "/v1/completions", json={**LONG, "seed": i}) as r:
            if r.status_code == 503:
                assert_api_error(httpx.Response(503, content=await r.aread()), 503, "busy")
                return
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data:") and "dgterm_frame" in line:
                    cut += 1
                    return  # hang up mid-run

    async with httpx.AsyncClient(base_url=url, headers=headers(), timeout=120,
                                 limits=httpx.Limits(max_connections=at_once)) as client:
        await asyncio.gather(*(one(client, i) for i in range(count)))
    return cut


def test_the_storm_leaves_the_server_answering_in_the_memory_it_had(server):
    asyncio.run(many_at_once(server.url, 8))  # warm: batches of every size the storm makes
    wait_idle(server)
    before = rss(server)

    t0 = time.monotonic()
    answers = asyncio.run(many_at_once(server.url, 200))
    for r in answers:  # an answer, or one clean 503 (the queue holds 16)
        if r.status_code != 200:
            assert assert_api_error(r, 503, "busy")["type"] == "server_busy"
    assert sum(r.status_code == 200 for r in answers) >= 4
    wait_idle(server)
    assert_answers(server)

    cut = asyncio.run(cut_streams(server.url, 100, 10))
    assert cut >= 50  # most ran and were cut mid-step (the rest: a clean 503)
    wait_idle(server)  # every cut stream's rows were dropped
    assert_answers(server)
    assert time.monotonic() - t0 < 120

    after = rss(server)
    print(f"storm: {sum(r.status_code == 200 for r in answers)}/200 answered, {cut}/100 cut, RSS {before >> 20} -> {after >> 20} MiB")
    assert after < before * 1.10, (before, after)


def raw_request(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_headers_sent_a_byte_at_a_time_get_a_408(server):
    """Past the one-second header deadline, one 408 with an OpenAI-style body, the connection closed."""
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               "Content-Type: application/json\r\nX-Slow: " + "a" * 200).encode()
    sock = raw_request(server.url)
    t0 = time.monotonic()
    try:
        for byte in request:
            sock.send(bytes([byte]))
            time.sleep(0.02)
            if time.monotonic() - t0 > 3:
                break
    except OSError:  # closed under us: the deadline passed
        pass
    status, body = read_response(sock)
    sock.close()
    assert status == 408 and body["error"]["code"] == 408 and "headers did not arrive" in body["error"]["message"]
    assert time.monotonic() - t0 < 5
    assert_answers(server)


def test_a_body_that_stops_arriving_gets_a_408(server):
    """Whole headers, then a tenth of the body the Content-Length promised: a 408 past the
    two-second body deadline (``--body-timeout 2``), and the server answers the next request."""
    body = json.dumps(SMALL).encode()
    sock = raw_request(server.url)
    sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                 + body[: len(body) // 10])
    t0 = time.monotonic()
    status, answer = read_response(sock)
    sock.close()
    assert status == 408 and "body did not arrive within 2 seconds" in answer["error"]["message"]
    assert 1.9 < time.monotonic() - t0 < 6
    assert_answers(server)


def test_a_connection_that_sends_nothing_is_closed(server):
    sock = raw_request(server.url)
    t0 = time.monotonic()
    status, body = read_response(sock)
    sock.close()
    assert status == 408 and 0.9 < time.monotonic() - t0 < 5
    assert_answers(server)
