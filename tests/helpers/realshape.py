"""What the real-shaped fixture's tests share: a text in CRLF with characters split over byte
tokens, and whether output is clean."""

from __future__ import annotations

BAD = ("▁", "<0x", "<|turn>", "<turn|>", "<|channel>", "<channel|>", "<eos>", "<pad>")
TEXT = "第一行：東京の朝。\r\nEmoji 🙂👍🏽 here, and café.\r\nThe middle line goes here.\r\nLast 行 🎉\r\n"


def clean(text: str) -> bool:
    """Decoded text shows no SentencePiece spaces, byte-fallback pieces or chat markers."""
    return not any(b in text for b in BAD)
