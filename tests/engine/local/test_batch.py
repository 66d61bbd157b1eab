"""The batcher's per-request canvas shapes (what `dgterm serve` maps vLLM's fields onto): a
canvas narrower than the model's, and sampling constrained to a set of ids."""

from __future__ import annotations

import threading

import torch

from dgterm.engine.events import Window
from dgterm.engine.local.batch import Batcher, Sequence
from dgterm.engine.local.denoise import decoder_logits, decoder_mask
from dgterm.engine.local.prefill import encode


def run(lm, seqs):
    """Submit ``seqs`` to a batcher, wait (bounded) for all to end; their messages."""
    news, left = [[] for _ in seqs], threading.Semaphore(0)
    for i, seq in enumerate(seqs):
        def sink(kind, payload, i=i):
            news[i].append((kind, payload))
            if kind in ("done", "cancelled", "error"):
                left.release()
        seq.sink = sink
    batcher = Batcher(lm, max_batch=4)
    try:
        batcher.submit(seqs)
        for _ in seqs:
            assert left.acquire(timeout=120)
    finally:
        batcher.close()
    return news


def canvases(messages):
    return [payload for kind, payload in messages if kind == "canvas"]


def test_hidden_canvas_positions_do_not_reach_the_visible_ones(bundled):
    from transformers import DynamicCache

    model, C = bundled.model, bundled.canvas_length
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    cur = encode(model, cache, torch.tensor([[bundled.tokenizer.bos_token_id, 40, 41, 42]]), 0)
    a = torch.randint(0, bundled.vocab_size, (1, C), generator=torch.Generator().manual_seed(0))
    b = a.clone()
    b[:, 40:] = torch.randint(0, bundled.vocab_size, (1, C - 40), generator=torch.Generator().manual_seed(1))
    positions = torch.arange(cur, cur + C, dtype=torch.int32)[None]
    with torch.no_grad():
        la, lb = (decoder_logits(model, x, None, decoder_mask(model, x, cache, cur, 40), cache, positions)
                  for x in (a, b))
        full = decoder_logits(model, b, None, decoder_mask(model, b, cache, cur), cache, positions)
    torch.testing.assert_close(la[:, :40], lb[:, :40])  # hidden: what lies past 40 changes nothing
    assert not torch.allclose(full[:, :40], lb[:, :40])  # seen, it would


def test_a_narrower_canvas_commits_its_width_and_batches_exactly(bundled):
    ids = [bundled.tokenizer.bos_token_id] + bundled.tokenizer("def f(x):", add_special_tokens=False)["input_ids"]
    p = bundled.defaults.replace(steps=3, seed=5)

    def narrow():
        return Sequence([Window(ids), Window([])], p, None, stop_at_eos=False, width=24)

    (alone,) = run(bundled, [narrow()])
    together = run(bundled, [narrow(), Sequence([Window(ids)], p.replace(seed=9), None, stop_at_eos=False)])
    assert [len(c["ids"]) for c in canvases(alone)] == [24, 24]
    assert canvases(together[0]) == canvases(alone)  # a full-width neighbour changes no token
    assert [len(c["ids"]) for c in canvases(together[1])] == [bundled.canvas_length]


def test_a_constrained_sequence_takes_only_its_ids_and_their_logprobs_sum_to_one(bundled):
    ids = [bundled.tokenizer.bos_token_id] + bundled.tokenizer("x = ", add_special_tokens=False)["input_ids"]
    labels = bundled.tokenizer(" 1 2 3 4", add_special_tokens=False)["input_ids"]
    allowed = torch.zeros(bundled.vocab_size, dtype=torch.bool)
    allowed[labels] = True
    seq = Sequence([Window(ids)], bundled.defaults.replace(steps=3, seed=2), None, stop_at_eos=False, logprobs=1,
                   logprob_ids=labels, width=16, allowed=allowed)
    (news,) = run(bundled, [seq])
    (canvas,) = canvases(news)
    assert len(canvas["ids"]) == 16 and set(canvas["ids"]) <= set(labels)
    top = canvas["logprobs"]
    for row_ids, row_values in zip(top["top_ids"], top["top_values"]):
        assert sorted(row_ids) == sorted(labels) and row_values == sorted(row_values, reverse=True)
        assert abs(sum(torch.tensor(row_values).exp().tolist()) - 1) < 1e-4  # normalised over the labels


def test_the_servers_candidates_share_one_prefill_and_keep_their_tokens(bundled):
    tok = bundled.tokenizer
    ids = [tok.bos_token_id] + tok("".join(f"x{i} = {i}\n" for i in range(60)), add_special_tokens=False)["input_ids"]
    params = bundled.defaults.replace(steps=6, seed=1)

    def seqs(*seeds):
        return [Sequence([Window(ids), Window([])], params.replace(seed=s), None, stop_at_eos=False) for s in seeds]

    alone = [run(bundled, seqs(s))[0] for s in (1, 2, 3)]
    lengths = []
    hook = bundled.model.model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        together = run(bundled, seqs(1, 2, 3))
    finally:
        hook.remove()
    assert lengths.count(len(ids)) == 1  # the prompt once, for all three
    for mine, single in zip(together, alone):
        assert canvases(mine) == canvases(single)


def test_an_exact_row_beside_a_top_k_row_draws_what_it_draws_alone(bundled):
    """A forward that holds a top-k self-conditioned row gives every row its signal by hand:
    the exact row's (the softmax times the embedding, as the decoder computes it) changes
    none of its tokens; the top-k row's do differ from an exact run of its seed."""
    ids = [bundled.tokenizer.bos_token_id] + bundled.tokenizer("def f(x):", add_special_tokens=False)["input_ids"]
    p = bundled.defaults.replace(steps=6, seed=5)

    def seq(params):
        return Sequence([Window(ids), Window([])], params, None, stop_at_eos=False)

    (alone,) = run(bundled, [seq(p)])
    exact, top = run(bundled, [seq(p), seq(p.replace(seed=9, sc_top_k=1))])
    (exact_9,) = run(bundled, [seq(p.replace(seed=9))])
    assert canvases(exact) == canvases(alone)
    assert canvases(top) != canvases(exact_9)
