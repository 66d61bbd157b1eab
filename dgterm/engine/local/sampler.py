"""DiffusionGemma's sampler: temperature schedule, entropy-bound acceptance, renoising, stopping.

Two ways to draw a step (``SamplerParams.mode``), both feeding the same acceptance,
renoise and stop test:

- ``fused`` (the default): one pass per row over the logits
  (:mod:`dgterm.engine.local.kernels.sampling`: vectorised torch on the CPU, a Triton kernel on
  CUDA) for temperature, argmax, entropy and the sample; no logits-sized temporary.
  Same argmax, entropy within 1e-4, samples from the same distribution, another stream.
- ``reference``: the operations and the order in which they draw random numbers mirror
  ``transformers.models.diffusion_gemma.generation_diffusion_gemma`` exactly, so a run
  with one candidate and a seed reproduces ``model.generate`` token for token.

Both add *pinned* positions (known tokens, re-imposed after every accept and renoise,
with entropy 0 so they spend none of the entropy budget and are left out of the
confidence test) and per-candidate random generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dgterm.engine.local.kernels.sampling import fused_sample, temperature_of
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
        self.history: torch.Tensor | None = None  # argmax canvases of the last `stability` steps
        self.entropy: torch.Tensor | None = None  # fused mode: the last entropy of each position
        self.states: list[list[torch.Tensor]] = []  # the generators' states before each step

    def _randint(self, batch: int, length: int, device: str | torch.device) -> torch.Tensor:
        """Uniform ids per candidate, each from its own generator."""
        if len(self.generators) == 1 and batch == 1:
            return torch.randint(0, self.vocab_size, (1, length), device=device, generator=self.generators[0])
        return torch.cat([torch.randint(0, self.vocab_size, (1, length), device=device, generator=g)
                          for g in self.generators])

    def _multinomial(self, probs: torch.Tensor) -> torch.Tensor:
        batch, length, vocab = probs.shape
        if batch == 1:
            return torch.multinomial(probs.view(-1, vocab), 1, generator=self.generators[0]).view(1, length)
        return torch.cat([torch.multinomial(probs[b], 1, generator=g).view(1, length)
                          for b, g in enumerate(self.generators)])

    def _remember_generators(self) -> None:
        """Every row draws at every step, finished or not (no host read of which rows
        finished); the generators' states before each step (host state, no device sync)
        let :meth:`rewind` put back what a finished row drew after it finished."""
        self.states.append([g.get_state() for g in self.generators])

    def rewind(self, finished_at: list[int]) -> None:
        """Once per canvas: the generator of a row that finished after step ``s`` (1-based;
        0: it never did) goes back to its state after step ``s``, so every candidate's stream
        is the one a run with its seed alone draws (that run stops drawing when it finishes)."""
        if not self.states:
            return
        for g, s, states in zip(self.generators, finished_at, zip(*self.states, strict=True), strict=True):
            if 0 < s < len(states):
                g.set_state(states[s])

    def initial_canvas(self, batch: int, length: int, device: str | torch.device) -> torch.Tensor:
        canvas = self._randint(batch, length, device)
        return self.pins.impose(canvas) if self.pins is not None else canvas

    def step(self, logits: torch.Tensor, canvas: torch.Tensor, argmax: torch.Tensor,
             self_conditioning: torch.Tensor | None, finished: torch.Tensor, cur_step: int,
             sc_dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """One denoising step from the decoder's raw logits.

        ``cur_step`` counts the steps *remaining* (N..1), as in the reference. Returns the
        next canvas, the argmax canvas, the self-conditioning logits for the next step, the
        updated finished mask, and what the step did (accepted mask, entropy).
        """
        self._remember_generators()
        if self.params.mode == "reference":
            temperature = temperature_of(self.params, cur_step, canvas.device)
            processed, denoised, new_argmax, entropy = self._draw_reference(logits, temperature)
        else:  # the same float32 temperature, read on the host without a device sync
            temperature = temperature_of(self.params, cur_step, "cpu")
            processed, denoised, new_argmax, entropy = self._draw_fused(logits, temperature, finished, sc_dtype)
        if self.pins is not None:
            entropy = entropy.masked_fill(self.pins.mask, 0.0)
            new_argmax = self.pins.impose(new_argmax)
        sorted_entropy, order = torch.sort(entropy, dim=-1, descending=False)
        selected = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= self.params.entropy_bound
        accepted = torch.scatter(torch.zeros_like(selected), dim=-1, index=order, src=selected)
        accepted_canvas = torch.where(accepted, denoised, canvas)
        if self.pins is not None:
            accepted_canvas = self.pins.impose(accepted_canvas)
        noise = self._randint(canvas.shape[0], canvas.shape[1], canvas.device)
        new_canvas = torch.where(~accepted, noise, accepted_canvas)
        if self.pins is not None:
            new_canvas = self.pins.impose(new_canvas)

        if canvas.shape[0] > 1 and self_conditioning is not None:
            # A row that finished keeps what it had (one row alone stops instead); no host
            # read of which rows did: the masks are applied to every row.
            new_argmax = torch.where(finished[:, None], argmax, new_argmax)
            new_canvas = torch.where(finished[:, None], canvas, new_canvas)
            held = finished[:, None, None]
            if self.params.mode == "reference":
                processed = torch.where(held, self_conditioning, processed)
            else:  # in place: no logits-sized temporary
                torch.where(held, self_conditioning.to(processed.dtype), processed, out=processed)
        # Rows already finished stay finished whatever the test says, so the acceptance
        # entropy (that of the unchanged logits of the other rows) serves the test too.
        finished = finished | self._stop(new_argmax, entropy)
        return new_canvas, new_argmax, processed.to(sc_dtype), finished, accepted, entropy

    def _draw_reference(self, logits, temperature):
        """transformers' operations, in its order: the same tokens for the same seed."""
        processed = logits / temperature
        probs = torch.softmax(processed, dim=-1, dtype=torch.float32)
        denoised = self._multinomial(probs)
        return processed, denoised, torch.argmax(processed, dim=-1), token_entropy(processed)

    def _draw_fused(self, logits, temperature, finished, sc_dtype):
        """One pass per row (:mod:`dgterm.engine.local.kernels.sampling`); rows that stopped and
        pinned positions are not computed (their results are replaced), and keep the
        entropy they had."""
        batch, length, vocab = logits.shape
        device = logits.device
        if self.entropy is None:
            self.entropy = torch.zeros(batch, length, dtype=torch.float32, device=device)
        work = (~finished)[:, None].expand(batch, length)
        if self.pins is not None:
            work = work & ~self.pins.mask
        processed, argmax, entropy, sample = fused_sample(
            logits.view(-1, vocab), temperature, work.reshape(-1), self._row_randomness(length),
            None if self.pins is None else self.pins.ids.reshape(-1).contiguous(), sc_dtype)
        shape = (batch, length)
        self.entropy = torch.where(work, entropy.view(shape), self.entropy)
        return processed.view(batch, length, vocab), sample.view(shape), argmax.view(shape), self.entropy

    def _row_randomness(self, length):
        """Per candidate: uniforms for the CPU pass, or a Philox seed per position for the
        Triton kernel; drawn from the candidate's own generator."""
        device = self.generators[0].device
        if device.type == "cuda":
            return torch.cat([torch.randint(0, 1 << 62, (1,), device=device, generator=g)
                              + torch.arange(length, device=device) for g in self.generators])
        return torch.cat([torch.rand(length, generator=g) for g in self.generators])

    def _stop(self, argmax: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        """Stable (argmax unchanged for `stability` steps) and confident (mean entropy of the
        free positions under `confidence`)."""
        p = self.params
        if p.stability == 0:
            stable = torch.ones(argmax.shape[0], device=argmax.device, dtype=torch.bool)
        else:
            history = self.history
            if history is None:
                history = torch.full((p.stability, *argmax.shape), -1, dtype=argmax.dtype, device=argmax.device)
            stable = (history == argmax[None]).all(dim=-1).all(dim=0)
            self.history = history = torch.roll(history, shifts=-1, dims=0)
            history[-1] = argmax
        if self.pins is None:
            mean = torch.mean(entropy, dim=-1)
        else:
            free = ~self.pins.mask
            mean = (entropy * free).sum(-1) / free.sum(-1).clamp(min=1)
        return stable & (mean < p.confidence)
