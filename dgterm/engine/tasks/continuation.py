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
    # an answer of at most this many tokens: one canvas, its positions after them pinned to EOS then pad
    answer: int | None = None
    ends: tuple[int, int] = (1, 0)  # (EOS, pad) ids, for ``answer``

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
        if self.answer is not None and self.answer < self.canvas_length:
            eos, pad = self.ends
            tail = [eos] + [pad] * (self.canvas_length - self.answer - 1)
            known = torch.tensor([pad] * self.answer + tail)
            yield Window(self.prompt, known, torch.arange(self.canvas_length) >= self.answer)
            return
        yield Window(self.prompt)
        for _ in range(self.canvases - 1):
            yield Window([])


def continue_text(lm: Engine, text: str, params: SamplerParams | None = None, *, candidates: int = 1,
                  cancel: threading.Event | None = None, chat: bool = False,
                  post: Callable[[Candidate], Candidate] | None = None, check: SpanCheck | None = None,
                  thinking: bool | None = None, answer: int | None = None) -> Task:
    """Generate canvases after ``text`` (or, with ``chat``, answer it as a user turn, ``thinking``
    as the template's ``enable_thinking``). ``post`` may reshape each finished Candidate (rewrite
    uses it); ``answer``: at most this many tokens, in one canvas (a rewrite's size)."""
    tok = lm.tokenizer
    if chat:
        prompt = render_chat(tok, [{"role": "user", "content": text}], thinking=thinking)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    return continue_ids(lm, ids, params, candidates=candidates, cancel=cancel, chat=chat, post=post, check=check,
                        answer=answer)


def continue_ids(lm: Engine, ids: list[int], params: SamplerParams | None = None, *, candidates: int = 1,
                 cancel: threading.Event | None = None, chat: bool = False,
                 post: Callable[[Candidate], Candidate] | None = None, check: SpanCheck | None = None,
                 answer: int | None = None) -> Task:
    """Generate canvases after the prompt ``ids``; with ``chat`` the answer is split from
    a thinking channel; ``answer`` as for :func:`continue_text`."""
    tok = lm.tokenizer
    params = params or lm.defaults

    def finish(plan: ContinuePlan, canvases: list[torch.Tensor]) -> Candidate:
        # canvases come whole; the tokens past --max-new-tokens are dropped so it holds exactly
        generated = [int(i) for c in canvases for i in c.tolist()][:params.max_new_tokens]
        answer, thinking = split_thinking(tok, generated) if chat else (decode(tok, generated), None)
        cand = Candidate(text=answer, spans=[answer], score=0.0, lengths=[], seed=0, thinking=thinking)
        return post(cand) if post else cand

    canvases = params.max_canvases(lm.canvas_length, len(ids))
    plan = ContinuePlan(ids, lm.canvas_length, min(canvases, 1) if answer is not None else canvases, answer,
                        (lm.eos_ids[0] if lm.eos_ids else lm.pad_id, lm.pad_id))
    return Task(lm, [plan], params, candidates, cancel, True, finish, check)


