"""Chat with a running conversation, rendered by the checkpoint's chat template.

Also :func:`rewrite`: one span rewritten to an instruction, as a chat turn.

``continue_text(chat=True)`` sends a single user turn; a REPL needs the whole
conversation. The engine does not keep the encoder's KV cache between runs, so every
turn re-encodes the rendered conversation (the prefix is short next to the canvases).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dgterm.engine.params import SamplerParams
from dgterm.engine.tasks.continuation import continue_ids, continue_text
from dgterm.engine.tasks.infill import check_spans
from dgterm.engine.tasks.task import Candidate, Check, SpanRequest, Task, around
from dgterm.engine.tasks.template import render_chat
from dgterm.errors import InputError

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine


def chat(lm: Engine, messages: list[dict], params: SamplerParams | None = None, *, candidates: int = 1,
         cancel: threading.Event | None = None) -> Task:
    """Answer the last user turn of ``messages`` ({"role", "content"} dicts).

    The oldest turns are dropped when the conversation and the answer's canvases would
    not fit the model's context."""
    if not lm.has_chat_template:
        raise InputError(f"{lm.name} has no chat template, so it cannot chat; switch to /mode plain.")
    if not messages or messages[-1].get("role") != "user":
        raise InputError("A conversation must end with a user turn; add your message.")
    params = params or lm.defaults
    tok = lm.tokenizer
    budget = lm.max_positions - params.max_canvases(lm.canvas_length) * lm.canvas_length
    ids = prompt_ids(tok, messages, budget)
    return continue_ids(lm, ids, params, candidates=candidates, cancel=cancel, chat=True)


def prompt_ids(tokenizer: Any, messages: list[dict], budget: int) -> list[int]:
    """Token ids of the rendered conversation, dropping the oldest turns to fit ``budget``."""
    keep = list(messages)
    system = [keep.pop(0)] if keep[0].get("role") == "system" else []
    while True:
        text = render_chat(tokenizer, system + keep)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= budget:
            return ids
        if len(keep) == 1:
            raise InputError(f"The message is {len(ids)} tokens, more than the {budget} the model's context leaves; "
                             "shorten it or lower the number of canvases.")
        keep.pop(0)


def rewrite(lm: Engine, text: str, span: SpanRequest, instruction: str, params: SamplerParams | None = None, *,
            candidates: int = 1, cancel: threading.Event | None = None, context_chars: int = 2000,
            check: Check | None = None) -> Task:
    """Ask a chat checkpoint to rewrite one span following an instruction (``check`` as for infill)."""
    if not lm.has_chat_template:
        raise InputError(f"{lm.name} has no chat template, so it cannot follow instructions; use infill instead.")
    check_spans(text, [span], lm.canvas_length)
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
                         check=around(check, text, [span]))
