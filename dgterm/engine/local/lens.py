"""The confidence lens: how much would the model change each token of a region?

Diffusion-native proofreading. The region is laid on canvases like an infill where
every token is pinned except a small group that slides over the canvas; the group's
positions hold uniform noise, as the model saw undecided positions in training. A
group is every ``stride``-th position (offset r for batch row r), so each hidden
token keeps its neighbours and one batched decoder forward scores a whole canvas.
The result is the probability the model gives the token that is really there: low
means the model would likely write something else. Nothing is edited.
"""

from __future__ import annotations

import threading

import torch

from dgterm.engine.local.denoise import LocalModel, decoder_logits, decoder_mask
from dgterm.engine.local.prefill import encode
from dgterm.engine.tasks.lens import LensToken, lens_region


@torch.no_grad()
def confidence(lm: LocalModel, text: str, start: int = 0, end: int | None = None, *, stride: int = 8, batch: int = 8,
               max_context: int = 512, seed: int = 0, cancel: threading.Event | None = None) -> list[LensToken]:
    """Score every token of ``text[start:end]``; an empty list if cancelled or empty."""
    tok, model, device = lm.tokenizer, lm.model, lm.device
    C = lm.canvas_length
    end, ids, offsets, head = lens_region(tok, text, start, end, stride, batch, max_context)
    if not ids:
        return []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    texts: dict[int, str] = {}

    def text_of(i: int) -> str:
        if i not in texts:
            texts[i] = tok.decode([i])
        return texts[i]

    out: list[LensToken] = []
    for c0 in range(0, len(ids), C):
        chunk = ids[c0 : c0 + C]
        prefix = (head + ids[:c0])[-max_context:]
        probs, tops, top_probs = _score_chunk(lm, model, device, prefix, chunk, C, stride, batch, gen, cancel)
        if probs is None:
            return []
        for k in range(len(chunk)):
            a, b = offsets[c0 + k]
            # the token as the text has it (a byte-fallback piece alone would decode to U+FFFD)
            out.append(LensToken(start + a, start + b, text[start + a : start + b], probs[k], text_of(tops[k]),
                                 top_probs[k]))
    return out


def _score_chunk(lm, model, device, prefix, chunk, C, stride, batch, gen, cancel):
    n = len(chunk)
    tail = lm.eos_ids[:1] + [lm.pad_id] * C
    known = torch.tensor(chunk + tail[: C - n])
    groups = [list(range(r, n, stride)) for r in range(min(stride, n))]
    B = min(batch, len(groups))
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    cur_len = encode(model, cache, torch.tensor(prefix, device=device)[None], 0)
    cache.batch_repeat_interleave(B)  # encode the prefix once, share it with every row
    positions = torch.arange(cur_len, cur_len + C, dtype=torch.int32, device=device)[None]
    mask = None
    probs, tops, top_probs = [0.0] * n, [0] * n, [0.0] * n
    for g0 in range(0, len(groups), B):
        if cancel is not None and cancel.is_set():
            return None, None, None
        rows = groups[g0 : g0 + B]
        rows = rows + [rows[-1]] * (B - len(rows))  # the cache has B rows: pad with repeats
        canvas = known.repeat(B, 1)
        for r, pos in enumerate(rows):
            canvas[r, pos] = torch.randint(0, lm.vocab_size, (len(pos),), generator=gen)
        canvas = canvas.to(device)
        if mask is None:
            mask = decoder_mask(model, canvas, cache, cur_len)
        logits = decoder_logits(model, canvas, None, mask, cache, positions)
        p = torch.softmax(logits.float(), dim=-1)
        for r, pos in enumerate(rows[: len(groups[g0 : g0 + B])]):
            idx = torch.tensor(pos, device=device)
            truth = known[pos].to(device)
            probs_r = p[r, idx]
            best = probs_r.max(dim=-1)
            got = probs_r.gather(-1, truth[:, None])[:, 0]
            for k, q in enumerate(pos):
                probs[q] = float(got[k])
                tops[q] = int(best.indices[k])
                top_probs[q] = float(best.values[k])
    return probs, tops, top_probs
