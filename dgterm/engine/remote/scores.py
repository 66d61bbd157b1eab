"""Candidate scores through vLLM: the pseudo-log-likelihood from read-only requests.

vLLM computes no score for a client, but it documents what one needs: a read-only request
(``diffusion_read_only``, one step) on a seed canvas whose group of positions holds noise
gives, with ``logprob_token_ids``, the log-probability of given ids at every position;
with ``diffusion_constrained`` they are normalised over those ids only. The client lays
out each candidate's final canvases as :func:`dgterm.engine.local.scoring.loglik` does,
with the same noise from the same seed, hides the same groups of positions and reads each
generated token's log-probability with it hidden; a healed position (``Window.allowed``)
is read over its allowed ids, as the in-process restriction normalises it. The same model
on the server thus gives the in-process score. Requests: one per candidate and group of
positions (four per window), plus one per healed position.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from dgterm.engine.remote.run import top_of

IMPOSSIBLE = -9999.0  # vLLM's logprob for an id a constrained read rules out
STRIDE = 4  # as dgterm.engine.local.scoring.STRIDE: the same groups hidden, the same noise drawn


def groups(free: torch.Tensor, stride: int) -> list[torch.Tensor]:
    """Every ``stride``-th free position, for each offset (in-process scoring's groups)."""
    where = torch.nonzero(free)[:, 0]
    return [where[r::stride] for r in range(stride)]


def read_logprobs(engine, prompt: list[int], canvas: list[int], ids: list[int], constrained: bool) -> list[dict]:
    """Per canvas position, {id: logprob} of ``ids`` after one read-only step on ``canvas``."""
    xargs = {"diffusion_seed_canvas": canvas, "diffusion_read_only": True, "diffusion_max_steps": 1}
    if constrained:
        xargs["diffusion_constrained"] = True
    body = engine.request(prompt, len(canvas), engine.defaults.replace(steps=1), 0, frames=False, ignore_eos=True,
                          logprobs=1, xargs=xargs)
    body |= {"stream": False, "logprob_token_ids": sorted(set(ids))}
    logprobs = engine.http.post("/v1/completions", body)["choices"][0]["logprobs"]
    return [top_of(entry) for entry in logprobs["top_logprobs"]]


def pseudo_loglik(engine, windows, canvases: list[torch.Tensor], *, skip_pad: bool, seed: int) -> list[float]:
    """Mean log-probability per generated token of each row of ``canvases`` (in-process ``loglik``)."""
    B, C = canvases[0].shape
    gen = torch.Generator().manual_seed(seed)
    reads = []  # (row, position, token, future)
    prompts: list[list[int]] = [[] for _ in range(B)]
    with ThreadPoolExecutor(8) as pool:
        for window, final in zip(windows, canvases):
            for b in range(B):
                prompts[b] = prompts[b] + list(window.prefix)
            free = torch.ones(C, dtype=torch.bool) if window.pinned is None else ~window.pinned.cpu()
            noise = torch.randint(0, engine.vocab_size, (B, STRIDE, C), generator=gen)
            for r, group in enumerate(groups(free, STRIDE)):
                for b in range(B):
                    row = final[b].tolist()
                    hidden = [q for q in group.tolist() if not (skip_pad and row[q] == engine.pad_id)]
                    if not hidden:
                        continue
                    canvas = list(row)
                    for q in group.tolist():
                        canvas[q] = int(noise[b, r, q])
                    plain = [q for q in hidden if not window.allowed.get(q)]
                    if plain:
                        future = pool.submit(read_logprobs, engine, prompts[b], canvas, [row[q] for q in plain], False)
                        reads += [(b, q, row[q], future) for q in plain]
                    for q in hidden:
                        if window.allowed.get(q):  # a healed position: normalised over its ids, as in process
                            future = pool.submit(read_logprobs, engine, prompts[b], canvas, window.allowed[q], True)
                            reads.append((b, q, row[q], future))
            for b in range(B):
                prompts[b] = prompts[b] + final[b].tolist()
        total, count = [0.0] * B, [0] * B
        for b, q, token, future in reads:
            total[b] += future.result()[q].get(token, IMPOSSIBLE)
            count[b] += 1
    return [t / max(n, 1) for t, n in zip(total, count)]
