"""The fused sampling pass: temperature, argmax, entropy and a sample in one pass per row.

The reference sampler makes half a dozen full passes over the (rows × vocab) logits and
as many logits-sized temporaries (softmax, ``torch.multinomial``'s exponential draw,
argmax, logsumexp, softmax, clamp, product). Everything it needs from a row comes from
three statistics of ``x = logits / T`` (max ``m``, ``Z = Σ e`` and ``S = Σ e·(x - m)`` with
``e = exp(x - m)``): ``entropy = log Z - S / Z``, the argmax, and a sample.

Two implementations, one contract (``fused_sample``):

- :func:`fused_sample_cpu` (vectorised torch): rows in blocks small enough to stay in
  cache, one exponential pass per block shared by the entropy and the sample, which is
  drawn by inverting the row's CDF with one uniform per row (block sums, then one block).
- The Triton kernel (:mod:`dgterm.engine.local.kernels.sampling_triton`) for CUDA: one program
  per row, online softmax statistics, and a Gumbel-max sample from Philox counters keyed
  by a per-row seed, so it needs no random tensor at all. :func:`gumbel_sample_torch` is
  its pure-torch twin (the same Philox stream, bit for bit), for the tests.

The processed logits (``x``, the next step's self-conditioning input) are written in
place when the dtype allows, so a step holds no logits-sized temporary.

On the CPU a logit more than :data:`FLOOR` below its row's top is raised to that floor
(``e^-64``, 1.6e-28 of the top's probability). Below it ``exp`` and the softmax return
subnormal numbers, and x86 cores compute on those a hundred times slower (the flush-to-zero
flag is per thread, and torch's worker threads do not have it): the self-conditioning
softmax times the embedding matrix was a third of a decoder forward on the bundled model.
The floor changes no float32 sum that holds a probability above ~1e-20, so the argmax,
entropy, samples and soft embeddings are those of the unfloored pass (a test checks the
tokens); a row holding barred logits (see ``denoise.restriction``) keeps them barred.
"""

from __future__ import annotations

import torch

from dgterm.engine.local.kernels.gumbel import gumbel_sample_torch, philox_uniform

__all__ = ["CDF_CHUNK", "ROW_BLOCK_BYTES", "fused_sample", "fused_sample_cpu", "gumbel_sample_torch", "philox_uniform",
           "temperature_of"]

ROW_BLOCK_BYTES = 1 << 21  # a CPU block of rows: ~2 MiB of float32, two buffers stay in L2/L3
CDF_CHUNK = 1024  # vocabulary entries per partial sum of the CPU inverse-CDF search
FLOOR = 64.0  # CPU: logits more than this below their row's top are raised to it (no subnormals)
BARRED = torch.finfo(torch.float32).min / 4  # below this a logit is barred, not low: a row holding one is not floored


def temperature_of(params, cur_step: int, device) -> torch.Tensor:
    """The schedule's temperature at ``cur_step`` steps remaining, as the reference computes it."""
    cur = torch.tensor(cur_step, device=device, dtype=torch.int32)
    return params.t_min + ((params.t_max - params.t_min) * (cur / params.steps))


def fused_sample(logits: torch.Tensor, temperature: torch.Tensor, work: torch.Tensor, randomness: torch.Tensor,
                 fill: torch.Tensor | None, out_dtype) -> tuple[torch.Tensor, ...]:
    """One step's sampling pass over ``logits`` (N, V), rows being canvas positions.

    ``temperature``: a 0-dim CPU float32 tensor (no device sync to read it). ``work`` (N,)
    bool: the rows to compute; the others (pinned, finished) report ``fill`` (N,) (or 0)
    as argmax and sample, entropy 0. ``randomness`` (N,): a uniform in [0, 1) per row on
    the CPU, a Philox seed per row on CUDA. Returns (processed, argmax, entropy, sample);
    ``processed`` is ``logits / temperature`` in ``out_dtype``, written over ``logits``
    where the dtypes allow."""
    if logits.is_cuda:
        out = logits if out_dtype == logits.dtype else torch.empty_like(logits, dtype=out_dtype)
        fill = fill if fill is not None else torch.zeros_like(randomness)
        if _use_triton(logits):
            from dgterm.engine.local.kernels.sampling_triton import gumbel_sample_triton

            return out, *gumbel_sample_triton(logits, float(temperature), randomness, work, fill, out)
        return out, *gumbel_sample_torch(logits, float(temperature), randomness, work, fill, out)
    logits = logits.float()
    argmax, entropy, sample = fused_sample_cpu(logits, temperature, work, randomness)
    if fill is not None:
        argmax, sample = torch.where(work, argmax, fill), torch.where(work, sample, fill)
    return logits, argmax, entropy, sample


def _use_triton(x: torch.Tensor) -> bool:
    from dgterm.engine.local.kernels import selfcheck

    return selfcheck.use_triton("fused_sampler", x.device)


def fused_sample_cpu(logits: torch.Tensor, temperature: torch.Tensor, work: torch.Tensor, uniforms: torch.Tensor):
    """The CPU pass: ``logits`` (N, V) float32 is divided by ``temperature`` (and floored,
    :data:`FLOOR`) in place; for
    the ``work`` rows returns argmax, entropy and a sample drawn by inverting the row's
    CDF at ``uniforms`` (N,) — each (N,), 0 for the other rows. Rows go in blocks that
    stay in cache: one exponential pass per block serves the entropy and the sample."""
    n, vocab = logits.shape
    argmax = torch.zeros(n, dtype=torch.long)
    entropy = torch.zeros(n, dtype=torch.float32)
    sample = torch.zeros(n, dtype=torch.long)
    block = max(1, ROW_BLOCK_BYTES // (4 * vocab))
    chunk = CDF_CHUNK if vocab % CDF_CHUNK == 0 else vocab
    d_buf = torch.empty(min(block, n), vocab, dtype=torch.float32)
    e_buf = torch.empty_like(d_buf)
    rows = work.tolist()
    for i in range(0, n, block):
        x = logits[i : i + block]
        x.div_(temperature)
        m, am = x.max(dim=-1, keepdim=True)
        x.clamp_(min=torch.where(x.amin(dim=-1, keepdim=True) > BARRED, m - FLOOR, -torch.inf))
        mine = rows[i : i + block]
        if not any(mine):
            continue
        idx = None if all(mine) else torch.tensor([k for k, w in enumerate(mine) if w]) + i
        if idx is not None:
            x, m, am = logits.index_select(0, idx), m[idx - i], am[idx - i]
        r = x.shape[0]
        d, e = d_buf[:r], e_buf[:r]
        torch.sub(x, m, out=d).clamp_(min=torch.finfo(d.dtype).min)  # x - m <= 0; -inf logits count 0
        torch.exp(d, out=e)
        partial = e.view(r, vocab // chunk, chunk).sum(-1)  # (r, chunks)
        z = partial.sum(-1)
        s = d.mul_(e).view(r, vocab // chunk, chunk).sum(-1).sum(-1)  # Σ e·(x - m), summed pairwise
        # Inverse CDF: the chunk holding u·Z, then the position inside it.
        target = uniforms[i : i + block] if idx is None else uniforms[idx]
        target = target * z
        cum = partial.cumsum(-1)
        c = torch.searchsorted(cum, target[:, None], right=True).clamp_(max=cum.shape[1] - 1)
        before = torch.where(c > 0, cum.gather(1, (c - 1).clamp(min=0)), torch.zeros_like(target[:, None]))
        inner = e.view(r, -1, chunk).gather(1, c[:, :, None].expand(r, 1, chunk)).view(r, chunk).cumsum(-1)
        j = torch.searchsorted(inner, target[:, None] - before, right=True).clamp_(max=chunk - 1)
        where = slice(i, i + r) if idx is None else idx
        argmax[where] = am[:, 0]
        entropy[where] = torch.log(z) - s / z
        sample[where] = c[:, 0] * chunk + j[:, 0]
    return argmax, entropy, sample


# ------------------------------------------------------------------ Gumbel-max twin of the Triton kernel
