"""The run state of `dgterm serve` (dgterm.server.serving) without HTTP: the one chat-template
renderer behind the server's 400s, and the sampler settings of a request."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dgterm.engine.params import SamplerParams
from dgterm.server.protocol import ApiError, Limits, parse
from dgterm.server.serving import Serving


class RefusingTokenizer:
    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        raise ValueError("Conversation roles must alternate user/assistant")


def serving(tokenizer=None) -> Serving:
    """A Serving without its batcher thread: what the routes ask of it before a run."""
    lm = SimpleNamespace(name="m", has_chat_template=True, tokenizer=tokenizer or RefusingTokenizer(),
                         defaults=SamplerParams())
    return SimpleNamespace(lm=lm, limits=Limits(), thinking=None)


def test_a_template_that_refuses_is_a_400_naming_why():
    with pytest.raises(ApiError) as err:
        Serving.chat_ids(serving(), [{"role": "assistant", "content": "x"}])
    assert (err.value.status, err.value.param) == (400, "messages")
    assert err.value.message == ("The chat template refused these messages (Conversation roles must alternate "
                                 "user/assistant).")


def test_the_generation_prompt_reaches_the_template():
    seen = []

    def tokenizer(text, add_special_tokens):
        return {"input_ids": [len(text)]}

    tokenizer.apply_chat_template = lambda messages, add_generation_prompt, tokenize: (
        seen.append(add_generation_prompt) or "rendered")
    for wanted in (True, False):
        assert Serving.chat_ids(serving(tokenizer), [{"role": "user", "content": "hi"}], wanted) == [8]
    assert seen == [True, False]


def test_a_bad_sampler_setting_is_a_400():
    req = parse({"prompt": [1], "seed": 3, "dgterm": {"sampler": {"t_min": 2.0}}}, chat=False, model_names=["m"],
                canvas_length=16, vocab=100, limits=Limits())
    with pytest.raises(ApiError, match="^Bad sampler setting: temperatures need") as err:
        Serving.sampler_params(serving(), req)
    assert (err.value.status, err.value.param) == (400, "dgterm.sampler")
    req.sampler = {"steps": 5}
    assert Serving.sampler_params(serving(), req) == SamplerParams(steps=5, seed=3, max_new_tokens=16)
