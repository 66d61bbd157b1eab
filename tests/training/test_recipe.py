"""The second recipe's masks: whole lines or line tails, on token boundaries, never pad."""

from __future__ import annotations

import torch

from dgterm.training import recipe


def test_aligned_spans_are_a_line_or_the_tail_of_one(bundled):
    tok = bundled.tokenizer
    classes = recipe.token_classes(tok)
    text = "def f(x):\n    y = g(x, 2)\n    return y\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    canvas = torch.tensor([ids + [recipe.PAD] * (48 - len(ids))] * 64)
    masks = recipe.aligned_spans(canvas, classes, torch.Generator().manual_seed(0))
    lines = [line.strip() for line in text.splitlines()]
    seen = set()
    for row in masks:
        picked = tok.decode([t for t, m in zip(ids, row[: len(ids)].tolist()) if m]).strip()
        assert not row[len(ids):].any()  # never the pad after the text
        assert picked and any(line.endswith(picked) for line in lines), picked
        seen.add(picked)
    assert seen & set(lines) and seen - set(lines)  # whole lines and tails both drawn


def test_noise_power_puts_more_weight_on_low_noise():
    canvas = torch.randint(3, 100, (4000, 32))

    def noised(power):
        r = recipe.Recipe(vocab_size=100, noise_power=power)
        _, mask = recipe.corrupt(canvas, r, torch.Generator().manual_seed(1))
        return mask.float().mean().item()

    # t = u ** p noises E[t] = 1 / (1 + p) of a whole-canvas example: 0.5 at p = 1, 0.4 at 1.5
    assert noised(1.5) < 0.9 * noised(1.0)
