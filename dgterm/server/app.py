"""The HTTP surface of `dgterm serve`: the Starlette routes (streams with sse-starlette).

Laid out as vLLM's entrypoints/openai: the routes here (the API key, the body limit, the
small routes), the run state in :mod:`dgterm.server.serving`, the requests and their limits
in :mod:`dgterm.server.protocol`, the Prometheus metrics in :mod:`dgterm.server.metrics`.
Nothing here reads a path from a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dgterm.engine.output.tokens import decode
from dgterm.engine.remote.wire import ids_to_bitmap
from dgterm.engine.tasks.healing import heal_edge
from dgterm.server.metrics import CONTENT_TYPE, Metrics
from dgterm.server.protocol import ApiError, Limits, enable_thinking
from dgterm.server.scoring import Scorer
from dgterm.server.serving import Serving

Handler = Callable[[HttpRequest], Awaitable[Response]]


@dataclass
class ServeConfig:
    api_key: str | None = None
    max_batch: int = 8
    limits: Limits = field(default_factory=Limits)
    served_names: list[str] = field(default_factory=list)  # the names a request may give; none: the model's own
    body_timeout: float = 60.0  # seconds a request body may take to arrive
    thinking: bool | None = None  # --thinking: the chat template's enable_thinking unless a request says


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # Python's json takes NaN and Infinity; JSON does not


def error(e: ApiError) -> JSONResponse:
    """The error's response; after a body that was not read whole (too large, too slow) the
    connection closes, or the body's rest would be read as the next request."""
    unread = e.status in (408, 413)
    return JSONResponse(e.body(), status_code=e.status, headers={"Connection": "close"} if unread else None)


class Server:
    """The routes over one :class:`~dgterm.server.serving.Serving` (the model and its batcher)."""

    def __init__(self, lm, config: ServeConfig):
        self.lm, self.config, self.limits = lm, config, config.limits
        self.metrics = Metrics()
        self.names = list(dict.fromkeys(config.served_names or [lm.name]))
        self.serving = Serving(lm, config.limits, config.max_batch, self.metrics, self.names, config.thinking)
        self.scorer = Scorer(lm, config.limits, self.names)
        self.created = int(time.time())

    # ------------------------------------------------------------ plumbing

    def route(self, handler: Handler, name: str) -> Handler:
        async def endpoint(request: HttpRequest) -> Response:
            try:
                self._authorize(request)
                response = await handler(request)
            except ApiError as e:
                response = error(e)
            except Exception as e:  # noqa: BLE001 - a bug answers as an API error, never a bare 500 page
                response = error(ApiError(500, f"The server failed this request ({type(e).__name__}).",
                                          kind="server_error"))
            self.metrics.requests.labels(name, str(response.status_code)).inc()
            return response
        return endpoint

    def _authorize(self, request: HttpRequest) -> None:
        key = self.config.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise ApiError(401, "A valid API key is required: send 'Authorization: Bearer <key>'.",
                           kind="authentication_error")

    async def _json(self, request: HttpRequest):
        limit = self.limits.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"The request body is larger than the {limit} bytes this server takes.")
        body = bytearray()
        try:
            async with asyncio.timeout(self.config.body_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        raise ApiError(413, f"The request body is larger than the {limit} bytes this server takes.")
        except TimeoutError:
            raise ApiError(408, f"The request body did not arrive within {self.config.body_timeout:g} seconds.",
                           kind="timeout") from None
        try:
            return json.loads(body, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            raise ApiError(400, "The request body is not valid JSON.") from None

    # ------------------------------------------------------------ small routes

    async def health(self, request: HttpRequest) -> Response:
        return Response(status_code=200)

    async def models(self, request: HttpRequest) -> Response:
        """One entry per served name (the first is the one responses carry), as vLLM lists them."""
        lm = self.lm
        meta = {"canvas_length": lm.canvas_length, "vocab_size": lm.vocab_size,
                "bos_token_id": lm.tokenizer.bos_token_id, "eos_token_ids": lm.eos_ids, "pad_token_id": lm.pad_id,
                "special_ids": sorted(lm.tokenizer.all_special_ids), "chat_template": lm.has_chat_template,
                "defaults": vars(lm.defaults), "frames": True, "lens": True, "max_batch": self.config.max_batch}
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": self.created, "owned_by": "dgterm", "root": lm.name,
             "max_model_len": lm.max_positions, "dgterm": meta} for name in self.names]})

    async def metrics_text(self, request: HttpRequest) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    async def tokenize(self, request: HttpRequest) -> Response:
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        tok = self.lm.tokenizer
        if "messages" in body:
            ids = self.serving.chat_ids(body["messages"], bool(body.get("add_generation_prompt", True)),
                                        enable_thinking(body))
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
        ext = body.get("dgterm")
        if isinstance(ext, dict) and ext.get("heal") is True and isinstance(body.get("prompt"), str):
            out["dgterm"] = await asyncio.to_thread(self._heal, body["prompt"])  # the first lists the vocabulary
        if body.get("return_token_strs"):
            out["token_strs"] = [self.serving.texts(i) for i in ids]
        return JSONResponse(out)

    def _heal(self, piece: str) -> dict:
        """The text before a span healed as in-process (:func:`heal_edge`): its ids, the healed
        prefix and the ids the span's first position may take (a bitmap, see engine.remote.wire)."""
        before, prefix, options = heal_edge(self.lm.tokenizer, piece, True)
        return {"tokens": before, "healed": prefix,
                "allowed": ids_to_bitmap(options, self.lm.vocab_size) if options else None}

    async def score(self, request: HttpRequest) -> Response:
        return JSONResponse(await self.scorer.score(await self._json(request)))

    async def detokenize(self, request: HttpRequest) -> Response:
        body = await self._json(request)
        tokens = body.get("tokens") if isinstance(body, dict) else None
        vocab = self.lm.vocab_size
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab
                                                   for t in tokens):
            raise ApiError(400, f"tokens must be a list of token ids in [0, {vocab}).", "tokens")
        out: dict = {"prompt": decode(self.lm.tokenizer, tokens)}
        ext = body.get("dgterm")
        if isinstance(ext, dict) and ext.get("bytes") is True:  # what each token stands for, part of a character or not
            out["dgterm"] = {"bytes": [self.serving.texts.raw(t).hex() for t in tokens]}
        return JSONResponse(out)

    # ------------------------------------------------------------ generation

    async def completions(self, request: HttpRequest) -> Response:
        return await self.serving.generate(request, await self._json(request), chat=False)

    async def chat_completions(self, request: HttpRequest) -> Response:
        return await self.serving.generate(request, await self._json(request), chat=True)


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
        Route("/dgterm/score", r(server.score, "score"), methods=["POST"]),
    ]

    async def not_found(request: HttpRequest, exc: Exception) -> Response:
        return JSONResponse(ApiError(404, f"No route {request.url.path}.").body(), status_code=404)

    async def bad_method(request: HttpRequest, exc: Exception) -> Response:
        return JSONResponse(ApiError(405, f"{request.method} is not allowed on {request.url.path}.").body(),
                            status_code=405)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        server.serving.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: bad_method}, lifespan=lifespan)
    app.state.server = server
    return app
