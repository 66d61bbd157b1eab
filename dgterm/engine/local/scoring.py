"""What a finished candidate is worth to the model: its own log-likelihood given both sides.

After a run, each candidate's final canvases are laid out again with every position
known, and the model is asked how likely each generated token is with that token hidden
(uniform noise in its place, as the model saw undecided positions in training) and
everything else, context on both sides and the candidate's other tokens, in view. A
group of every ``stride``-th generated position is hidden at once: one decoder forward
per group over all candidates, reading a cache of one row per candidate (the rows of a
candidate's groups see the same context, so the cache is not copied per group). Scoring
thus never holds more than a denoising step of the same run does. The score is
the mean log-probability per generated token (nats, at most 0, higher is likelier):
a pseudo-log-likelihood, normalised by length so candidates of different lengths compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dgterm.engine.events import RunResult, Window
from dgterm.engine.local.denoise import LocalModel, decoder_logits, decoder_mask, restriction
from dgterm.engine.local.prefill import SharedPrefill

STRIDE = 4


def score_run(lm: LocalModel, windows: Sequence[Window], run: RunResult, *, skip_pad: bool, seed: int) -> list[float]:
    """:func:`loglik` of a finished run's canvases; 0 for every row when nothing was generated.
    The run's cache (``run.context``) goes with it:
    read again when the run had one window, let go first otherwise."""
    context, run.context = (run.context if len(run.canvases) == 1 else None), None
    if not run.canvases:
        return [0.0] * run.forwards.shape[0]
    return loglik(lm, windows, run.canvases, skip_pad=skip_pad, seed=seed, context=context)


@torch.no_grad()
def loglik(lm: LocalModel, windows: Sequence[Window], canvases: list[torch.Tensor], *, skip_pad: bool = False,
           stride: int = STRIDE, seed: int = 0, context: tuple[SharedPrefill, int] | None = None) -> list[float]:
    """Mean log-probability per generated token of each batch row of ``canvases`` (one (B, C)
    tensor per window, as the run left them) over the ``windows`` the run denoised.
    ``skip_pad`` leaves out pad positions (what follows EOS in a continuation). ``context``:
    the cache and length of a one-window run (``RunResult.context``), which hold exactly
    its prompt: read as they are instead of encoding it again."""
    from transformers import DynamicCache

    model, device = lm.model, lm.device
    B, C = canvases[0].shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prefill, cur_len = context if context is not None else (
        SharedPrefill(model, DynamicCache(config=model.config.get_text_config(decoder=True)), B), 0)
    reuse = context is not None
    total = torch.zeros(B, dtype=torch.float64)
    count = torch.zeros(B, dtype=torch.float64)
    pending: torch.Tensor | None = None
    for window, final in zip(windows, canvases):
        parts = [] if pending is None else [pending]
        if window.prefix and not reuse:
            parts.append(torch.tensor(window.prefix, dtype=torch.long, device=device).expand(B, -1))
        if parts:
            cur_len = prefill.append(torch.cat(parts, dim=-1), cur_len)
        final = final.to(device)
        free = torch.ones(C, dtype=torch.bool) if window.pinned is None else ~window.pinned.cpu()
        noise = torch.randint(0, lm.vocab_size, (B, stride, C), generator=gen).to(device)
        mask = decoder_mask(model, final, prefill.cache, cur_len)
        positions = torch.arange(cur_len, cur_len + C, dtype=torch.int32, device=device)[None]
        restrict = restriction(window.allowed, lm.vocab_size, device)
        for r, group in enumerate(_groups(free, stride)):
            if not len(group):
                continue
            hidden = torch.zeros(B, C, dtype=torch.bool)
            hidden[:, group] = True
            hidden = hidden.to(device)
            canvas = torch.where(hidden, noise[:, r], final)
            logits = decoder_logits(model, canvas, None, mask, prefill.cache, positions)
            if restrict is not None:
                logits = restrict(logits)
            logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, final[..., None])[..., 0]
            del logits
            if skip_pad:
                hidden &= final != lm.pad_id
            total += (logp * hidden).sum(-1).double().cpu()
            count += hidden.sum(-1).double().cpu()
        pending = final
    return (total / count.clamp(min=1)).tolist()


def _groups(free: torch.Tensor, stride: int) -> list[torch.Tensor]:
    """Every ``stride``-th free position, for each offset: neighbours land in different groups."""
    where = torch.nonzero(free)[:, 0]
    return [where[r::stride] for r in range(stride)]
