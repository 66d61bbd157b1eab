"""Prompts the benchmarks share."""

from __future__ import annotations

from pathlib import Path


def long_prompt_ids(lm, tokens: int) -> list[int]:
    """A prompt of exactly ``tokens`` ids: BOS, then dgterm's own engine source, repeated."""
    text = Path(__file__).resolve().parents[1].joinpath("engine", "local", "denoise.py").read_text(encoding="utf-8")
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return [lm.tokenizer.bos_token_id] + (ids * (tokens // len(ids) + 1))[: tokens - 1]
