"""DiffusionGemma's sampler: temperature schedule, entropy-bound acceptance, renoising, stopping.

The operations and the order in which they draw random numbers mirror
``transformers.models.diffusion_gemma.generation_diffusion_gemma`` exactly, so a run
with one candidate and a seed reproduces ``model.generate`` token for token. On top of
the reference it adds *pinned* positions (known tokens, re-imposed after every accept
and renoise, with entropy 0 so they spend none of the entropy budget and are left out
of the confidence test) and per-candidate random generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dgterm.engine.params import SamplerParams


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy per position, computed as ``torch.distributions.Categorical(logits=...).entropy()``
    does (bit for bit) without its argument validation."""
    norm = logits - logits.logsumexp(dim=-1, keepdim=True)
    probs = torch.softmax(norm, dim=-1)
    clamped = torch.clamp(norm, min=torch.finfo(norm.dtype).min)
    return -(clamped * probs).sum(-1)


@dataclass
class Pins:
    """Known canvas tokens: ``mask`` (B, C) True where ``ids`` (B, C) must stay."""

    mask: torch.Tensor
    ids: torch.Tensor

    def impose(self, canvas: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.ids, canvas)


class Sampler:
    """State of one canvas being denoised by a batch of candidates."""

    def __init__(self, params: SamplerParams, vocab_size: int, generators: list[torch.Generator],
                 pins: Pins | None = None):
        self.params = params
        self.vocab_size = vocab_size
        self.generators = generators
        self.pins = pins
        self.history = None  # argmax canvases of the last `stability` steps

    def _randint(self, batch: int, length: int, device, drawing: list[bool] | None = None) -> torch.Tensor:
        """Uniform ids per candidate, each from its own generator; rows not ``drawing`` (they
        stopped denoising: their result is discarded) draw nothing, so every candidate's
        stream is the one a run with its seed alone would draw."""
        if len(self.generators) == 1 and batch == 1:
            return torch.randint(0, self.vocab_size, (1, length), device=device, generator=self.generators[0])
        return torch.cat([torch.randint(0, self.vocab_size, (1, length), device=device, generator=g)
                          if drawing is None or drawing[b] else torch.zeros(1, length, dtype=torch.long, device=device)
                          for b, g in enumerate(self.generators)])

    def _multinomial(self, probs: torch.Tensor, drawing: list[bool]) -> torch.Tensor:
        batch, length, vocab = probs.shape
        if batch == 1:
            return torch.multinomial(probs.view(-1, vocab), 1, generator=self.generators[0]).view(1, length)
        rows = [torch.multinomial(probs[b], 1, generator=g).view(1, length) if drawing[b]
                else torch.zeros(1, length, dtype=torch.long, device=probs.device)
                for b, g in enumerate(self.generators)]
        return torch.cat(rows)

    def initial_canvas(self, batch: int, length: int, device) -> torch.Tensor:
        canvas = self._randint(batch, length, device)
        return self.pins.impose(canvas) if self.pins is not None else canvas

    def temperature(self, cur_step: torch.Tensor) -> torch.Tensor:
        p = self.params
        return p.t_min + ((p.t_max - p.t_min) * (cur_step / p.steps))

    def step(self, logits: torch.Tensor, canvas: torch.Tensor, argmax: torch.Tensor,
             self_conditioning: torch.Tensor | None, finished: torch.Tensor, cur_step: int, sc_dtype):
        """One denoising step from the decoder's raw logits.

        ``cur_step`` counts the steps *remaining* (N..1), as in the reference. Returns the
        next canvas, the argmax canvas, the self-conditioning logits for the next step, the
        updated finished mask, and what the step did (accepted mask, entropy).
        """
        cur = torch.tensor(cur_step, device=canvas.device, dtype=torch.int32)
        drawing = (~finished).tolist()
        processed = logits / self.temperature(cur)
        probs = torch.softmax(processed, dim=-1, dtype=torch.float32)
        denoised = self._multinomial(probs, drawing)
        new_argmax = torch.argmax(processed, dim=-1)

        entropy = token_entropy(processed)
        if self.pins is not None:
            entropy = entropy.masked_fill(self.pins.mask, 0.0)
            new_argmax = self.pins.impose(new_argmax)
        sorted_entropy, order = torch.sort(entropy, dim=-1, descending=False)
        selected = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= self.params.entropy_bound
        accepted = torch.scatter(torch.zeros_like(selected), dim=-1, index=order, src=selected)
        accepted_canvas = torch.where(accepted, denoised, canvas)
        if self.pins is not None:
            accepted_canvas = self.pins.impose(accepted_canvas)
        noise = self._randint(canvas.shape[0], canvas.shape[1], canvas.device, drawing)
        new_canvas = torch.where(~accepted, noise, accepted_canvas)
        if self.pins is not None:
            new_canvas = self.pins.impose(new_canvas)

        if finished.any():
            new_argmax = torch.where(finished[:, None], argmax, new_argmax)
            new_canvas = torch.where(finished[:, None], canvas, new_canvas)
            processed = torch.where(finished[:, None, None], self_conditioning, processed)
        # Rows already finished stay finished whatever the test says, so the acceptance
        # entropy (that of the unchanged logits of the other rows) serves the test too.
        finished = finished | self._stop(new_argmax, entropy)
        return new_canvas, new_argmax, processed.to(sc_dtype), finished, accepted, entropy

    def _stop(self, argmax: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        """Stable (argmax unchanged for `stability` steps) and confident (mean entropy of the
        free positions under `confidence`)."""
        p = self.params
        if p.stability == 0:
            stable = torch.ones(argmax.shape[0], device=argmax.device, dtype=torch.bool)
        else:
            if self.history is None:
                self.history = torch.full((p.stability, *argmax.shape), -1, dtype=argmax.dtype, device=argmax.device)
            stable = (self.history == argmax[None]).all(dim=-1).all(dim=0)
            self.history = torch.roll(self.history, shifts=-1, dims=0)
            self.history[-1] = argmax
        if self.pins is None:
            mean = torch.mean(entropy, dim=-1)
        else:
            free = ~self.pins.mask
            mean = (entropy * free).sum(-1) / free.sum(-1).clamp(min=1)
        return stable & (mean < p.confidence)
