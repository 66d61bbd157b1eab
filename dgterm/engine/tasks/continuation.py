"""Continue a text: canvases after a prompt until EOS or the token budget, as ``generate`` does."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dgterm.engine.events import Window
from dgterm.engine.output.frames import Layout
from dgterm.engine.output.tokens import decode, split_thinking
from dgterm.engine.params import SamplerParams
from dgterm.engine.tasks.task import Candidate, SpanCheck, Task
from dgterm.engine.tasks.template import render_chat
from dgterm.errors import InputError

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine


@dataclass
class ContinuePlan:
    prompt: list[int]
    canvas_length: int
    canvases: int  # at most this many (the run also stops when every candidate hit EOS)

    @property
    def context_tokens(self) -> int:
        return len(self.prompt)

    def check_fits(self, lm: Engine) -> None:
        most = lm.max_positions
        if len(self.prompt) + lm.canvas_length > most:
            raise InputError(f"The prompt is too long ({len(self.prompt)} tokens, the model takes "
                             f"{most - lm.canvas_length} besides its {lm.canvas_length}-token canvas); shorten it.")

    def layout(self, plans: Sequence[ContinuePlan], candidates: int) -> Layout:
        return Layout("stream", self.canvas_length, candidates)

    def windows(self) -> Iterator[Window]:
        if self.canvases < 1:  # max_length already reached by the prompt, as in generate
            return
        yield Window(self.prompt)
        for _ in range(self.canvases - 1):
            yield Window([])


def continue_text(lm: Engine, text: str, params: SamplerParams | None = None, *, candidates: int = 1,
                  cancel: threading.Event | None = None, chat: bool = False,
                  post: Callable[[Candidate], Candidate] | None = None, check: SpanCheck | None = None) -> Task:
    """Generate canvases after ``text`` (or, with ``chat``, answer it as a user turn).
    ``post`` may reshape each finished Candidate (rewrite uses it)."""
    tok = lm.tokenizer
    if chat:
        prompt = render_chat(tok, [{"role": "user", "content": text}])
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    return continue_ids(lm, ids, params, candidates=candidates, cancel=cancel, chat=chat, post=post, check=check)


def continue_ids(lm: Engine, ids: list[int], params: SamplerParams | None = None, *, candidates: int = 1,
                 cancel: threading.Event | None = None, chat: bool = False,
                 post: Callable[[Candidate], Candidate] | None = None, check: SpanCheck | None = None) -> Task:
    """Generate canvases after the prompt ``ids``; with ``chat`` the answer is split from
    a thinking channel."""
    tok = lm.tokenizer
    params = params or lm.defaults

    def finish(plan: ContinuePlan, canvases: list[torch.Tensor]) -> Candidate:
        # canvases come whole; the tokens past --max-new-tokens are dropped so it holds exactly
        generated = [int(i) for c in canvases for i in c.tolist()][:params.max_new_tokens]
        answer, thinking = split_thinking(tok, generated) if chat else (decode(tok, generated), None)
        cand = Candidate(text=answer, spans=[answer], score=0.0, lengths=[], seed=0, thinking=thinking)
        return post(cand) if post else cand

    plan = ContinuePlan(ids, lm.canvas_length, params.max_canvases(lm.canvas_length, len(ids)))
    return Task(lm, [plan], params, candidates, cancel, True, finish, check)


