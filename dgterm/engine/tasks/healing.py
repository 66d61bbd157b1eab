"""Token healing at a span's left edge.

A piece of text cut at a span edge does not tokenize as it would with words after it
(``"\n    "`` is one whitespace token, where ``"\n    return"`` is ``"\n   "`` +
``" return"``), so the model saw such a context almost never and answered with an extra
space. The piece is tokenized with a probe letter after it instead; the characters that
went into the probe's token (the *healed prefix*, typically that one space) leave the
pinned context, and the span's first position may only take tokens that start with them.
The draft then carries those characters first; they are taken off again
(:func:`unheal`), so the text outside the spans is the original's.
"""

from __future__ import annotations

from dgterm.engine.output.tokens import token_text


def unheal(text: str, healed: str) -> str:
    """``text`` less the healed prefix it starts with (a draft that somehow does not start
    with it is kept whole: the context already holds those characters)."""
    return text[len(healed):] if healed and text.startswith(healed) else text


HEAL_PROBE = "a"  # a letter: words, numbers and punctuation all take a space before them into their token


def heal(tokenizer, piece: str) -> tuple[list[int], str]:
    """(ids, healed prefix) of the text ``piece`` that comes just before a span: the tokens of
    ``piece`` as they are with a word after it, and the characters at its end that would
    belong to that word's first token ("" when none do, or the tokenizer's offsets or bytes
    do not line up)."""
    enc = tokenizer(piece + HEAL_PROBE, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    plain = tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
    if not ids or offsets[-1][1] != len(piece) + len(HEAL_PROBE):
        return plain, ""
    start = offsets[-1][0]
    if start >= len(piece):
        return plain, ""
    raw = token_text(tokenizer).raw
    healed = piece[start:]
    if (b"".join(raw(i) for i in ids[:-1]) != piece[:start].encode("utf-8", "surrogatepass")
            or raw(ids[-1]) != (healed + HEAL_PROBE).encode("utf-8", "surrogatepass")):
        return plain, ""
    return ids[:-1], healed


def heal_edge(tokenizer, piece: str, healing: bool) -> tuple[list[int], str, list[int]]:
    """(ids of ``piece``, healed prefix, the ids the span's first position may take) for the
    text ``piece`` just before a span; without ``healing``, or when no token starts with the
    prefix, the plain tokens and no prefix."""
    if piece and healing and hasattr(tokenizer, "heal_edge"):  # a server's tokenizer: the server heals, as here
        return tokenizer.heal_edge(piece)
    plain = tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
    if not (piece and healing):
        return plain, "", []
    before, prefix = heal(tokenizer, piece)
    options = token_text(tokenizer).starting_with(prefix.encode("utf-8", "surrogatepass")) if prefix else []
    return (before, prefix, options) if options else (plain, "", [])
