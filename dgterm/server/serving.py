"""The run state of `dgterm serve`: a request becomes a run on the one
:class:`~dgterm.engine.local.batch.Batcher` thread that owns the model (one sequence per
candidate), and the batcher's news becomes a completion or a stream of chunks.

The routes (dgterm.server.app) check the HTTP side; here the checked
:class:`~dgterm.server.protocol.Request` meets the model: its prompt ids, its sampler
settings, its sequences.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import uuid

import torch
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response

from dgterm.engine.events import Window, candidate_seed
from dgterm.engine.local.batch import Batcher, Sequence
from dgterm.engine.output.tokens import decode, split_thinking, token_text
from dgterm.engine.params import SamplerParams
from dgterm.engine.tasks.template import render_chat
from dgterm.errors import InputError, SettingError
from dgterm.server.metrics import Metrics
from dgterm.server.protocol import ApiError, Limits, Request, parse


class Serving:
    """The model behind the routes: one batcher; requests checked against the model and run on it."""

    def __init__(self, lm, limits: Limits, max_batch: int, metrics: Metrics, names: list[str],
                 thinking: bool | None = None):
        self.lm, self.limits, self.metrics = lm, limits, metrics
        self.thinking = thinking  # the chat template's enable_thinking when a request does not say
        self.names = names  # the served model names; responses carry the first
        self.batcher = Batcher(lm, max_batch, on_step=metrics.batch.observe)
        metrics.watch(self.batcher)
        self.texts = token_text(lm.tokenizer)

    def close(self) -> None:
        self.batcher.close()

    async def generate(self, http: HttpRequest, body, chat: bool) -> Response:
        """A completion (or a chat completion) of a decoded JSON body: the whole answer, or a stream."""
        lm = self.lm
        req = parse(body, chat=chat, model_names=self.names, canvas_length=lm.canvas_length, vocab=lm.vocab_size,
                    limits=self.limits)
        ids = self.prompt_ids(req)
        if len(ids) + req.max_tokens > lm.max_positions or len(ids) > self.limits.max_prompt:
            raise ApiError(400, f"The prompt ({len(ids)} tokens) and max_tokens ({req.max_tokens}) do not fit the "
                                f"model's context of {lm.max_positions}.", "max_tokens")
        if self.batcher.depth + req.n > self.limits.max_queue:
            raise ApiError(503, "The server is busy; retry in a moment.", kind="server_busy")
        run = RunState(self, req, ids, self.sampler_params(req), asyncio.get_running_loop())
        self.batcher.submit(run.sequences)
        if req.stream:
            return EventSourceResponse(run.stream(http), ping=15)
        return await run.complete(http)

    def chat_ids(self, messages, generation_prompt: bool = True, thinking: bool | None = None) -> list[int]:
        """The ids of a conversation through the model's chat template (the one renderer); ``thinking``:
        its ``enable_thinking`` (None: the server's setting)."""
        tok = self.lm.tokenizer
        if not self.lm.has_chat_template:
            raise ApiError(400, f"{self.lm.name} has no chat template; use /v1/completions.")
        if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                     and m.get("role") in ("system", "user", "assistant")
                                                     for m in messages):
            raise ApiError(400, "messages must be a list of {role, content} objects with text content.", "messages")
        try:
            text = render_chat(tok, messages, generation_prompt, self.thinking if thinking is None else thinking)
        except InputError as e:  # the template's own refusal (roles out of order), said as the HTTP surface says it
            raise ApiError(400, f"The chat template refused these messages ({e.__context__ or e}).",
                           "messages") from None
        return tok(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, req: Request) -> list[int]:
        tok = self.lm.tokenizer
        if req.messages is not None:
            return self.chat_ids(req.messages, thinking=req.thinking)
        if req.prompt is not None:
            return req.prompt
        return [tok.bos_token_id] + tok(req.text, add_special_tokens=False)["input_ids"]

    def sampler_params(self, req: Request) -> SamplerParams:
        steps = req.sampler.get("steps", req.max_steps)
        seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
        try:
            return self.lm.defaults.replace(**{**req.sampler, "steps": steps}, seed=seed, max_new_tokens=req.max_tokens)
        except SettingError as e:
            raise ApiError(400, f"Bad sampler setting: {e}.", "dgterm.sampler") from None


class RunState:
    """One request's sequences and what they have produced so far."""

    def __init__(self, serving: Serving, req: Request, ids: list[int], params: SamplerParams, loop):
        self.serving, self.req, self.ids, self.params = serving, req, ids, params
        self.lm = serving.lm
        self.queue: asyncio.Queue = asyncio.Queue()
        self.id = ("chatcmpl-" if req.chat else "cmpl-") + uuid.uuid4().hex[:24]
        C = self.lm.canvas_length
        canvases = -(-req.max_tokens // (req.width or C))
        first = Window(ids, allowed=req.allowed)  # allowed: positions held to given ids (a healed edge)
        if req.seed_canvas is not None:  # as wide as the request's canvas; the batcher holds the rest at pad
            seed = torch.tensor(req.seed_canvas + [self.lm.pad_id] * (C - len(req.seed_canvas)))
            pinned = torch.zeros(C, dtype=torch.bool)
            pinned[req.pinned or []] = True
            own_draw = req.rng_state is not None  # the free positions take this server's own draw, as in-process
            first = Window(ids, seed if req.pinned else None, pinned if req.pinned else None,
                           start=None if own_draw else seed, allowed=req.allowed)
        windows = [first] + [Window([]) for _ in range(canvases - 1)]
        vocab_mask = None
        if req.constrained:
            vocab_mask = torch.zeros(self.lm.vocab_size, dtype=torch.bool, device=self.lm.device)
            vocab_mask[req.logprob_ids] = True
        rng = None if req.rng_state is None else rng_state(req.rng_state, self.lm.device)
        self.rng: list[str | None] = [None] * req.n  # the generator states the rows end with, when asked
        first_seed = params.seed or 0  # always set: Serving.sampler_params draws one when the request has none
        self.sequences: list[Sequence] = []
        for b in range(req.n):
            def sink(kind, payload, b=b):
                loop.call_soon_threadsafe(self.queue.put_nowait, (b, kind, payload))
            self.sequences.append(Sequence(windows, params.replace(seed=candidate_seed(first_seed, b)), sink,
                                           stop_at_eos=not req.ignore_eos, frames=req.frames and req.stream,
                                           logprobs=req.logprobs, logprob_ids=req.logprob_ids, width=req.width,
                                           allowed=vocab_mask, rng=rng))
        self.tokens: list[list[int]] = [[] for _ in range(req.n)]  # committed ids, cut at EOS and max_tokens
        # per committed token: (chosen logprob, {id: logprob})
        self.top: list[list[tuple[float, dict[int, float]]]] = [[] for _ in range(req.n)]
        self.sent = ["" for _ in range(req.n)]
        self.finish: list[str | None] = [None] * req.n
        self.stats: list[dict | None] = [None] * req.n
        self.thinking: list[str | None] = [None] * req.n
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
        self.serving.metrics.tokens.inc(keep)

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
            except TimeoutError:
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
                "created": int(time.time()), "model": self.serving.names[0], "choices": choices, "usage": self._usage(),
                "dgterm": {"stats": self.stats, "seed": self.params.seed, "rng_state": self.rng}}
        return JSONResponse(body)

    def _usage(self) -> dict:
        completion = sum(len(t) for t in self.tokens)
        return {"prompt_tokens": len(self.ids), "completion_tokens": completion,
                "total_tokens": len(self.ids) + completion}

    def _logprobs(self, b: int, start: int):
        if self.req.logprobs is None:
            return None
        texts, as_ids = self.serving.texts, self.req.token_ids
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
                "created": int(time.time()), "model": self.serving.names[0], "choices": [choice]}
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
        texts = self.serving.texts
        return {**payload, "texts": {str(i): texts(i) for i in fresh},
                "bytes": {str(i): texts.raw(i).hex() for i in fresh}}


def rng_state(value, device):
    """The generator state a request goes on from (``True``: none, start from the seed): checked
    here by loading it into a generator of this device, so a bad one is a 400, not a failed row."""
    if value is True:
        return True
    try:
        state = torch.frombuffer(bytearray(base64.b64decode(value, validate=True)), dtype=torch.uint8)
        torch.Generator(device=device).set_state(state)
    except (ValueError, RuntimeError, TypeError):
        raise ApiError(400, "dgterm.rng_state is not a generator state this server returned.",
                       "dgterm.rng_state") from None
    return state
