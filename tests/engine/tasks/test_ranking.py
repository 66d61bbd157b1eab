"""Scores that rank: every candidate under the same noise draws, a candidate scores the same
alone from its own seed, its standard error comes with it; candidate seeds that do not overlap."""

from __future__ import annotations

import torch

from dgterm.engine import tasks
from dgterm.engine.events import candidate_seed, seeds_for
from dgterm.engine.local.scoring import loglik
from dgterm.engine.params import SamplerParams
from dgterm.engine.tasks import SpanRequest

SOURCE = "def area(width, height):\n    return width * height\n\n\nprint(area(3, 4))\n"
SPAN = SpanRequest(SOURCE.index("width *"), SOURCE.index("\n\n\n"))


def test_identical_candidates_score_identically_under_common_noise(tiny):
    task = tasks.infill(tiny, SOURCE, [SPAN], tiny.defaults.replace(seed=3, steps=4), candidates=1)
    run = task._run.collect()
    twins = [run.canvases[0].expand(3, -1).clone()]
    scores = loglik(tiny, list(task.plans[0].windows()), twins, seed=5)
    assert scores[0] == scores[1] == scores[2] and scores[0].se > 0


def test_a_candidate_run_alone_from_its_printed_seed_is_the_same_text_and_score(tiny):
    params = tiny.defaults.replace(seed=11, steps=6)
    both = tasks.infill(tiny, SOURCE, [SPAN], params, candidates=3).collect().candidates
    for cand in both:
        alone = tasks.infill(tiny, SOURCE, [SPAN], params.replace(seed=cand.seed), candidates=1).collect().best
        assert alone.spans == cand.spans and alone.seed == cand.seed
        assert abs(alone.score - cand.score) < 0.05, (alone.score, cand.score)
        assert 0 < cand.score_se < 0.5


def test_neighbouring_seeds_draw_distinct_candidates():
    seeds = [s for base in range(1, 6) for s in seeds_for(SamplerParams(seed=base), 4)]
    assert len(set(seeds)) == 20 and all(0 <= s < 2**31 for s in seeds)
    assert seeds_for(SamplerParams(seed=7), 3)[0] == 7  # the first candidate keeps the seed it was given
    assert candidate_seed(1, 1) == 262007644  # blake2b: the same on every run and platform


def test_scores_over_several_windows_read_one_draw_at_a_time(tiny):
    text = "a" * 40 + " b c d " + "e" * 60 + " f g h " + "i" * 20
    spans = [SpanRequest(40, 47), SpanRequest(107, 114)]
    task = tasks.infill(tiny, text, spans, tiny.defaults.replace(seed=1, steps=3), candidates=2)
    result = task.collect()
    assert len(task.plans[0].starts) > 1  # several windows: the cache rows differ per candidate
    assert all(torch.isfinite(torch.tensor(c.score)) and c.score_se >= 0 for c in result.candidates)


def test_a_long_draft_needs_fewer_draws_than_a_short_one():
    from dgterm.engine.events import Window
    from dgterm.engine.pll import DRAWS, draws_for

    def span(free: int) -> Window:
        pinned = torch.ones(128, dtype=torch.bool)
        pinned[:free] = False
        return Window([1], torch.zeros(128, dtype=torch.long), pinned)

    assert draws_for([span(6)], 128) == DRAWS
    assert draws_for([span(32)], 128) == 2 == draws_for([Window([1]), Window([])], 128)  # two whole canvases


def test_a_length_search_scores_each_row_over_its_own_free_positions(tiny):
    """Rows of a length search pin different positions (a (B, C) mask): each row is scored as
    its own layout alone would be, not over the positions of the mask's row indices."""
    from dgterm.engine.events import Window

    C = tiny.canvas_length
    layouts = []
    for free in (3, 9):
        pinned = torch.ones(C, dtype=torch.bool)
        pinned[4 : 4 + free] = False
        layouts.append(pinned)
    known = torch.full((C,), 5, dtype=torch.long)
    final = torch.randint(6, tiny.vocab_size, (2, C), generator=torch.Generator().manual_seed(0))
    batch = Window([1, 7, 8], known.expand(2, -1).clone(), torch.stack(layouts))
    together = loglik(tiny, [batch], [final], draws=2, seed=3)
    for b, pinned in enumerate(layouts):
        alone = loglik(tiny, [Window([1, 7, 8], known, pinned)], [final[b : b + 1]], draws=2, seed=3)
        assert abs(together[b] - alone[0]) < 1e-4
