"""Chat with a running conversation (dgterm.engine.tasks.chat) on the tiny model."""

from __future__ import annotations

import types

import pytest

from dgterm.engine.output import tokens
from dgterm.engine.tasks import chat
from dgterm.errors import InputError

CONVERSATION = [
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "Another one?"},
]


def test_chat_encodes_the_whole_conversation(tiny):
    task = chat.chat(tiny, CONVERSATION, tiny.defaults.replace(seed=3, steps=2, canvases=1))
    rendered = tiny.tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=False)
    assert task.plans[0].prompt == tiny.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    result = task.collect()
    assert len(result.candidates) == 1 and isinstance(result.best.text, str)
    assert result.run.steps and result.run.steps[0] <= 2


def test_thinking_channel_is_split_on_ids(tiny):
    """The markers are special tokens: a split after decoding would lose them."""
    tok = tiny.tokenizer
    ids = tok("<|channel>thought add them<channel|>It is 4.", add_special_tokens=False)["input_ids"]
    assert tokens.split_thinking(tok, ids + [tiny.pad_id]) == ("It is 4.", "add them")
    plain = tok("Just 4.", add_special_tokens=False)["input_ids"]
    assert tokens.split_thinking(tok, plain) == ("Just 4.", None)


def test_oldest_turns_are_dropped_to_fit(tiny):
    tok = tiny.tokenizer
    last_only = chat.prompt_ids(tok, CONVERSATION[-1:], 10_000)
    assert chat.prompt_ids(tok, CONVERSATION, len(last_only)) == last_only
    with pytest.raises(InputError, match="shorten it"):
        chat.prompt_ids(tok, CONVERSATION, len(last_only) - 1)


def test_refuses_models_without_a_template_and_a_missing_user_turn(tiny):
    no_template = types.SimpleNamespace(has_chat_template=False, name="plain-model")
    with pytest.raises(InputError, match="/mode plain"):
        chat.chat(no_template, CONVERSATION)
    with pytest.raises(InputError, match="user turn"):
        chat.chat(tiny, CONVERSATION[:2])


def test_a_rewrite_of_one_line_gets_room_for_about_that_line_only(bundled):
    """The bundled model rarely ends a rewrite on its own: the canvas after the answer's room is
    pinned to EOS and pad, so a one-line selection is not filled with a canvas of text."""
    text = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"
    span = chat.SpanRequest(text.index("return"), text.index("\n\n"))
    n = len(bundled.tokenizer(text[span.start : span.end], add_special_tokens=False)["input_ids"])
    task = chat.rewrite(bundled, text, span, "Subtract instead.", bundled.defaults.replace(seed=0, steps=2))
    plan = task.plans[0]
    assert plan.answer == 2 * n + 16 < bundled.canvas_length and plan.canvases == 1
    result = task.collect()
    assert len(result.run.canvases) == 1
    tail = result.run.canvases[0][:, plan.answer:]
    assert ((tail == bundled.eos_ids[0]) | (tail == bundled.pad_id)).all()  # pad after an earlier EOS
    for cand in result.candidates:
        assert cand.text == text[: span.start] + cand.spans[0] + text[span.end :]
        assert len(bundled.tokenizer(cand.spans[0], add_special_tokens=False)["input_ids"]) <= plan.answer + 1


def test_a_rewrite_on_a_model_without_a_chat_template_says_why_not(tiny):
    import copy
    import dataclasses

    plain = dataclasses.replace(tiny, tokenizer=copy.copy(tiny.tokenizer))
    plain.tokenizer.chat_template = None
    with pytest.raises(chat.NoInstructions, match="has no chat template, so it cannot follow instructions; "
                                                  "mark the span and infill it instead."):
        chat.rewrite(plain, "x = 1\n", chat.SpanRequest(0, 1), "Rename it.")
