"""The same seed gives the same text and the same scores in process and through `dgterm serve`
(a real subprocess): continue, multi-span infill, rewrite (the bundled model has a chat
template), candidates and --require-valid, through the Python API and the command line.
Span edges are healed on both sides (the server heals and scores for its client)."""

from __future__ import annotations

import json

import pytest

from dgterm.engine import tasks
from dgterm.engine.tasks import chat

from tests.helpers.cli import dgterm

pytestmark = pytest.mark.slow
DOC = "def mean(values):\n    total = sum(values)\n    return total / len(values)\n\n\nprint(mean([1, 2, 3]))\n"


def same(here, there):
    """Candidate by candidate (by seed): the same text, the same score within 1e-4, and a real score."""
    a = sorted(here.candidates, key=lambda c: c.seed)
    b = sorted(there.candidates, key=lambda c: c.seed)
    assert [(c.seed, c.text) for c in b] == [(c.seed, c.text) for c in a]
    for x, y in zip(a, b):
        assert y.score == pytest.approx(x.score, abs=1e-4) and y.score < 0
    assert [c.seed for c in there.candidates] == [c.seed for c in here.candidates]  # ranked alike


def span(text, piece):
    return tasks.SpanRequest(text.index(piece), text.index(piece) + len(piece))


def test_continue_with_candidates(remote, bundled):
    p = bundled.defaults.replace(steps=3, seed=5, max_new_tokens=40)
    same(tasks.continue_text(bundled, "import os\n", p, candidates=2).collect(),
         tasks.continue_text(remote, "import os\n", p, candidates=2).collect())


def test_multi_span_infill_is_healed_alike(remote, bundled):
    p = bundled.defaults.replace(steps=3, seed=9)
    spans = [span(DOC, "sum(values)"), span(DOC, "[1, 2, 3]")]
    plan = tasks.infill(remote, DOC, spans, p).plans[0]
    assert plan.healed == [" ", ""] and plan.allowed  # the server healed the edge after "= "
    here = tasks.infill(bundled, DOC, spans, p, candidates=2).collect()
    there = tasks.infill(remote, DOC, spans, p, candidates=2).collect()
    same(here, there)
    assert not any(c.spans[0].startswith(" ") for c in there.candidates)  # no stray space after "= "


def test_rewrite(remote, bundled):
    p = bundled.defaults.replace(steps=3, seed=3, max_new_tokens=24)
    args = (DOC, span(DOC, "total / len(values)"), "Use a float division.", p)
    same(chat.rewrite(bundled, *args, candidates=2).collect(), chat.rewrite(remote, *args, candidates=2).collect())


def cli_record(*argv, server=None, key=None, monkeypatch):
    if server:
        monkeypatch.setenv("DGTERM_SERVER", server)
        monkeypatch.setenv("DGTERM_API_KEY", key)
    else:
        monkeypatch.delenv("DGTERM_SERVER", raising=False)
    out = dgterm(*argv, "--json")
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, [(c["seed"], c["text"], c["score"]) for c in json.loads(out.stdout)["candidates"]]


def same_records(here, there):
    assert here[0] == there[0]
    assert [(s, t) for s, t, _ in there[1]] == [(s, t) for s, t, _ in here[1]]
    assert all(abs(a[2] - b[2]) <= 1e-4 and b[2] < 0 for a, b in zip(here[1], there[1]))


def test_the_command_line_with_and_without_server(served, tmp_path, monkeypatch):
    path = tmp_path / "mean.py"
    path.write_text(DOC)
    a, b = DOC.index("sum(values)"), DOC.index("[1, 2, 3]")
    infill = ("infill", path, "--span", f"{a}:{a + 11}", "--span", f"{b}:{b + 9}", "--steps", "2", "--seed", "4",
              "--candidates", "2", "--require-valid", "4")
    generate = ("generate", "import os", "--steps", "2", "--seed", "1", "--candidates", "2")
    for argv in (infill, generate):
        here = cli_record(*argv, monkeypatch=monkeypatch)
        there = cli_record(*argv, server=served.url, key=served.key, monkeypatch=monkeypatch)
        same_records(here, there)
