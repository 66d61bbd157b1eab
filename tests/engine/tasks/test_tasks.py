"""Tasks: infill maps back to exact character ranges; continue; rewrite; drafts."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dgterm.engine import tasks
from dgterm.engine.output import tokens
from dgterm.engine.tasks import SpanRequest, chat, healing
from dgterm.errors import InputError

ODD = "def f(x):\r\n\treturn x  # émoji 😀 עברית e\u0301\n" * 3


def test_infill_leaves_text_outside_spans_byte_for_byte(tiny):
    spans = [SpanRequest(4, 5), SpanRequest(30, 36, 3), SpanRequest(60, 60, 2)]
    result = tasks.infill(tiny, ODD, spans, tiny.defaults.replace(seed=0), candidates=2).collect()
    assert len(result.candidates) == 2
    for cand in result.candidates:
        rebuilt, cursor = [], 0
        for span, new in zip(spans, cand.spans):
            rebuilt += [ODD[cursor : span.start], new]
            cursor = span.end
        rebuilt.append(ODD[cursor:])
        assert cand.text == "".join(rebuilt)
        assert cand.lengths[1:] == [3, 2]
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)  # log-likelihoods, likeliest first


@st.composite
def text_and_spans(draw):
    alphabet = st.sampled_from(list("ab c\t\r\n_é😀ע\u0301(){}#") + ["def ", "return", "\r\n"])
    text = "".join(draw(st.lists(alphabet, min_size=1, max_size=60)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=6)))
    spans = []
    for a, b in zip(cuts[::2], cuts[1::2]):
        if spans and a < spans[-1].end:
            continue
        spans.append(SpanRequest(a, b, draw(st.one_of(st.none(), st.integers(0, 4)))))
    return text, spans or [SpanRequest(0, 0, 1)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=text_and_spans(), seed=st.integers(0, 1000))
@example(case=("aaa 😀a \r\na😀a", [SpanRequest(0, 12)]), seed=0)  # more tokens than the canvas holds
def test_property_infill_changes_only_the_spans(tiny, case, seed):
    text, spans = case
    params = tiny.defaults.replace(seed=seed, steps=2)
    tokens = [len(tiny.tokenizer(text[s.start : s.end], add_special_tokens=False)["input_ids"]) for s in spans]
    if any(s.length is None and n > tiny.canvas_length for s, n in zip(spans, tokens)):
        with pytest.raises(InputError, match="does not fit the model's 16-token canvas; mark a shorter span"):
            tasks.infill(tiny, text, spans, params).collect()
        return
    cand = tasks.infill(tiny, text, spans, params).collect().best
    cursor, rebuilt = 0, []
    for span, new in zip(spans, cand.spans):
        rebuilt += [text[cursor : span.start], new]
        cursor = span.end
    rebuilt.append(text[cursor:])
    assert cand.text == "".join(rebuilt)


def test_token_by_token_text_shows_characters_split_across_tokens(tiny):
    text = "日本語 👍🏽 ok"
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    texts = tokens.token_text(tiny.tokenizer).row(ids)
    assert len(ids) > len(text.split()) and len(texts) == len(ids)
    assert "".join(texts) == text and "\ufffd" not in "".join(texts)
    assert "日" in texts  # one token shows the whole character


def test_noisy_drafts_decode_without_raising(tiny):
    """Random canvases hold partial UTF-8 byte tokens: decoding must tolerate them."""
    byte_tokens = [i for i in range(tiny.vocab_size) if "\ufffd" in tiny.tokenizer.decode([i])]
    assert byte_tokens, "a byte-level tokenizer has tokens that are partial UTF-8 on their own"
    assert tokens.decode(tiny.tokenizer, byte_tokens[:3]) == ""  # broken characters: dropped, never U+FFFD
    task = tasks.infill(tiny, ODD, [SpanRequest(10, 20)], tiny.defaults.replace(seed=2))
    for event in task:
        for span in task.drafts(event):
            assert all(t.state in ("noise", "tentative", "accepted") for t in span)


def test_length_search_ranks_candidates_of_different_lengths(tiny):
    result = tasks.infill(tiny, ODD, [SpanRequest(4, 5)], tiny.defaults.replace(seed=3), lengths=[1, 2, 4]).collect()
    assert sorted(c.lengths[0] for c in result.candidates) == [1, 2, 4]
    assert [c.score for c in result.candidates] == sorted((c.score for c in result.candidates), reverse=True)


@pytest.mark.parametrize(
    "spans, message",
    [
        ([], "No span"),
        ([SpanRequest(5, 500)], "outside the text"),
        ([SpanRequest(0, 10), SpanRequest(5, 12)], "overlap"),
        ([SpanRequest(0, 1, 999)], "canvas"),
    ],
)
def test_bad_spans_are_refused_with_one_sentence(tiny, spans, message):
    with pytest.raises(InputError, match=message):
        tasks.infill(tiny, ODD, spans)


def test_span_longer_than_a_canvas_is_refused(tiny):
    long = "word " * 200
    with pytest.raises(InputError, match="does not fit"):
        tasks.infill(tiny, long, [SpanRequest(0, len(long))])


def test_far_apart_spans_use_several_windows(tiny):
    text = "x = 1\n" * 60
    spans = [SpanRequest(0, 1), SpanRequest(300, 301)]
    task = tasks.infill(tiny, text, spans, tiny.defaults.replace(seed=0))
    result = task.collect()
    assert result.run.windows == 2
    first, second = result.best.spans
    assert result.best.text == first + text[1:300] + second + text[301:]


def test_continue_and_cancel(tiny):
    cancel = threading.Event()
    task = tasks.continue_text(tiny, "hello", tiny.defaults.replace(seed=0, max_new_tokens=32), cancel=cancel)
    for i, event in enumerate(task):
        draft = task.drafts(event)[0]
        assert len(draft) >= tiny.canvas_length
        if i == 1:
            cancel.set()
    assert task.result.run.cancelled and task.result.candidates == []


def test_rewrite_replaces_only_the_span(bundled):
    text = "def add(a, b):\n    return a + b\n"
    span = SpanRequest(4, 7)
    result = chat.rewrite(bundled, text, span, "Rename the function.", bundled.defaults.replace(seed=0)).collect()
    cand = result.best
    assert cand.text == text[:4] + cand.spans[0] + text[7:]


def test_bundled_infill_of_a_python_keyword_is_plausible(bundled):
    """Single-token infill in a trained model: mask `return` in a tiny function."""
    text = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    start = text.rindex("return")
    result = tasks.infill(bundled, text, [SpanRequest(start, start + 6)], bundled.defaults.replace(seed=0),
                          candidates=4).collect()
    assert any(c.spans[0].strip() for c in result.candidates)


@pytest.mark.parametrize("piece, healed", [
    ("def f(x):\n    ", " "),  # "\n    " alone is one token; before a word it is "\n   " + " word"
    ("total = ", " "),
    (" ", " "),
    ("foo(", ""),  # punctuation is its own token already
    ("x\n", ""),
    ("", ""),
])
def test_healing_backs_a_span_edge_off_to_where_a_word_would_start(tiny, piece, healed):
    ids, got = healing.heal(tiny.tokenizer, piece)
    assert got == healed
    assert tiny.tokenizer.decode(ids) + got == piece


def test_a_healed_edge_keeps_the_text_and_its_first_token_starts_with_the_healed_prefix(tiny):
    text = "def f(x):\n    return x\n"
    start = text.index("return")
    plan = tasks.plan_infill(tiny, text, [SpanRequest(start, start + 6)])
    assert plan.healed == [" "] and list(plan.allowed) == [plan.slots[0][0]]
    raw = tokens.token_text(tiny.tokenizer).raw
    assert all(raw(i).startswith(b" ") for i in plan.allowed[plan.slots[0][0]])
    for seed in range(3):
        task = tasks.infill(tiny, text, [SpanRequest(start, start + 6)], tiny.defaults.replace(seed=seed), candidates=2)
        result = task.collect()
        first = [int(c[row][plan.locate(plan.slots[0][0])[1]]) for row in range(2) for c in result.run.canvases]
        assert all(raw(i).startswith(b" ") for i in first)
        for cand in result.candidates:
            assert cand.text == text[:start] + cand.spans[0] + text[start + 6 :]
    plain = tasks.plan_infill(tiny, text, [SpanRequest(start, start + 6)], heal_edges=False)
    assert plain.healed == [""] and not plain.allowed


def test_candidates_are_checked_in_their_document_and_valid_ones_rank_first(tiny):
    from dgterm.editor import structure

    text = "x = (1 + 2)\n"
    checked = []

    def check(new_text):
        checked.append(new_text)
        return structure.check("python", new_text)

    result = tasks.infill(tiny, text, [SpanRequest(5, 10)], tiny.defaults.replace(seed=1), candidates=4,
                          check=check).collect()
    assert sorted(checked) == sorted(c.text for c in result.candidates)
    valid = [c.valid for c in result.candidates]
    assert valid == sorted(valid, reverse=True)
    for c in result.candidates:
        assert c.valid == structure.check("python", c.text).valid and bool(c.reason) != c.valid
    assert tasks.rank(list(reversed(result.candidates))) == result.candidates
