"""Thinking under control: ``--thinking on|off`` reaches the chat template's ``enable_thinking``
where it has one; rewrites send it off unless asked; chat leaves the template's default."""

from __future__ import annotations

import copy

import pytest

from dgterm.config import load_settings
from dgterm.engine.tasks import chat, continuation, render_chat
from dgterm.engine.tasks.task import SpanRequest
from dgterm.engine.tasks.template import has_thinking_switch, thinking_of
from dgterm.errors import DgtermError

THINK = "<|think|>"


@pytest.fixture
def thinks_by_default(gemma):
    """The fixture's tokenizer with a template whose default is to think (as a user reported)."""
    tok = copy.copy(gemma.tokenizer)
    tok.chat_template = tok.chat_template.replace("enable_thinking | default(false)", "enable_thinking | default(true)")
    assert tok.chat_template != gemma.tokenizer.chat_template
    return tok


def test_the_setting_reaches_enable_thinking_where_the_template_has_it(gemma, thinks_by_default):
    turn = [{"role": "user", "content": "Hi"}]
    assert has_thinking_switch(gemma.tokenizer)
    assert THINK in render_chat(gemma.tokenizer, turn, thinking=True)
    assert THINK not in render_chat(thinks_by_default, turn, thinking=False)
    assert THINK in render_chat(thinks_by_default, turn)  # unset: the template's own default


def test_a_template_without_the_switch_is_rendered_as_before(gemma):
    tok = copy.copy(gemma.tokenizer)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert not has_thinking_switch(tok)
    assert render_chat(tok, [{"role": "user", "content": "Hi"}], thinking=True) == "Hi"


def test_rewrites_are_off_and_chat_follows_the_setting(gemma, thinks_by_default, monkeypatch):
    seen = []

    def recording(tok, messages, generation_prompt=True, thinking=None):
        seen.append(thinking)
        return render_chat(tok, messages, generation_prompt, thinking)

    monkeypatch.setattr(continuation, "render_chat", recording)
    monkeypatch.setattr(chat, "render_chat", recording)
    monkeypatch.setattr(gemma, "tokenizer", thinks_by_default)
    chat.rewrite(gemma, "one two three", SpanRequest(4, 7), "make it formal")
    chat.rewrite(gemma, "one two three", SpanRequest(4, 7), "make it formal", thinking=True)
    chat.chat(gemma, [{"role": "user", "content": "Why?"}], thinking=thinking_of("", None))
    chat.chat(gemma, [{"role": "user", "content": "Why?"}], thinking=thinking_of("off", None))
    assert seen == [False, True, None, False]


def test_thinking_is_a_setting_with_one_sentence_for_a_bad_value(monkeypatch):
    monkeypatch.setenv("DGTERM_THINKING", "on")
    assert load_settings().thinking == "on"
    monkeypatch.setenv("DGTERM_THINKING", "maybe")
    with pytest.raises(DgtermError, match="thinking = 'maybe' .* is not one of 'on', 'off'"):
        load_settings()


def test_dgterm_serve_takes_thinking_from_its_flag_and_each_request(served_gemma, gemma):
    """``dgterm serve --thinking on`` renders chats with ``enable_thinking``; a request's
    ``chat_template_kwargs.enable_thinking`` (vLLM's field) overrides it; any other key is a 400."""
    import httpx

    think = gemma.tokenizer.convert_tokens_to_ids(THINK)
    url = served_gemma.url
    turn = {"messages": [{"role": "user", "content": "Hi"}]}

    def tokens(**extra):
        return httpx.post(url + "/tokenize", json={**turn, **extra}).json()["tokens"]

    assert think in tokens()
    assert think not in tokens(chat_template_kwargs={"enable_thinking": False})
    bad = httpx.post(url + "/v1/chat/completions", json={**turn, "chat_template_kwargs": {"tools": []}, "max_tokens": 4})
    assert bad.status_code == 400 and "chat_template_kwargs.tools" in bad.json()["error"]["message"]
    off = httpx.post(url + "/v1/chat/completions", timeout=120,
                     json={**turn, "chat_template_kwargs": {"enable_thinking": False}, "max_tokens": 4,
                           "dgterm": {"sampler": {"steps": 2}}})
    assert off.status_code == 200, off.text
