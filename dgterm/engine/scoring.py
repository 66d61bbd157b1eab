"""What a finished candidate is worth to the model: its own log-likelihood given both sides.

After a run, each candidate's final canvases are laid out again with every position
known, and the model is asked how likely each generated token is with that token hidden
(uniform noise in its place, as the model saw undecided positions in training) and
everything else, context on both sides and the candidate's other tokens, in view. A
group of every ``stride``-th generated position is hidden at once, one batch row per
group, so a canvas of all candidates costs one batched decoder forward. The score is
the mean log-probability per generated token (nats, at most 0, higher is likelier):
a pseudo-log-likelihood, normalised by length so candidates of different lengths compare.
"""

from __future__ import annotations

import torch

from dgterm.engine.denoise import decoder_logits, decoder_mask, restriction
from dgterm.engine.prefill import encode

STRIDE = 4


@torch.no_grad()
def loglik(lm, windows, canvases: list[torch.Tensor], *, skip_pad: bool = False, stride: int = STRIDE,
           seed: int = 0) -> list[float]:
    """Mean log-probability per generated token of each batch row of ``canvases`` (one (B, C)
    tensor per window, as the run left them) over the ``windows`` the run denoised.
    ``skip_pad`` leaves out pad positions (what follows EOS in a continuation)."""
    from transformers import DynamicCache

    model, device = lm.model, lm.device
    B, C = canvases[0].shape
    R = B * stride
    gen = torch.Generator(device="cpu").manual_seed(seed)
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    total = torch.zeros(B, dtype=torch.float64)
    count = torch.zeros(B, dtype=torch.float64)
    cur_len, pending = 0, None
    for w, (window, final) in enumerate(zip(windows, canvases)):
        prefix = torch.tensor(window.prefix, dtype=torch.long, device=device)
        if pending is None:
            if len(prefix):
                cur_len = encode(model, cache, prefix[None], cur_len)
                cache.batch_repeat_interleave(R)  # the shared prefix once, then one copy per row
        else:
            cur_len = encode(model, cache, torch.cat([pending, prefix.expand(R, -1)], dim=-1), cur_len)
        final = final.to(device)
        rows = final.repeat_interleave(stride, dim=0)  # (R, C): row b * stride + r
        free = torch.ones(C, dtype=torch.bool) if window.pinned is None else ~window.pinned.cpu()
        hidden = torch.zeros(R, C, dtype=torch.bool)
        for r, group in enumerate(_groups(free, stride)):
            hidden[r::stride, group] = True
        hidden = hidden.to(device)
        noise = torch.randint(0, lm.vocab_size, (R, C), generator=gen).to(device)
        canvas = torch.where(hidden, noise, rows)
        positions = torch.arange(cur_len, cur_len + C, dtype=torch.int32, device=device)[None]
        logits = decoder_logits(model, canvas, None, decoder_mask(model, canvas, cache, cur_len), cache, positions)
        restrict = restriction(window.allowed, lm.vocab_size, device)
        if restrict is not None:
            logits = restrict(logits)
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, rows[..., None])[..., 0]
        if skip_pad:
            hidden &= rows != lm.pad_id
        total += (logp * hidden).view(B, stride, C).sum((1, 2)).double().cpu()
        count += hidden.view(B, stride, C).sum((1, 2)).double().cpu()
        pending = rows
    return (total / count.clamp(min=1)).tolist()


def _groups(free: torch.Tensor, stride: int) -> list[torch.Tensor]:
    """Every ``stride``-th free position, for each offset: neighbours land in different groups."""
    where = torch.nonzero(free)[:, 0]
    return [where[r::stride] for r in range(stride)]
