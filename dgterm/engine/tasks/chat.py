"""Chat with a running conversation, rendered by the checkpoint's chat template.

Also :func:`rewrite`: one span rewritten to an instruction, as a chat turn.

``continue_text(chat=True)`` sends a single user turn; a REPL needs the whole
conversation. The engine does not keep the encoder's KV cache between runs, so every
turn re-encodes the rendered conversation (the prefix is short next to the canvases).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dgterm.engine.params import DEFAULT_INSERT_TOKENS, SamplerParams
from dgterm.engine.tasks.continuation import continue_ids, continue_text
from dgterm.engine.tasks.infill import check_spans
from dgterm.engine.tasks.task import Candidate, Check, SpanRequest, Task, around
from dgterm.engine.tasks.template import render_chat
from dgterm.errors import InputError

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine


def chat(lm: Engine, messages: list[dict], params: SamplerParams | None = None, *, candidates: int = 1,
         cancel: threading.Event | None = None, thinking: bool | None = None) -> Task:
    """Answer the last user turn of ``messages`` ({"role", "content"} dicts); ``thinking``: the
    template's ``enable_thinking`` (None: its default).

    The oldest turns are dropped when the conversation and the answer's canvases would
    not fit the model's context."""
    if not lm.has_chat_template:
        raise InputError(f"{lm.name} has no chat template, so it cannot chat; switch to /mode plain.")
    if not messages or messages[-1].get("role") != "user":
        raise InputError("A conversation must end with a user turn; add your message.")
    params = params or lm.defaults
    tok = lm.tokenizer
    budget = lm.max_positions - params.max_canvases(lm.canvas_length) * lm.canvas_length
    ids = prompt_ids(tok, messages, budget, thinking)
    return continue_ids(lm, ids, params, candidates=candidates, cancel=cancel, chat=True)


def prompt_ids(tokenizer: Any, messages: list[dict], budget: int, thinking: bool | None = None) -> list[int]:
    """Token ids of the rendered conversation, dropping the oldest turns to fit ``budget``."""
    keep = list(messages)
    system = [keep.pop(0)] if keep[0].get("role") == "system" else []
    while True:
        text = render_chat(tokenizer, system + keep, thinking=thinking)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= budget:
            return ids
        if len(keep) == 1:
            raise InputError(f"The message is {len(ids)} tokens, more than the {budget} the model's context leaves; "
                             "shorten it or lower the number of canvases.")
        keep.pop(0)


class NoInstructions(InputError):
    """The model has no chat template, so it cannot be given an instruction."""


def rewrite(lm: Engine, text: str, span: SpanRequest, instruction: str, params: SamplerParams | None = None, *,
            candidates: int = 1, cancel: threading.Event | None = None, context_chars: int = 2000,
            check: Check | None = None, thinking: bool = False) -> Task:
    """Ask a chat checkpoint to rewrite one span following an instruction (``check`` as for
    infill). The answer gets one canvas of room for about twice the span's tokens (and
    DEFAULT_INSERT_TOKENS more), its positions after that pinned to the end, so a model that
    does not stop on its own cannot fill a short selection with a canvas of text. A model
    without a chat template raises :class:`NoInstructions`. Thinking is off unless asked: a
    thought would take the canvas the rewrite needs."""
    if not lm.has_chat_template:
        raise NoInstructions(f"{lm.name} has no chat template, so it cannot follow instructions; "
                             "mark the span and infill it instead.")
    check_spans(text, [span], lm.canvas_length)
    tokens = len(lm.tokenizer(text[span.start : span.end], add_special_tokens=False)["input_ids"])
    answer = min(lm.canvas_length - 1, 2 * tokens + DEFAULT_INSERT_TOKENS)
    before = text[max(0, span.start - context_chars) : span.start]
    after = text[span.end : span.end + context_chars]
    prompt = (
        f"{instruction.strip()}\n\nRewrite the part between [[ and ]] and reply with the new text only.\n\n"
        f"{before}[[{text[span.start:span.end]}]]{after}"
    )

    def post(cand: Candidate) -> Candidate:
        answer = cand.text.removeprefix("[[").removesuffix("]]")
        cand.spans = [answer]
        cand.text = text[: span.start] + answer + text[span.end :]
        return cand

    return continue_text(lm, prompt, params, candidates=candidates, cancel=cancel, chat=True, post=post,
                         check=around(check, text, [span]), thinking=thinking, answer=answer)
