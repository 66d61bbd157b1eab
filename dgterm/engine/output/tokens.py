"""How token ids read as text in drafts: single ids cached, special tokens empty, and a
character split across byte-level (or byte-fallback) tokens shown whole on the token that
ends it. Torch-free; every decoder of drafts goes through here (random canvases decode
to partial UTF-8, and nothing here raises on it). Also: a Gemma 4 answer split from its
thought, on ids."""

from __future__ import annotations

import bisect
import codecs
from abc import ABC, abstractmethod


class _Rows(ABC):
    @abstractmethod
    def raw(self, token: int) -> bytes:
        """The bytes a token stands for (a byte-level token may hold part of a character)."""

    def row(self, ids) -> list[str]:
        """The text of each of a run of ids, a character split across tokens shown whole on
        the token that ends it (and nothing on the ones before), so CJK text and emoji read
        right token by token instead of as U+FFFD."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return [decoder.decode(self.raw(int(i))) for i in ids]


class TokenText(_Rows):
    """Decoded text of single ids, cached; special tokens read as empty."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        self.cache: dict[int, str] = {}
        self.raw_cache: dict[int, bytes] = {}
        self._by_bytes: list[tuple[bytes, int]] | None = None
        self._starting: dict[bytes, list[int]] = {}
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"

    def __call__(self, token: int) -> str:
        text = self.cache.get(token)
        if text is None:
            text = "" if token in self.special else self.tokenizer.decode([token])
            self.cache[token] = text
        return text

    def raw(self, token: int) -> bytes:
        """The bytes a token stands for: a byte-level token may hold part of a character."""
        data = self.raw_cache.get(token)
        if data is None:
            if token in self.special:
                data = b""
            elif hasattr(self.tokenizer, "token_bytes"):  # a server's tokenizer says them (engine.remote)
                data = self.tokenizer.token_bytes(token)
            else:
                data = self._piece_bytes(token)
            self.raw_cache[token] = data
        return data

    def _piece_bytes(self, token: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if self.byte_level and all(c in BYTE_LEVEL for c in piece):
            return bytes(BYTE_LEVEL[c] for c in piece)
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):  # SentencePiece byte fallback
            return bytes([int(piece[3:5], 16)])
        if "\u2581" in piece:  # SentencePiece's word marker stands for a space
            return piece.replace("\u2581", " ").encode("utf-8", "surrogatepass")
        return self(token).encode("utf-8", "surrogatepass")

    def starting_with(self, prefix: bytes) -> list[int]:
        """Every (non-special) token whose bytes start with ``prefix`` (token healing)."""
        found = self._starting.get(prefix)
        if found is None:
            if self._by_bytes is None:
                vocab = len(self.tokenizer)
                self._by_bytes = sorted((self.raw(i), i) for i in range(vocab) if i not in self.special)
            found = []
            for data, i in self._by_bytes[bisect.bisect_left(self._by_bytes, (prefix, -1)):]:
                if not data.startswith(prefix):
                    break
                found.append(i)
            self._starting[prefix] = found
        return found

    def recorded(self, ids) -> dict:
        """What a trace keeps of ``ids`` to show them again without the tokenizer: each id's
        text and its bytes (hex), for :class:`RecordedText`."""
        ids = sorted(ids)
        return {"tokens": {str(i): self(i) for i in ids}, "bytes": {str(i): self.raw(i).hex() for i in ids}}


class RecordedText(_Rows):
    """Token texts as a trace recorded them (``TokenText.recorded``), read like a TokenText:
    with the bytes, a character split across tokens replays whole as it was shown live
    (traces written before the bytes were kept show U+FFFD there)."""

    def __init__(self, record: dict) -> None:
        self.texts, self.bytes = record.get("tokens", {}), record.get("bytes", {})

    def __call__(self, token: int) -> str:
        return self.texts.get(str(token), "\ufffd")

    def raw(self, token: int) -> bytes:
        data = self.bytes.get(str(token))
        return bytes.fromhex(data) if data is not None else self(token).encode("utf-8", "surrogatepass")


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, char -> byte: printable bytes stand for themselves, the
    others for the characters from U+0100 on, in byte order."""
    keep = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    table, shifted = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


BYTE_LEVEL = _byte_level_alphabet()


def token_text(tokenizer) -> TokenText:
    cached = getattr(tokenizer, "_dgterm_token_text", None)
    if cached is None:
        cached = TokenText(tokenizer)
        tokenizer._dgterm_token_text = cached
    return cached


def decode(tokenizer, ids) -> str:
    """Decode draft ids: special tokens dropped, never raises, and whole characters only: the
    bytes of a character split over byte tokens and cut off (at a span's end, say) or broken
    are dropped, so no U+FFFD reaches a document that the model did not spell out itself."""
    ids = [int(i) for i in ids]
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    if "\ufffd" not in text:
        return text
    raw = token_text(tokenizer).raw
    return b"".join(raw(i) for i in ids).decode("utf-8", "ignore")


THINK_OPEN, THINK_CLOSE = "<|channel>", "<channel|>"


def split_thinking(tokenizer, ids: list[int]) -> tuple[str, str | None]:
    """(answer, thinking) of generated ids, for a Gemma 4 ``<|channel>thought ... <channel|>``.

    The channel markers are special tokens, so the split happens on ids: decoding with
    special tokens skipped would erase the markers first."""
    open_id, close_id = tokenizer.convert_tokens_to_ids([THINK_OPEN, THINK_CLOSE])
    if open_id in (None, tokenizer.unk_token_id) or open_id not in ids:
        return decode(tokenizer, ids).strip(), None
    start = ids.index(open_id)
    end = ids.index(close_id, start) if close_id in ids[start:] else len(ids)
    thought = decode(tokenizer, ids[start + 1 : end]).strip().removeprefix("thought").strip()
    return decode(tokenizer, ids[:start] + ids[end + 1 :]).strip(), thought
