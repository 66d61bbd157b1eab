"""The shapes client and server exchange for healing and scoring (dgterm.engine.remote.wire)."""

from __future__ import annotations

import pytest
import torch

from dgterm.engine.events import Window
from dgterm.engine.remote.wire import WireError, allowed_from_json, allowed_to_json, window_from_json, window_to_json


def test_allowed_ids_go_as_a_bitmap_and_come_back_the_same():
    allowed = {0: [3, 7, 8, 262143], 5: list(range(0, 262144, 2))}
    data = allowed_to_json(allowed, 262144)
    assert max(len(v) for v in data.values()) < 44_000  # half a 262k vocabulary in a bitmap, not 1 MB of numbers
    assert allowed_from_json(data, 262144, 16, "x") == allowed


@pytest.mark.parametrize("data, words", [
    ({"0": "!!"}, "base64 bitmap of 2 bytes"),  # not base64
    ({"0": "AAAA"}, "base64 bitmap of 2 bytes"),  # three bytes for a 16-id vocabulary
    ({"0": 5}, "base64 bitmap of 2 bytes"),
    ({"0": "AAA="}, "allows no token id"),
    ({"16": "AQA="}, "inside the canvas"),
    ({"-1": "AQA="}, "inside the canvas"),
    ([1], "object of at most 16"),
])
def test_a_bad_allowed_is_one_sentence(data, words):
    with pytest.raises(WireError, match=words):
        allowed_from_json(data, 16, 16, "x")


def test_windows_round_trip_plain_pinned_and_stacked():
    known = torch.arange(8)
    pinned = torch.tensor([True, False] * 4)
    for window in (Window([1, 2]), Window([1], known, pinned, allowed={1: [4, 5]}),
                   Window([], torch.stack([known, known + 1]), torch.stack([pinned, ~pinned]))):
        back = window_from_json(window_to_json(window, 16), 16, 8, rows=2)
        assert back.prefix == window.prefix and back.allowed == window.allowed
        for a, b in ((back.known, window.known), (back.pinned, window.pinned)):
            assert (a is None and b is None) or torch.equal(a, b)
