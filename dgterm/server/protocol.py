"""Requests of the OpenAI-compatible surface, checked into :class:`Request` objects.

The fields and their meaning are vLLM's (``vllm_xargs``, see docs/serve.md); one
extension is dgterm's own: ``"dgterm": {"frames": true, "sampler": {...}, "allowed": {...}}``
asks for a frame per denoising step, sets the sampler and holds canvas positions to given
ids (a healed span edge). A bad request is an :class:`ApiError`
that becomes an OpenAI-style error body with a 4xx status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dgterm.engine.params import OPT_IN_FIELDS, SAMPLER_FIELDS
from dgterm.engine.remote.wire import WireError, allowed_from_json


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}


@dataclass(frozen=True)
class Limits:
    max_body: int = 1 << 20  # bytes
    max_tokens: int = 4096
    max_candidates: int = 8
    max_queue: int = 64
    max_prompt: int = 16384  # tokens
    max_logprobs: int = 20
    max_logprob_ids: int = 1024  # logprob_token_ids (each committed position lists them all)
    max_steps: int = 1024  # denoising steps per canvas (diffusion_max_steps, dgterm.sampler.steps)


# The fields each object takes; any other is a 400 naming it (not silently ignored: a client
# that sends "stop" or "logit_bias" would otherwise believe they were applied).
COMMON = {"model", "max_tokens", "n", "seed", "stream", "return_tokens_as_token_ids", "ignore_eos", "vllm_xargs",
          "logprob_token_ids", "dgterm", "temperature", "top_p", "user"}
FIELDS = {False: COMMON | {"prompt", "logprobs"},
          True: COMMON | {"messages", "max_completion_tokens", "logprobs", "top_logprobs", "chat_template_kwargs"}}
XARGS = {"diffusion_seed_canvas", "diffusion_pinned", "diffusion_max_steps", "diffusion_canvas_length",
         "diffusion_read_only", "diffusion_constrained"}
EXTENSION = {"frames", "sampler", "rng_state", "allowed"}


def _known(obj: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ApiError(400, f"Unknown field '{name}'; this server takes {', '.join(sorted(known))}"
                            f"{' in ' + where if where else ''}.", name)


@dataclass
class Request:
    prompt: list[int] | None  # token ids, or None when ``text`` must be tokenized
    text: str | None
    messages: list[dict] | None
    max_tokens: int
    n: int = 1
    seed: int | None = None
    stream: bool = False
    logprobs: int | None = None  # top logprobs per position, or None
    token_ids: bool = False  # return_tokens_as_token_ids
    ignore_eos: bool = False
    seed_canvas: list[int] | None = None
    width: int | None = None  # diffusion_canvas_length: a canvas narrower than the served one
    logprob_ids: list[int] | None = None  # logprob_token_ids: logprobs of these ids at every position
    constrained: bool = False  # diffusion_constrained: sample from logprob_ids only
    rng_state: bool | str | None = None  # dgterm.rng_state: True (send it back) or the state to go on from
    allowed: dict[int, list[int]] = field(default_factory=dict)  # dgterm.allowed: position -> its only ids (healing)
    pinned: list[int] | None = None
    max_steps: int | None = None
    read_only: bool = False
    frames: bool = False
    sampler: dict = field(default_factory=dict)
    chat: bool = False
    thinking: bool | None = None  # chat_template_kwargs.enable_thinking (None: the server's --thinking)


def enable_thinking(body: dict) -> bool | None:
    """``chat_template_kwargs`` as vLLM takes it, of which this server reads ``enable_thinking``."""
    kwargs = _object(body, "chat_template_kwargs")
    _known(kwargs, {"enable_thinking"}, "chat_template_kwargs")
    value = kwargs.get("enable_thinking")
    return None if value is None else _flag(value, "chat_template_kwargs.enable_thinking")


def _whole(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer.", name)
    if value < low or (high is not None and value > high):
        raise ApiError(400, f"{name} must be between {low} and {high}." if high is not None
                       else f"{name} must be at least {low}.", name)
    return value


def _object(body: dict, name: str) -> dict:
    """``body[name]``: an object, {} when absent or null."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be an object.", name)
    return value


def _flag(value, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise ApiError(400, f"{name} must be a boolean.", name)
    return bool(value)


def _ids(value, name: str, vocab: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise ApiError(400, f"{name} must be a list of token ids.", name)
    if not all(0 <= t < vocab for t in value):
        raise ApiError(400, f"{name} ids must be in [0, {vocab}).", name)
    return value


def parse(body, *, chat: bool, model_names: Sequence[str], canvas_length: int, vocab: int, limits: Limits) -> Request:
    """Check a decoded JSON body against the surface and the limits (``model``, when given,
    is one of ``model_names``, as vLLM's --served-model-name)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    _known(body, FIELDS[chat], "")
    model = body.get("model")
    if model is not None and model not in model_names:
        served = "', '".join(model_names)
        raise ApiError(404, f"The model '{model}' does not exist; this server serves '{served}'.", "model",
                       "model_not_found")
    prompt = text = messages = None
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise ApiError(400, "messages must be a non-empty list of {role, content} objects with text content.",
                           "messages")
    else:
        raw = body.get("prompt")
        if isinstance(raw, str):
            text = raw
        elif isinstance(raw, list) and raw and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
            prompt = _ids(raw, "prompt", vocab)
            if len(prompt) > limits.max_prompt:
                raise ApiError(400, f"The prompt holds {len(prompt)} tokens, more than the {limits.max_prompt} "
                                    "this server takes.", "prompt")
        else:
            raise ApiError(400, "prompt must be a string or a non-empty list of token ids.", "prompt")
    key = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    max_tokens = body.get(key)
    max_tokens = canvas_length if max_tokens is None else _whole(max_tokens, key, 1, limits.max_tokens)
    n = _whole(body.get("n", 1), "n", 1, limits.max_candidates)
    seed = body.get("seed")
    if seed is not None:
        seed = _whole(seed, "seed", 0, (1 << 63) - 1)  # candidate b runs candidate_seed(seed, b)
    stream = _flag(body.get("stream"), "stream")
    logprobs = body.get("logprobs")
    if chat:
        logprobs = (_whole(body.get("top_logprobs", 1) or 1, "top_logprobs", 0, limits.max_logprobs)
                    if _flag(logprobs, "logprobs") else None)
    elif logprobs is not None:
        logprobs = _whole(logprobs, "logprobs", 0, limits.max_logprobs)
    for name in ("temperature", "top_p"):  # taken as vLLM takes them for diffusion: the default only
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ApiError(400, f"{name} must be a number.", name)
        if value is not None and value != 1:
            raise ApiError(400, f"{name} other than 1 is not taken for diffusion; set the sampler's "
                                "temperatures in dgterm.sampler (t_max, t_min).", name)
    xargs = _object(body, "vllm_xargs")
    _known(xargs, XARGS, "vllm_xargs")
    width = xargs.get("diffusion_canvas_length")
    if width is not None:
        width = _whole(width, "diffusion_canvas_length", 1, canvas_length)
    size = width or canvas_length
    seed_canvas = xargs.get("diffusion_seed_canvas")
    if seed_canvas is not None:
        seed_canvas = _ids(seed_canvas, "diffusion_seed_canvas", vocab)
        if len(seed_canvas) != size:
            raise ApiError(400, f"diffusion_seed_canvas must hold exactly {size} ids, got {len(seed_canvas)}.",
                           "diffusion_seed_canvas")
    logprob_ids = body.get("logprob_token_ids")
    if logprob_ids is not None:
        logprob_ids = _ids(logprob_ids, "logprob_token_ids", vocab)
        if not logprob_ids or len(set(logprob_ids)) != len(logprob_ids) or len(logprob_ids) > limits.max_logprob_ids:
            raise ApiError(400, f"logprob_token_ids must be a non-empty list of at most {limits.max_logprob_ids} "
                                "distinct token ids.", "logprob_token_ids")
    pinned = xargs.get("diffusion_pinned")
    if pinned is not None:
        if not isinstance(pinned, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pinned):
            raise ApiError(400, "diffusion_pinned must be a list of canvas positions.", "diffusion_pinned")
        if seed_canvas is None:
            raise ApiError(400, "diffusion_pinned needs a diffusion_seed_canvas to hold.", "diffusion_pinned")
        if not all(0 <= p < size for p in pinned):
            raise ApiError(400, "diffusion_pinned positions must lie inside the canvas.", "diffusion_pinned")
    max_steps = xargs.get("diffusion_max_steps")
    if max_steps is not None:
        max_steps = _whole(max_steps, "diffusion_max_steps", 1, limits.max_steps)
    read_only = _flag(xargs.get("diffusion_read_only"), "diffusion_read_only")
    constrained = _flag(xargs.get("diffusion_constrained"), "diffusion_constrained")
    if constrained and logprob_ids is None:
        raise ApiError(400, "diffusion_constrained needs logprob_token_ids: the ids the canvas may take.",
                       "diffusion_constrained")
    if read_only:
        max_tokens = min(max_tokens, size)
    ext = _object(body, "dgterm")
    _known(ext, EXTENSION, "dgterm")
    sampler = ext.get("sampler", {})
    if not isinstance(sampler, dict) or set(sampler) - {*SAMPLER_FIELDS, *OPT_IN_FIELDS}:
        raise ApiError(400, f"dgterm.sampler takes {', '.join((*SAMPLER_FIELDS, *OPT_IN_FIELDS))} only.",
                       "dgterm.sampler")
    if "steps" in sampler:
        _whole(sampler["steps"], "dgterm.sampler.steps", 1, limits.max_steps)
    rng_state = ext.get("rng_state")
    if rng_state is not None and rng_state is not True and not (isinstance(rng_state, str)
                                                                 and len(rng_state) < 1 << 16):
        raise ApiError(400, "dgterm.rng_state must be true or the rng_state a response returned.", "dgterm.rng_state")
    try:
        allowed = allowed_from_json(ext.get("allowed", {}), vocab, size, "dgterm.allowed")
    except WireError as e:
        raise ApiError(400, str(e), "dgterm.allowed") from None
    if isinstance(rng_state, str) and n != 1:
        raise ApiError(400, "dgterm.rng_state goes on from one sequence's state; send n = 1.", "dgterm.rng_state")
    return Request(prompt=prompt, text=text, messages=messages, max_tokens=max_tokens, n=n, seed=seed, stream=stream,
                   logprobs=logprobs,
                   token_ids=_flag(body.get("return_tokens_as_token_ids"), "return_tokens_as_token_ids"),
                   ignore_eos=_flag(body.get("ignore_eos"), "ignore_eos") or read_only, seed_canvas=seed_canvas,
                   pinned=pinned, width=width, logprob_ids=logprob_ids, constrained=constrained, rng_state=rng_state,
                   allowed=allowed,
                   max_steps=max_steps, read_only=read_only, frames=_flag(ext.get("frames"), "dgterm.frames"),
                   sampler=sampler, chat=chat, thinking=enable_thinking(body))
