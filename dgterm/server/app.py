"""The HTTP surface of `dgterm serve` (Starlette; streams with sse-starlette).

One :class:`~dgterm.engine.local.batch.Batcher` thread owns the model; every request becomes
one sequence per candidate and waits on an asyncio queue the batcher feeds. Nothing here
reads a path from a request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dgterm.engine.local.batch import Batcher, Sequence
from dgterm.engine.events import Window
from dgterm.engine.params import SamplerParams
from dgterm.engine.output.tokens import decode, split_thinking, token_text
from dgterm.server.protocol import ApiError, Limits, Request, parse


@dataclass
class ServeConfig:
    api_key: str | None = None
    max_batch: int = 8
    limits: Limits = Limits()


class Metrics:
    def __init__(self, batcher_of):
        self.registry = CollectorRegistry()
        self.requests = Counter("dgterm_requests", "HTTP requests", ["route", "code"], registry=self.registry)
        self.batch = Histogram("dgterm_batch_size", "Sequences in each decoder forward",
                               buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.tokens = Counter("dgterm_generated_tokens", "Tokens committed (rate() gives tok/s)",
                              registry=self.registry)
        Gauge("dgterm_queue_depth", "Sequences waiting for a place in the batch",
              registry=self.registry).set_function(lambda: batcher_of().depth)
        Gauge("dgterm_running_sequences", "Sequences in the batch",
              registry=self.registry).set_function(lambda: batcher_of().running)


def error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


class Server:
    def __init__(self, lm, config: ServeConfig):
        self.lm, self.config, self.limits = lm, config, config.limits
        self.metrics = Metrics(lambda: self.batcher)
        self.batcher = Batcher(lm, config.max_batch, on_step=self.metrics.batch.observe)
        self.created = int(time.time())
        self.texts = token_text(lm.tokenizer)

    # ------------------------------------------------------------ plumbing

    def route(self, handler, name: str):
        async def endpoint(request: HttpRequest):
            try:
                self._authorize(request)
                response = await handler(request)
            except ApiError as e:
                response = error(e)
            self.metrics.requests.labels(name, str(response.status_code)).inc()
            return response
        return endpoint

    def _authorize(self, request: HttpRequest) -> None:
        key = self.config.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise ApiError(401, "A valid API key is required: send 'Authorization: Bearer <key>'.", kind="authentication_error")

    async def _json(self, request: HttpRequest):
        limit = self.limits.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"The request body is larger than the {limit} bytes this server takes.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"The request body is larger than the {limit} bytes this server takes.")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The request body is not valid JSON.") from None

    # ------------------------------------------------------------ small routes

    async def health(self, request):
        return Response(status_code=200)

    async def models(self, request):
        lm = self.lm
        return JSONResponse({"object": "list", "data": [{
            "id": lm.name, "object": "model", "created": self.created, "owned_by": "dgterm",
            "max_model_len": lm.max_positions,
            "dgterm": {"canvas_length": lm.canvas_length, "vocab_size": lm.vocab_size,
                       "bos_token_id": lm.tokenizer.bos_token_id, "eos_token_ids": lm.eos_ids, "pad_token_id": lm.pad_id,
                       "special_ids": sorted(lm.tokenizer.all_special_ids), "chat_template": lm.has_chat_template,
                       "defaults": vars(lm.defaults), "frames": True, "lens": True, "max_batch": self.config.max_batch},
        }]})

    async def metrics_text(self, request):
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def tokenize(self, request):
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        tok = self.lm.tokenizer
        if "messages" in body:
            ids = self._chat_ids(body["messages"], bool(body.get("add_generation_prompt", True)))
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise ApiError(400, "prompt must be a string.", "prompt")
            if len(prompt) > self.limits.max_body:
                raise ApiError(413, "The prompt is too long.")
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            if body.get("add_special_tokens", True):
                ids = [tok.bos_token_id] + ids
        out = {"count": len(ids), "max_model_len": self.lm.max_positions, "tokens": ids}
        if body.get("return_token_strs"):
            out["token_strs"] = [self.texts(i) for i in ids]
        return JSONResponse(out)

    async def detokenize(self, request):
        body = await self._json(request)
        tokens = body.get("tokens") if isinstance(body, dict) else None
        vocab = self.lm.vocab_size
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab
                                                   for t in tokens):
            raise ApiError(400, f"tokens must be a list of token ids in [0, {vocab}).", "tokens")
        return JSONResponse({"prompt": decode(self.lm.tokenizer, tokens)})

    def _chat_ids(self, messages, generation_prompt: bool = True) -> list[int]:
        tok = self.lm.tokenizer
        if not self.lm.has_chat_template:
            raise ApiError(400, f"{self.lm.name} has no chat template; use /v1/completions.")
        if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                     and m.get("role") in ("system", "user", "assistant")
                                                     for m in messages):
            raise ApiError(400, "messages must be a list of {role, content} objects with text content.", "messages")
        try:
            text = tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
        except Exception as e:  # noqa: BLE001 - a template's own refusal (roles out of order)
            raise ApiError(400, f"The chat template refused these messages ({e}).", "messages") from None
        return tok(text, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------ generation

    async def completions(self, request):
        return await self._generate(request, chat=False)

    async def chat_completions(self, request):
        return await self._generate(request, chat=True)

    async def _generate(self, http: HttpRequest, chat: bool):
        lm = self.lm
        body = await self._json(http)
        req = parse(body, chat=chat, model_name=lm.name, canvas_length=lm.canvas_length, vocab=lm.vocab_size,
                    limits=self.limits)
        ids = self._prompt_ids(req)
        if len(ids) + req.max_tokens > lm.max_positions or len(ids) > self.limits.max_prompt:
            raise ApiError(400, f"The prompt ({len(ids)} tokens) and max_tokens ({req.max_tokens}) do not fit the "
                                f"model's context of {lm.max_positions}.", "max_tokens")
        if self.batcher.depth + req.n > self.limits.max_queue:
            raise ApiError(503, "The server is busy; retry in a moment.", kind="server_busy")
        params = self._params(req)
        run = RunState(self, req, ids, params, asyncio.get_running_loop())
        self.batcher.submit(run.sequences)
        if req.stream:
            return EventSourceResponse(run.stream(http), ping=15)
        return await run.complete(http)

    def _prompt_ids(self, req: Request) -> list[int]:
        tok = self.lm.tokenizer
        if req.messages is not None:
            return self._chat_ids(req.messages)
        if req.prompt is not None:
            return req.prompt
        return [tok.bos_token_id] + tok(req.text, add_special_tokens=False)["input_ids"]

    def _params(self, req: Request) -> SamplerParams:
        steps = req.sampler.get("steps", req.max_steps)
        seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
        try:
            return self.lm.defaults.replace(**{**req.sampler, "steps": steps}, seed=seed, max_new_tokens=req.max_tokens)
        except (TypeError, ValueError) as e:
            raise ApiError(400, f"Bad sampler setting: {e}.", "dgterm.sampler") from None


class RunState:
    """One request's sequences and what they have produced so far."""

    def __init__(self, server: Server, req: Request, ids: list[int], params: SamplerParams, loop):
        self.server, self.req, self.ids, self.params = server, req, ids, params
        self.lm = server.lm
        self.queue: asyncio.Queue = asyncio.Queue()
        self.id = ("chatcmpl-" if req.chat else "cmpl-") + uuid.uuid4().hex[:24]
        C = self.lm.canvas_length
        canvases = -(-req.max_tokens // (req.width or C))
        first = Window(ids)
        if req.seed_canvas is not None:  # as wide as the request's canvas; the batcher holds the rest at pad
            seed = torch.tensor(req.seed_canvas + [self.lm.pad_id] * (C - len(req.seed_canvas)))
            pinned = torch.zeros(C, dtype=torch.bool)
            pinned[req.pinned or []] = True
            if req.rng_state is not None:  # the free positions take this server's own draw, as in-process
                first = Window(ids, seed, pinned) if req.pinned else Window(ids)
            else:
                first = Window(ids, seed, pinned, start=seed) if req.pinned else Window(ids, start=seed)
        windows = [first] + [Window([]) for _ in range(canvases - 1)]
        allowed = None
        if req.constrained:
            allowed = torch.zeros(self.lm.vocab_size, dtype=torch.bool, device=self.lm.device)
            allowed[req.logprob_ids] = True
        rng = None if req.rng_state is None else rng_state(req.rng_state, self.lm.device)
        self.rng: list[str | None] = [None] * req.n  # the generator states the rows end with, when asked
        self.sequences = []
        for b in range(req.n):
            def sink(kind, payload, b=b):
                loop.call_soon_threadsafe(self.queue.put_nowait, (b, kind, payload))
            self.sequences.append(Sequence(windows, params.replace(seed=params.seed + b), sink,
                                           stop_at_eos=not req.ignore_eos, frames=req.frames and req.stream,
                                           logprobs=req.logprobs, logprob_ids=req.logprob_ids, width=req.width,
                                           allowed=allowed, rng=rng))
        self.tokens = [[] for _ in range(req.n)]  # committed ids, cut at EOS and max_tokens
        self.top = [[] for _ in range(req.n)]  # per committed token: (chosen logprob, {id: logprob})
        self.sent = ["" for _ in range(req.n)]
        self.finish = [None] * req.n
        self.stats = [None] * req.n
        self.thinking = [None] * req.n
        self.seen: set[int] = set()

    def cancel(self) -> None:
        for seq in self.sequences:
            seq.cancel.set()

    def _canvas(self, b: int, payload: dict) -> None:
        ids, room = payload["ids"], self.req.max_tokens - len(self.tokens[b])
        keep = len(ids)
        if self.sequences[b].stop_at_eos:
            eos = set(self.lm.eos_ids)
            first = next((i for i, t in enumerate(ids) if t in eos), None)
            keep = len(ids) if first is None else first + 1
            if first is not None:
                self.finish[b] = "stop"
        keep = min(keep, room)
        self.tokens[b] += ids[:keep]
        lp = payload["logprobs"]
        if lp is not None:
            for i in range(keep):
                self.top[b].append((lp["chosen"][i], dict(zip(lp["top_ids"][i], lp["top_values"][i]))))
        self.server.metrics.tokens.inc(keep)

    def _text(self, b: int) -> str:
        ids = self.tokens[b]
        tok = self.lm.tokenizer
        if self.req.chat:
            answer, thinking = split_thinking(tok, ids)
            self.thinking[b] = thinking
            return answer
        return decode(tok, ids)

    async def _next(self, http: HttpRequest):
        """The next (row, kind, payload); cancels the run if the client went away."""
        while True:
            try:
                return await asyncio.wait_for(self.queue.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await http.is_disconnected():
                    self.cancel()
                    raise asyncio.CancelledError from None

    def _record(self, b: int, kind: str, payload) -> bool:
        """Take one message in; True when the row has ended."""
        if kind == "canvas":
            self._canvas(b, payload)
        elif kind == "done":
            state = payload.pop("rng_state", None)
            self.rng[b] = None if state is None else base64.b64encode(state.numpy().tobytes()).decode()
            self.stats[b] = payload
            self.finish[b] = self.finish[b] or "length"
            return True
        elif kind == "cancelled":
            self.finish[b] = "cancelled"
            return True
        elif kind == "error":
            raise ApiError(500, payload, kind="server_error")
        return False

    async def complete(self, http: HttpRequest):
        ended = 0
        try:
            while ended < self.req.n:
                b, kind, payload = await self._next(http)
                ended += self._record(b, kind, payload)
        except asyncio.CancelledError:
            return Response(status_code=499)
        except ApiError:
            self.cancel()
            raise
        choices = []
        for b in range(self.req.n):
            text = self._text(b)
            choice = {"index": b, "finish_reason": self.finish[b], "logprobs": self._logprobs(b, 0)}
            if self.req.chat:
                choice["message"] = {"role": "assistant", "content": text, "reasoning_content": self.thinking[b]}
            else:
                choice["text"] = text
            choices.append(choice)
        body = {"id": self.id, "object": "chat.completion" if self.req.chat else "text_completion",
                "created": int(time.time()), "model": self.lm.name, "choices": choices, "usage": self._usage(),
                "dgterm": {"stats": self.stats, "seed": self.params.seed, "rng_state": self.rng}}
        return JSONResponse(body)

    def _usage(self) -> dict:
        completion = sum(len(t) for t in self.tokens)
        return {"prompt_tokens": len(self.ids), "completion_tokens": completion,
                "total_tokens": len(self.ids) + completion}

    def _logprobs(self, b: int, start: int):
        if self.req.logprobs is None:
            return None
        texts, as_ids = self.server.texts, self.req.token_ids
        name = (lambda i: f"token_id:{i}") if as_ids else texts
        ids, top = self.tokens[b][start:], self.top[b][start:]
        k = len(self.req.logprob_ids) if self.req.logprob_ids else self.req.logprobs  # asked-for ids: all of them
        if self.req.chat:
            return {"content": [{"token": name(i), "logprob": c, "bytes": None,
                                 "top_logprobs": [{"token": name(t), "logprob": v, "bytes": None}
                                                  for t, v in list(alt.items())[:k]]}
                                for i, (c, alt) in zip(ids, top)]}
        return {"tokens": [name(i) for i in ids], "token_logprobs": [c for c, _ in top],
                "top_logprobs": [{name(t): v for t, v in list(alt.items())[:k]} for _, alt in top],
                "text_offset": []}

    def _chunk(self, b: int, text: str, finish, logprobs=None, frame=None, rng_state=None) -> str:
        if self.req.chat:
            choice = {"index": b, "delta": {"content": text} if text else {}, "finish_reason": finish,
                      "logprobs": logprobs}
        else:
            choice = {"index": b, "text": text, "finish_reason": finish, "logprobs": logprobs}
        body = {"id": self.id, "object": "chat.completion.chunk" if self.req.chat else "text_completion",
                "created": int(time.time()), "model": self.lm.name, "choices": [choice]}
        if frame is not None:
            body["dgterm_frame"] = frame
        if rng_state is not None:
            body["dgterm_rng_state"] = rng_state
        return json.dumps(body)

    async def stream(self, http: HttpRequest):
        ended = 0
        try:
            while ended < self.req.n:
                b, kind, payload = await self._next(http)
                if kind == "step":
                    yield self._chunk(b, "", None, frame=self._frame(payload))
                    continue
                before = len(self.tokens[b])
                done = self._record(b, kind, payload)
                if kind == "canvas":
                    text = self._text(b)
                    stable = text.rstrip("\ufffd")
                    delta, self.sent[b] = stable[len(self.sent[b]):], stable
                    frame = ({"window": payload["window"], "commit": True, "ids": payload["ids"]}
                             if self.req.frames else None)
                    yield self._chunk(b, delta, None, self._logprobs(b, before), frame=frame)
                if done:
                    ended += 1
                    rest = self._text(b)[len(self.sent[b]):]
                    yield self._chunk(b, rest, self.finish[b], rng_state=self.rng[b])
            yield "[DONE]"
        except ApiError as e:
            yield json.dumps(e.body())
        finally:
            self.cancel()  # a client that left: its rows are dropped at the next step

    def _frame(self, payload: dict) -> dict:
        fresh = {i for i in payload["argmax"] + payload["canvas"] if i not in self.seen}
        self.seen |= fresh
        return {**payload, "texts": {str(i): self.server.texts(i) for i in fresh}}


def rng_state(value, device):
    """The generator state a request goes on from (``True``: none, start from the seed): checked
    here by loading it into a generator of this device, so a bad one is a 400, not a failed row."""
    if value is True:
        return True
    try:
        state = torch.frombuffer(bytearray(base64.b64decode(value, validate=True)), dtype=torch.uint8)
        torch.Generator(device=device).set_state(state)
    except (ValueError, RuntimeError, TypeError):
        raise ApiError(400, "dgterm.rng_state is not a generator state this server returned.", "dgterm.rng_state") from None
    return state


def build_app(lm, config: ServeConfig) -> Starlette:
    server = Server(lm, config)
    r = server.route
    routes = [
        Route("/health", r(server.health, "health"), methods=["GET"]),
        Route("/v1/models", r(server.models, "models"), methods=["GET"]),
        Route("/metrics", r(server.metrics_text, "metrics"), methods=["GET"]),
        Route("/tokenize", r(server.tokenize, "tokenize"), methods=["POST"]),
        Route("/detokenize", r(server.detokenize, "detokenize"), methods=["POST"]),
        Route("/v1/completions", r(server.completions, "completions"), methods=["POST"]),
        Route("/v1/chat/completions", r(server.chat_completions, "chat"), methods=["POST"]),
    ]

    async def not_found(request, exc):
        return JSONResponse(ApiError(404, f"No route {request.url.path}.").body(), status_code=404)

    async def bad_method(request, exc):
        return JSONResponse(ApiError(405, f"{request.method} is not allowed on {request.url.path}.").body(),
                            status_code=405)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        server.batcher.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: bad_method}, lifespan=lifespan)
    app.state.server = server
    return app

