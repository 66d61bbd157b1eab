"""Candidate scores through vLLM: the pseudo-log-likelihood from read-only requests.

vLLM computes no score for a client, but it documents what one needs: a read-only request
(``diffusion_read_only``, one step) on a seed canvas whose group of positions holds noise
gives, with ``logprob_token_ids``, the log-probability of given ids at every position;
with ``diffusion_constrained`` they are normalised over those ids only. The client lays
out each candidate's final canvases as :func:`dgterm.engine.local.scoring.loglik` does
(:mod:`dgterm.engine.pll`: the same groups hidden under the same noise draws from the same
seed) and reads each generated token's log-probability with it hidden; a healed position (``Window.allowed``)
is read over its allowed ids, as the in-process restriction normalises it. The same model
on the server thus gives the in-process score. Requests: one per candidate, noise draw
and group of positions (up to sixteen per window), plus one per healed position.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from dgterm.engine.pll import draws_for, free_positions, hidden_groups, noise, scores
from dgterm.engine.remote.run import top_of

IMPOSSIBLE = -9999.0  # vLLM's logprob for an id a constrained read rules out


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
    draws = draws_for(windows, C)
    gen = torch.Generator().manual_seed(seed)
    reads = []  # (draw, row, position, token, future)
    prompts: list[list[int]] = [[] for _ in range(B)]
    with ThreadPoolExecutor(8) as pool:
        for window, final in zip(windows, canvases):
            for b in range(B):
                prompts[b] = prompts[b] + list(window.prefix)
            hiding = noise(gen, draws, engine.vocab_size, C)
            for r, mask in enumerate(hidden_groups(free_positions(window, C))):
                for b in range(B):
                    row = final[b].tolist()
                    group = torch.nonzero(mask[b] if mask.dim() == 2 else mask)[:, 0].tolist()
                    hidden = [q for q in group if not (skip_pad and row[q] == engine.pad_id)]
                    if not hidden:
                        continue
                    plain = [q for q in hidden if not window.allowed.get(q)]
                    for d in range(draws):
                        canvas = list(row)
                        for q in group:
                            canvas[q] = int(hiding[d, r, q])
                        if plain:
                            future = pool.submit(read_logprobs, engine, prompts[b], canvas, [row[q] for q in plain],
                                                 False)
                            reads += [(d, b, q, row[q], future) for q in plain]
                        for q in hidden:
                            if window.allowed.get(q):  # a healed position: normalised over its ids, as in process
                                future = pool.submit(read_logprobs, engine, prompts[b], canvas, window.allowed[q], True)
                                reads.append((d, b, q, row[q], future))
            for b in range(B):
                prompts[b] = prompts[b] + final[b].tolist()
        total = torch.zeros(draws, B, dtype=torch.float64)
        count = torch.zeros(B, dtype=torch.float64)
        for d, b, q, token, future in reads:
            total[d, b] += future.result()[q].get(token, IMPOSSIBLE)
            if d == 0:
                count[b] += 1
    return scores(total, count)
