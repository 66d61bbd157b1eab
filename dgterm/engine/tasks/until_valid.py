"""Rounds of candidates drawn until one is valid (``--require-valid``, the editor's
``require_valid``): each round is a task of its own, with its own seeds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dgterm.engine.events import StepEvent, candidate_seed, seeds_for
from dgterm.engine.output.frames import Layout
from dgterm.engine.params import SamplerParams
from dgterm.engine.tasks.task import Candidate, Task, TaskResult, rank


class UntilValid:
    """Rounds of a task, drawn until a candidate is valid or ``limit`` candidates have been
    drawn: ``start(params)`` makes one round's Task, and round k runs with seed
    ``candidate_seed(seed, k * candidates)`` (so every candidate has its own seed). Iterate for the
    StepEvents of every round in turn; ``result`` then ranks all candidates drawn, and
    ``found`` says whether one is valid. ``result.run`` is the last round's run."""

    def __init__(self, start: Callable[[SamplerParams], Task], params: SamplerParams, candidates: int, limit: int):
        self.start, self.candidates, self.limit = start, candidates, max(limit, candidates)
        self.seed = seeds_for(params, 1)[0]
        self.params = params.replace(seed=self.seed)
        self.task = start(self.params)
        self.lm, self.plans, self.seeds = self.task.lm, self.task.plans, self.task.seeds
        self.result: TaskResult | None = None
        self.drawn = 0
        self.round = 0  # the round being drawn

    @property
    def found(self) -> bool:
        return bool(self.result and self.result.candidates and self.result.best.valid is not False)

    def __iter__(self) -> Iterator[StepEvent]:
        drawn: list[Candidate] = []
        while True:
            yield from self.task
            result = self.task.result
            assert result is not None  # set when the round's run ends
            drawn += result.candidates
            self.drawn = len(drawn)
            if result.run.cancelled or any(c.valid is not False for c in result.candidates) \
                    or self.drawn + self.candidates > self.limit:
                break
            self.round += 1
            self.task = self.start(self.params.replace(seed=candidate_seed(self.seed, self.drawn)))
            self.task.round = self.round
        self.result = TaskResult(rank(drawn) if not result.run.cancelled else [], result.run)

    def collect(self) -> TaskResult:
        for _ in self:
            pass
        assert self.result is not None  # set when the last round ends
        return self.result

    @property
    def layout(self) -> Layout:
        return self.task.layout

    def drafts(self, event: StepEvent, row: int = 0):
        return self.task.drafts(event, row)


def until_valid(start: Callable[[SamplerParams], Task], params: SamplerParams, candidates: int,
                limit: int | None) -> Task | UntilValid:
    """``start(params)``, or with a ``limit`` rounds of it until a candidate is valid (at
    most ``limit`` candidates in all): the one way ``--require-valid`` wraps a task."""
    return UntilValid(start, params, candidates, limit) if limit else start(params)
