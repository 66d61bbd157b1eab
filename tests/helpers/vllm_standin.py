"""A stand-in for vLLM serving DiffusionGemma, built from vLLM's documented request and response shapes.

Documented by vLLM (source read for this stand-in):
- `/v1/models` lists ``{"id", "object": "model", "owned_by": "vllm", "max_model_len"}``;
  `/tokenize` takes ``prompt`` (+ ``add_special_tokens``, default true) or ``messages``
  (+ ``add_generation_prompt``) and answers ``{"count", "max_model_len", "tokens"}``;
  `/detokenize` takes ``tokens`` and answers ``{"prompt"}``.
- ``vllm_xargs`` is checked as ``vllm/utils/diffusion.py`` checks it, with its messages:
  ``diffusion_canvas_length`` a positive integer no larger than the served canvas, the seed
  canvas a list of ids in [0, vocab) of exactly the canvas length, pins inside the canvas
  and only with a seed canvas, ``diffusion_max_steps`` a positive integer,
  ``diffusion_read_only`` a boolean that caps ``max_tokens`` at the canvas and ignores EOS.
- ``seed`` and a temperature other than the default are refused for diffusion models
  ("not yet supported with diffusion", vLLM's tests).
- ``return_tokens_as_token_ids`` writes the tokens of ``logprobs`` as ``token_id:N``.
- With ``--api-key`` every /v1 request without ``Authorization: Bearer KEY`` is a 401.

Assumed (stated in the issue, not found in vLLM's text):
- streaming sends one chunk per committed canvas, no per-step drafts;
- the output of a pinned request is the whole canvas, pinned positions included;
- a read-only request's ``top_logprobs`` are the temperature-1 distribution at each position.

- ``logprob_token_ids`` (a top-level request field, vLLM's OpenAI endpoints) puts the
  logprobs of those ids at every position into ``top_logprobs``, beside the chosen token's;
  ``diffusion_constrained`` (``vllm_xargs``) runs the unembedding and sampler over those ids
  only, so their logprobs are normalised over them and the argmax is one of them.

The "model" is a fixture, not a network: free positions get the tokens of a fixed
phrase (``phrase``), pinned ones keep their seed value, the second canvas of a continuation ends at EOS.
Given ``model`` (a loaded dgterm model whose canvas and vocabulary the stand-in then
serves), read-only requests run it for real: one decoder step on the prompt and the seed
canvas, the logprobs of that step (what scores through vLLM read).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

EOS = 1


class StandIn:
    def __init__(self, tokenizer, canvas: int = 32, vocab: int = 4096, diffusion: bool = True, api_key: str | None = None,
                 name: str = "google/diffusiongemma-26B-A4B-it", model=None, phrase: str = " ok then"):
        if model is not None:
            canvas, vocab = model.canvas_length, model.vocab_size
        self.tok, self.canvas, self.vocab, self.diffusion, self.api_key, self.name = (
            tokenizer, canvas, vocab, diffusion, api_key, name)
        self.model, self.lock = model, threading.Lock()
        self.requests: list[dict] = []
        self.fill = tokenizer(phrase, add_special_tokens=False)["input_ids"]
        self.app = Starlette(routes=[Route("/v1/models", self.models), Route("/tokenize", self.tokenize, methods=["POST"]),
                                     Route("/detokenize", self.detokenize, methods=["POST"]),
                                     Route("/v1/completions", self.completions, methods=["POST"])])

    # ------------------------------------------------------------ helpers

    def _denied(self, request: Request):
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        return None

    @staticmethod
    def _bad(message: str):
        return JSONResponse({"object": "error", "message": message, "type": "BadRequestError", "param": "extra_args",
                             "code": 400}, status_code=400)

    def _check(self, body: dict) -> str | None:
        """vllm/utils/diffusion.py's checks, in its order and words."""
        if body.get("seed") is not None or body.get("temperature") not in (None, 1, 1.0):
            return "seed is not yet supported with diffusion models."
        extra = body.get("vllm_xargs") or {}
        width = extra.get("diffusion_canvas_length")
        if width is not None and not (isinstance(width, int) and not isinstance(width, bool) and 0 < width <= self.canvas):
            return "diffusion_canvas_length must be a positive integer no larger than the served canvas."
        expected = width or self.canvas
        seed = extra.get("diffusion_seed_canvas")
        if seed is not None:
            if not isinstance(seed, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seed):
                return "diffusion_seed_canvas must be a list of token ids."
            if not all(0 <= t < self.vocab for t in seed):
                return f"diffusion_seed_canvas ids must be in [0, {self.vocab})."
            if len(seed) != expected:
                return f"diffusion_seed_canvas must hold exactly {expected} ids, got {len(seed)}."
        pins = extra.get("diffusion_pinned")
        if pins is not None:
            if not isinstance(pins, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pins):
                return "diffusion_pinned must be a list of canvas positions."
            if seed is None:
                return "diffusion_pinned needs a diffusion_seed_canvas to hold."
            if not all(0 <= p < expected for p in pins):
                return "diffusion_pinned positions must lie inside the canvas."
        cap = extra.get("diffusion_max_steps")
        if cap is not None and not (isinstance(cap, int) and not isinstance(cap, bool) and cap > 0):
            return "diffusion_max_steps must be a positive integer."
        ids = body.get("logprob_token_ids")
        if ids is not None and not (isinstance(ids, list) and ids and all(
                isinstance(t, int) and not isinstance(t, bool) and 0 <= t < self.vocab for t in ids)):
            return f"logprob_token_ids must be a non-empty list of token ids in [0, {self.vocab})."
        if extra.get("diffusion_constrained") and not ids:
            return "diffusion_constrained needs logprob_token_ids to restrict the vocabulary to."
        return None

    def _read(self, body: dict) -> tuple[list[int], list[dict[int, float]]]:
        """One real decoder step of ``model`` on the prompt and the seed canvas: the argmax at
        each position and the logprobs of ``logprob_token_ids`` (of the argmax alone without)."""
        import torch
        from transformers import DynamicCache

        from dgterm.engine.local.denoise import decoder_logits, decoder_mask
        from dgterm.engine.local.prefill import SharedPrefill

        extra, model = body["vllm_xargs"], self.model.model
        ids = body.get("logprob_token_ids")
        with self.lock, torch.no_grad():  # one forward at a time
            prefill = SharedPrefill(model, DynamicCache(config=model.config.get_text_config(decoder=True)), 1)
            prompt = body["prompt"]
            cur = prefill.append(torch.tensor([prompt]), 0) if prompt else 0
            canvas = torch.tensor([extra["diffusion_seed_canvas"]])
            mask = decoder_mask(model, canvas, prefill.cache, cur)
            positions = torch.arange(cur, cur + canvas.shape[1], dtype=torch.int32)[None]
            logits = decoder_logits(model, canvas, None, mask, prefill.cache, positions)[0].float()
        if extra.get("diffusion_constrained"):
            logp = torch.full_like(logits, -9999.0)
            logp[:, ids] = torch.log_softmax(logits[:, ids], dim=-1)
        else:
            logp = torch.log_softmax(logits, dim=-1)
        chosen = logp.argmax(-1).tolist()
        return chosen, [{i: float(logp[p, i]) for i in [chosen[p], *(ids or [])]} for p in range(len(chosen))]

    def _canvases(self, body: dict) -> list[list[int]]:
        extra = (body.get("vllm_xargs") or {}) if self.diffusion else {}
        C = self.canvas
        seed, pins = extra.get("diffusion_seed_canvas"), set(extra.get("diffusion_pinned") or [])
        read_only = bool(extra.get("diffusion_read_only"))
        max_tokens = body.get("max_tokens") or 16
        if read_only:
            max_tokens = min(max_tokens, C)
        out, made = [], 0
        while made < max_tokens:
            k = len(out)
            canvas = [seed[p] if seed is not None and p in pins else self.fill[(p + k) % len(self.fill)]
                      for p in range(C)]
            if k == 1 and not body.get("ignore_eos") and not read_only:
                canvas = canvas[:5] + [EOS]
            canvas = canvas[: max_tokens - made]
            out.append(canvas)
            made += len(canvas)
            if EOS in canvas and not body.get("ignore_eos"):
                break
        return out

    def _logprobs(self, body, ids, read=None):
        if body.get("logprobs") is None:
            return None
        name = (lambda i: f"token_id:{i}") if body.get("return_tokens_as_token_ids") else (lambda i: self.tok.decode([i]))
        if read is not None:
            return {"tokens": [name(i) for i in ids], "token_logprobs": [read[p][i] for p, i in enumerate(ids)],
                    "top_logprobs": [{name(i): v for i, v in entry.items()} for entry in read], "text_offset": []}
        k = max(1, body["logprobs"])
        return {"tokens": [name(i) for i in ids], "token_logprobs": [-0.1] * len(ids),
                "top_logprobs": [{name(i): -0.1, **{name((i + j) % self.vocab): -3.0 - j for j in range(1, k)}}
                                 for i in ids], "text_offset": []}

    # ------------------------------------------------------------ routes

    async def models(self, request):
        return self._denied(request) or JSONResponse({"object": "list", "data": [
            {"id": self.name, "object": "model", "created": 0, "owned_by": "vllm", "root": self.name,
             "max_model_len": 32768, "permission": []}]})

    async def tokenize(self, request):
        body = await request.json()
        if "messages" in body:
            text = self.tok.apply_chat_template(body["messages"], add_generation_prompt=body.get("add_generation_prompt", True),
                                                tokenize=False)
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tok(body["prompt"], add_special_tokens=False)["input_ids"]
            if body.get("add_special_tokens", True):
                ids = [self.tok.bos_token_id] + ids
        return JSONResponse({"count": len(ids), "max_model_len": 32768, "tokens": ids})

    async def detokenize(self, request):
        body = await request.json()
        return JSONResponse({"prompt": self.tok.decode(body["tokens"])})

    async def completions(self, request):
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        self.requests.append(body)
        problem = self._check(body) if self.diffusion else None
        if problem:
            return self._bad(problem)
        read = None
        extra = body.get("vllm_xargs") or {}
        if self.model is not None and extra.get("diffusion_read_only") and extra.get("diffusion_seed_canvas"):
            chosen, read = await run_in_threadpool(self._read, body)  # off the event loop: it keeps answering
            canvases = [chosen]
        else:
            canvases = self._canvases(body)
        finish = "stop" if any(EOS in c for c in canvases) and not body.get("ignore_eos") else "length"

        def choice(ids, last):
            return {"index": 0, "text": self.tok.decode(ids, skip_special_tokens=True),
                    "logprobs": self._logprobs(body, ids, read), "finish_reason": finish if last else None}

        if not body.get("stream"):
            ids = [i for c in canvases for i in c]
            return JSONResponse({"id": "cmpl-x", "object": "text_completion", "created": 0, "model": self.name,
                                 "choices": [choice(ids, True)]})

        async def chunks():
            for k, canvas in enumerate(canvases):
                time.sleep(0.01)
                data = {"id": "cmpl-x", "object": "text_completion", "created": 0, "model": self.name,
                        "choices": [choice(canvas, k == len(canvases) - 1)]}
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")


class Running:
    """The stand-in on a free loopback port, in a thread."""

    def __init__(self, standin: StandIn):
        self.standin = standin
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(standin.app, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
