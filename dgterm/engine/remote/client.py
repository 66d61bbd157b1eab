"""The remote engine: DiffusionGemma served by vLLM or by `dgterm serve`, over one OpenAI-compatible client.

Everything the front ends run is windows (see :mod:`dgterm.engine.local.denoise`); here each
window becomes a request. A continuation is one streamed completion (the server runs
its canvases until EOS). A pinned window (infill, a length search) is one canvas: the
prompt holds every token before it, ``diffusion_seed_canvas`` holds the known tokens
with fresh noise at the free positions, ``diffusion_pinned`` lists the known positions.
Candidates are concurrent requests. The events of every candidate are merged back into
the in-process shape, a StepEvent per step of all candidates, so the editor and the
REPL cannot tell the difference, except that vLLM shows one frame per canvas.

What is documented in vLLM and what this client assumes is listed in docs/serve.md and
in tests/helpers/vllm_standin.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from dgterm.engine.params import OPT_IN_FIELDS, REMOTE_TOP_K, SAMPLER_FIELDS, SamplerParams
from dgterm.errors import RemoteError

PROBE_ID = 2**31 - 1  # an id past any vocabulary: the range error names the vocabulary size
GEMMA_EOS, GEMMA_PAD = [1, 106, 50], 0  # DiffusionGemma's generation config (docs/architecture.md)


class Http:
    """A small JSON client over httpx with the key and one sentence per failure."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 600.0):
        import httpx

        self.base = url.rstrip("/").removesuffix("/v1")
        self.host = urlsplit(self.base).netloc or self.base
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base, headers=headers,
                                   timeout=httpx.Timeout(timeout, connect=10.0),
                                   # idle connections dropped before a server drops them (uvicorn: after 5 s),
                                   # so a request never goes out on one the server is closing
                                   limits=httpx.Limits(max_connections=64, max_keepalive_connections=16,
                                                       keepalive_expiry=2.0))
        self.httpx = httpx

    def _fail(self, e) -> RemoteError:
        return RemoteError(f"Cannot reach {self.base} ({type(e).__name__}); check the address and that the "
                           "server runs.")

    def _check(self, r):
        if r.status_code in (401, 403):
            raise RemoteError(f"{self.host} refused the API key; set DGTERM_API_KEY (or api_key in the config) "
                              "to the server's key.")
        if r.status_code >= 400:
            raise RemoteError(f"{self.host} answered {r.status_code}: {message_of(r)}")
        try:
            return r.json()
        except ValueError:
            raise RemoteError(f"{self.base} does not answer like an OpenAI-compatible server; give the base URL "
                              "of vLLM or dgterm serve.") from None

    def get(self, path: str):
        try:
            return self._check(self.client.get(path))
        except self.httpx.HTTPError as e:
            raise self._fail(e) from None

    def post(self, path: str, body: dict, check: bool = True):
        try:
            r = self.client.post(path, json=body)
        except self.httpx.HTTPError as e:
            raise self._fail(e) from None
        return self._check(r) if check else r

    def stream(self, body: dict, responses: list):
        """Yield the JSON chunks of a streamed completion; the open response is kept in
        ``responses`` so that another thread can close it (cancellation)."""
        try:
            with self.client.stream("POST", "/v1/completions", json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    self._check(r)
                responses.append(r)
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise RemoteError(f"{self.host} failed the run: {chunk['error'].get('message')}")
                    yield chunk
        except self.httpx.HTTPError as e:
            if any(getattr(x, "is_closed", False) for x in responses):
                return  # closed by a cancel
            raise self._fail(e) from None


def message_of(r) -> str:
    try:
        body = r.json()
        return str(body.get("error", {}).get("message") or body.get("message") or body)
    except ValueError:
        return r.text[:200]


class Rendered(str):
    """A chat prompt rendered by the server: it reads as text and carries its token ids."""

    ids: list[int]


class Unlisted(list):
    """The ids a healed position may take when the server lists no vocabulary (vLLM): every
    token that starts with ``prefix``; the run finds them among the position's top logprobs."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix


class RemoteTokenizer:
    """The server's tokenizer over /tokenize and /detokenize, with what the front ends
    call on a transformers tokenizer. Single-token texts are cached (and learned from
    the frames `dgterm serve` sends)."""

    def __init__(self, http: Http, model: str, bos: int | None, special: set[int], vocab_size: int,
                 server_heals: bool = True):
        self.http, self.model, self.vocab_size, self.server_heals = http, model, vocab_size, server_heals
        self.bos_token_id, self.unk_token_id = bos, None
        self.all_special_ids = sorted(special)
        self.texts: dict[int, str] = {}
        self.bytes: dict[int, bytes] = {}  # what `dgterm serve` says each token stands for
        self.lock = threading.Lock()
        self._ids: dict[str, int | None] = {}

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False):
        if isinstance(text, Rendered):
            return {"input_ids": list(text.ids)}
        ids = self.http.post("/tokenize", {"model": self.model, "prompt": text,
                                           "add_special_tokens": add_special_tokens})["tokens"]
        out = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = self._offsets(text, ids)
        return out

    def apply_chat_template(self, messages, add_generation_prompt: bool = True, tokenize: bool = False):
        ids = self.http.post("/tokenize", {"model": self.model, "messages": messages,
                                           "add_generation_prompt": add_generation_prompt})["tokens"]
        if tokenize:
            return ids
        rendered = Rendered(self.decode(ids, skip_special_tokens=False))
        rendered.ids = ids
        return rendered

    def heal_edge(self, piece: str) -> tuple[list[int], str, list[int]]:
        """:func:`dgterm.engine.tasks.healing.heal_edge` on `dgterm serve` (its /tokenize heals
        with the model's vocabulary, which this client does not hold); on vLLM the shared
        :func:`~dgterm.engine.tasks.healing.heal` over /tokenize, the ids :class:`Unlisted`."""
        from dgterm.engine.remote.wire import bitmap_to_ids

        if not self.server_heals:
            from dgterm.engine.tasks.healing import heal

            before, prefix = heal(self, piece)
            return (before, prefix, Unlisted(prefix)) if prefix else (self(piece)["input_ids"], "", [])
        out = self.http.post("/tokenize", {"model": self.model, "prompt": piece, "add_special_tokens": False,
                                           "dgterm": {"heal": True}})
        healed = out.get("dgterm") or {}
        if not healed.get("allowed"):
            return out["tokens"], "", []
        return healed["tokens"], healed["healed"], bitmap_to_ids(healed["allowed"], self.vocab_size, "allowed")

    def learn(self, texts: dict, data: dict | None = None) -> None:
        """Single tokens' texts, and their bytes (hex) where the server sends them."""
        with self.lock:
            self.texts.update({int(k): v for k, v in texts.items()})
            self.bytes.update({int(k): bytes.fromhex(v) for k, v in (data or {}).items()})

    def token_bytes(self, token: int) -> bytes:
        """The bytes ``token`` stands for (a byte token: part of a character), as
        :class:`~dgterm.engine.output.tokens.TokenText` reads them. `dgterm serve` says; vLLM
        only detokenizes, and a token whose text is U+FFFD alone is taken for part of a
        character whose bytes are not known: none, rather than a U+FFFD in the document."""
        token = int(token)
        if token in self.all_special_ids:
            return b""
        if token not in self.bytes and self.server_heals:
            out = self.http.post("/detokenize", {"model": self.model, "tokens": [token], "dgterm": {"bytes": True}})
            self.learn({token: out["prompt"]}, {token: out["dgterm"]["bytes"][0]})
        if token in self.bytes:
            return self.bytes[token]
        text = self.decode([token])
        return b"" if text == "\ufffd" else text.encode("utf-8", "surrogatepass")

    def learn_ids(self, ids) -> None:
        """Fetch the text of every id not known yet, a few requests at a time."""
        missing = sorted({int(i) for i in ids} - set(self.texts) - set(self.all_special_ids))
        if not missing:
            return
        with ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(
                lambda i: self.http.post("/detokenize", {"model": self.model, "tokens": [i]})["prompt"], missing))
        self.learn(dict(zip(missing, texts)))

    def decode(self, ids, skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.all_special_ids]
        if len(ids) == 1 and ids[0] in self.texts:
            return self.texts[ids[0]]
        if not ids:
            return ""
        text = self.http.post("/detokenize", {"model": self.model, "tokens": ids})["prompt"]
        if len(ids) == 1:
            self.learn({ids[0]: text})
        return text

    def convert_tokens_to_ids(self, tokens):
        out = []
        for t in tokens:
            if t not in self._ids:
                body = {"model": self.model, "prompt": t, "add_special_tokens": False}
                ids = self.http.post("/tokenize", body)["tokens"]
                self._ids[t] = ids[0] if len(ids) == 1 else None
            out.append(self._ids[t])
        return out

    def _offsets(self, text: str, ids: list[int]) -> list[tuple[int, int]]:
        """Character offsets of each token, by finding its text in order (approximate where
        a token's text is not a plain substring, e.g. a part of a character)."""
        self.learn_ids(ids)
        out, pos = [], 0
        for i in ids:
            piece = self.texts.get(i, "")
            at = text.find(piece, pos) if piece else -1
            if at < 0 and piece.strip():
                at = text.find(piece.strip(), pos)
                piece = piece.strip()
            if at < 0:
                out.append((pos, pos))
                continue
            out.append((at, at + len(piece)))
            pos = at + len(piece)
        return out


class RemoteEngine:
    """The engine at a URL (see :class:`dgterm.engine.backend.Engine`)."""

    quant = "remote"
    load_seconds = 0.0

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600.0, frames: bool = True,
                 vllm_only: bool = False):
        """``frames=False`` asks `dgterm serve` for no per-step frames: one frame per canvas, as from vLLM.
        ``vllm_only`` speaks only what vLLM documents, to `dgterm serve` too (so the vLLM client's
        tests run on both)."""
        t0 = time.perf_counter()
        self.http = http = Http(url, api_key, timeout)
        models = http.get("/v1/models")
        data = models.get("data") if isinstance(models, dict) else None
        if not data or not isinstance(data, list) or "id" not in data[0]:
            raise RemoteError(f"{http.base} lists no model at /v1/models; give the base URL of vLLM or dgterm serve.")
        entry = data[0]
        self.name = entry["id"]
        self.max_positions = int(entry.get("max_model_len") or 32768)
        meta = None if vllm_only else entry.get("dgterm")
        if meta:
            self.kind, self.live_steps, self.speaks_dgterm = "dgterm serve", frames, True
            self.canvas_length, self.vocab_size = meta["canvas_length"], meta["vocab_size"]
            self.eos_ids, self.pad_id = list(meta["eos_token_ids"]), meta["pad_token_id"]
            self.has_chat_template = meta["chat_template"]
            self.defaults = SamplerParams(**meta["defaults"])
            bos, special = meta["bos_token_id"], set(meta["special_ids"])
        else:
            self.kind, self.live_steps, self.speaks_dgterm = "vLLM", False, False
            self.vocab_size, self.canvas_length = self._probe()
            self.eos_ids, self.pad_id = list(GEMMA_EOS), GEMMA_PAD
            self.defaults = SamplerParams()
            with_bos = http.post("/tokenize", {"model": self.name, "prompt": "", "add_special_tokens": True})["tokens"]
            bos = with_bos[0] if with_bos else None
            special = {self.pad_id, *self.eos_ids} | ({bos} if bos is not None else set())
            chat = http.post("/tokenize", {"model": self.name, "messages": [{"role": "user", "content": "hi"}]},
                             check=False)
            self.has_chat_template = chat.status_code == 200
        self.tokenizer = RemoteTokenizer(http, self.name, bos, special, self.vocab_size,
                                         server_heals=self.speaks_dgterm)
        # `dgterm serve` holds a healed position to its ids; vLLM's first token is chosen by a read (docs/serve.md)
        self.can_restrict = True
        self.lacks = None if self.speaks_dgterm else (
            "candidates are not reproducible (vLLM takes no seed for diffusion) and a healed span's first token "
            "is the likeliest of its top 20 logprobs, not drawn by the sampler")
        self.device = f"{self.kind} at {http.host}"
        self.dtype = "remote"
        self.load_seconds = time.perf_counter() - t0

    def _probe(self) -> tuple[int, int]:
        """vLLM names its vocabulary and canvas in the errors of a seed canvas it refuses."""
        http = self.http
        body = {"model": self.name, "prompt": [0], "max_tokens": 1,
                "vllm_xargs": {"diffusion_seed_canvas": [PROBE_ID]}}
        missing = RemoteError(
            f"The server at {http.host} runs {self.name} but does not take DiffusionGemma's diffusion fields "
            "(diffusion_seed_canvas): serve a DiffusionGemma checkpoint with a vLLM that has them, with "
            "--diffusion-config (docs/serve.md).")
        r = http.post("/v1/completions", body, check=False)
        found = re.search(r"in \[0, (\d+)\)", message_of(r)) if r.status_code == 400 else None
        if not found:
            raise missing
        vocab = int(found.group(1))
        body["vllm_xargs"]["diffusion_seed_canvas"] = [0]
        r = http.post("/v1/completions", body, check=False)
        found = re.search(r"exactly (\d+) ids", message_of(r)) if r.status_code == 400 else None
        if not found:
            raise missing
        return vocab, int(found.group(1))

    def describe(self) -> str:
        shows = "live steps" if self.live_steps else "one frame per canvas"
        return f"{self.name} · {self.kind} at {self.http.host}: {shows}"

    def parameters(self) -> int:
        return 0

    def summary(self) -> str:
        return self.describe()

    def score_run(self, windows, run, *, skip_pad: bool, seed: int) -> list[float]:
        """`dgterm serve` scores the run with its model (``POST /dgterm/score``, the local
        ``score_run``); vLLM through read-only requests with ``logprob_token_ids``
        (:mod:`dgterm.engine.remote.scores`)."""
        run.context = None
        if not run.canvases:
            return [0.0] * run.forwards.shape[0]
        if not self.speaks_dgterm:
            from dgterm.engine.remote.scores import pseudo_loglik

            return pseudo_loglik(self, list(windows), run.canvases, skip_pad=skip_pad, seed=seed)
        from dgterm.engine.remote.wire import score_body

        body = score_body(self.name, list(windows), run, skip_pad=skip_pad, seed=seed, vocab=self.vocab_size)
        return [float(s) for s in self.http.post("/dgterm/score", body)["scores"]]

    def check_run_fits(self, rows: int, tokens: int, sampler: str) -> None:
        """The server bounds its own memory."""

    def close(self) -> None:
        self.http.client.close()

    # ------------------------------------------------------------ runs

    def denoise(self, windows, params: SamplerParams, *, candidates: int = 1, cancel=None, stop_at_eos: bool = True):
        from dgterm.engine.events import Run
        from dgterm.engine.remote.run import run_remote

        if params.sc_top_k and not self.speaks_dgterm:
            raise RemoteError(REMOTE_TOP_K)

        return Run(run_remote(self, list(windows), params, candidates, cancel, stop_at_eos))

    def request(self, prompt: list[int], max_tokens: int, params: SamplerParams, seed: int, *, frames: bool,
                ignore_eos: bool, xargs: dict | None = None, logprobs: int = 1, rng_state=None,
                allowed: dict[int, list[int]] | None = None) -> dict:
        """The body of one completion request, in the fields the server takes. ``rng_state``
        (`dgterm serve`): True, or the state the last window ended with, to go on from;
        ``allowed`` (`dgterm serve`): canvas positions held to given ids (a healed edge)."""
        body = {"model": self.name, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                "logprobs": logprobs, "return_tokens_as_token_ids": True, "ignore_eos": ignore_eos,
                "vllm_xargs": {"diffusion_max_steps": params.steps, **(xargs or {})}}
        if self.speaks_dgterm:  # vLLM refuses a seed and has its sampler in its own config
            body["seed"] = seed
            sampler = {k: getattr(params, k) for k in SAMPLER_FIELDS}
            sampler |= {k: getattr(params, k) for k in OPT_IN_FIELDS if getattr(params, k)}
            body["dgterm"] = {"frames": frames, "sampler": sampler}
            if rng_state is not None:
                body["dgterm"]["rng_state"] = rng_state
            if allowed:
                from dgterm.engine.remote.wire import allowed_to_json

                body["dgterm"]["allowed"] = allowed_to_json(allowed, self.vocab_size)
        return body

    # ------------------------------------------------------------ lens

    def confidence(self, text: str, start: int = 0, end: int | None = None, *, stride: int = 8, batch: int = 8,
                   max_context: int = 512, seed: int = 0, cancel=None):
        """The confidence lens through read-only requests: one step on a canvas whose
        group of positions holds noise, logprobs at every position."""
        from dgterm.engine.remote.run import lens

        return lens(self, text, start, end, stride, batch, max_context, seed, cancel)
