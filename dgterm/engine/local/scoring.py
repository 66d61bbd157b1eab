"""What a finished candidate is worth to the model: its own log-likelihood given both sides.

After a run, each candidate's final canvases are laid out again with every position
known, and the model is asked how likely each generated token is with that token hidden
(uniform noise in its place, as the model saw undecided positions in training) and
everything else, context on both sides and the candidate's other tokens, in view. A
group of every ``stride``-th generated position is hidden at once. The score is the mean
log-probability per generated token (nats, at most 0, higher is likelier): a
pseudo-log-likelihood, normalised by length so candidates of different lengths compare.

One noise draw is a noisy estimate (about 0.2 nats apart from one draw to the next on the
bundled model for a span of a dozen tokens), as large as the gaps that decide a ranking. So
the score averages up to ``DRAWS`` draws (fewer for a long draft, whose many tokens average
the noise already: :func:`draws_for`), and every candidate of a run is scored under the *same* draws (common
random numbers: candidates differ by their text, not by their luck); :class:`Score`
carries the standard error over the draws, so a caller can tell a tie. The draws run one after the
other over the run's own rows and cache: a scoring forward holds no more memory than a
denoising step (what the memory planner counts), at the price of one forward per draw and
group. (Batching the draws into one forward saved a fifth of the time on the CPU and would
multiply the logits, 262,144 wide for the real model, by the number of draws.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dgterm.engine.events import RunResult, Window
from dgterm.engine.local.denoise import LocalModel, decoder_logits, decoder_mask, restriction
from dgterm.engine.local.prefill import SharedPrefill
from dgterm.engine.pll import STRIDE, Score, draws_for, free_positions, hidden_groups, noise, scores


def score_run(lm: LocalModel, windows: Sequence[Window], run: RunResult, *, skip_pad: bool, seed: int) -> list[float]:
    """:func:`loglik` of a finished run's canvases (each a :class:`Score`); 0 for every row when nothing was generated.
    The run's cache (``run.context``) goes with it:
    read again when the run had one window, let go first otherwise."""
    context, run.context = (run.context if len(run.canvases) == 1 else None), None
    if not run.canvases:
        return [Score(0.0)] * run.forwards.shape[0]
    return loglik(lm, windows, run.canvases, skip_pad=skip_pad, seed=seed, context=context)


@torch.no_grad()
def loglik(lm: LocalModel, windows: Sequence[Window], canvases: list[torch.Tensor], *, skip_pad: bool = False,
           stride: int = STRIDE, draws: int | None = None, seed: int = 0,
           context: tuple[SharedPrefill, int] | None = None) -> list[float]:
    """Mean log-probability per generated token of each batch row of ``canvases`` (one (B, C)
    tensor per window, as the run left them) over the ``windows`` the run denoised, averaged
    over ``draws`` noise draws (None: :func:`draws_for`) from ``seed``, shared by every row.
    ``skip_pad`` leaves out pad positions (what follows EOS in a continuation). ``context``:
    the cache and length of a one-window run (``RunResult.context``), which hold exactly its
    prompt: read as they are instead of encoding it again."""
    from transformers import DynamicCache

    model, device = lm.model, lm.device
    B, C = canvases[0].shape
    draws = draws or draws_for(windows, C)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prefill, cur_len = context if context is not None else (
        SharedPrefill(model, DynamicCache(config=model.config.get_text_config(decoder=True)), B), 0)
    reuse = context is not None
    total = torch.zeros(draws, B, dtype=torch.float64)
    count = torch.zeros(B, dtype=torch.float64)
    pending: torch.Tensor | None = None
    for window, final in zip(windows, canvases):
        parts = [] if pending is None else [pending]
        if window.prefix and not reuse:
            parts.append(torch.tensor(window.prefix, dtype=torch.long, device=device).expand(B, -1))
        if parts:
            cur_len = prefill.append(torch.cat(parts, dim=-1), cur_len)
        final = final.to(device)
        hiding = noise(gen, draws, lm.vocab_size, C, stride).to(device)  # the same for every row
        mask = decoder_mask(model, final, prefill.cache, cur_len)
        positions = torch.arange(cur_len, cur_len + C, dtype=torch.int32, device=device)[None]
        restrict = restriction(window.allowed, lm.vocab_size, device)
        counted = final != lm.pad_id if skip_pad else torch.ones_like(final, dtype=torch.bool)
        for r, hidden in enumerate(hidden_groups(free_positions(window, C), stride)):
            if not hidden.any():
                continue
            hidden = hidden.to(device)
            for d in range(draws):
                canvas = torch.where(hidden, hiding[d, r], final)
                logits = decoder_logits(model, canvas, None, mask, prefill.cache, positions)
                if restrict is not None:
                    logits = restrict(logits)
                logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, final[..., None])[..., 0]
                del logits
                total[d] += (logp * (hidden & counted)).sum(-1).double().cpu()
            count += (hidden & counted).sum(-1).double().cpu()
        pending = final
    return scores(total, count)

