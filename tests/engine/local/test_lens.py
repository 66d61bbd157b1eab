"""The confidence lens: one score per token, never edits, deterministic, cancellable."""

from __future__ import annotations

import threading

import pytest

from dgterm.engine.local.lens import confidence
from dgterm.errors import InputError

TEXT = "def mean(values):\n    return sum(values) / len(values)\n\nprint(mean([1, 2, 3]))\n"


def test_scores_cover_the_region(tiny):
    start, end = TEXT.index("return"), TEXT.index("print")
    scores = confidence(tiny, TEXT, start, end)
    assert scores and scores[0].start == start and scores[-1].end <= end
    assert "".join(TEXT[t.start:t.end] for t in scores) == TEXT[start:end]
    assert all(0.0 <= t.prob <= 1.0 and t.top_prob >= t.prob - 1e-6 for t in scores)
    assert all(0.0 <= t.prob <= 1.0 for t in scores)


def test_region_longer_than_a_canvas_and_deterministic(tiny):
    text = TEXT * 4  # the tiny canvas holds 16 tokens: several chunks
    a = confidence(tiny, text)
    b = confidence(tiny, text)
    assert [t.prob for t in a] == [t.prob for t in b]
    assert len(a) > tiny.canvas_length


def test_cancel_and_bad_input(tiny):
    cancel = threading.Event()
    cancel.set()
    assert confidence(tiny, TEXT, cancel=cancel) == []
    assert confidence(tiny, TEXT, 5, 5) == []
    with pytest.raises(InputError):
        confidence(tiny, TEXT, 10, 5)
    with pytest.raises(InputError):
        confidence(tiny, TEXT, stride=0)


@pytest.mark.slow
def test_bundled_model_prefers_real_text(bundled):
    """Structure, not exact values: the real text is on the whole surer than scrambled text."""
    real = confidence(bundled, TEXT)
    scrambled_text = "".join(reversed(TEXT.split(" ")))
    scrambled = confidence(bundled, scrambled_text)
    mean = lambda xs: sum(t.prob for t in xs) / len(xs)  # noqa: E731
    assert real and scrambled and 0.0 <= mean(real) <= 1.0
