"""Held-out quality of a checkpoint: denoising loss by noise level, infill exact match, baselines.

Cases come from the held-out split of :mod:`dgterm.training.corpus` (files never trained
on), drawn with a fixed seed. Four infill kinds: one masked token, one masked
identifier, one masked whole line, one masked expression (a value, argument or test
found with ``ast``, on one line); each asks the engine's infill task for the true
token length and scores an exact string match. Two baselines answer the same cases
from the left context alone: the most frequent training token, and copying the token
that followed the nearest earlier occurrence of the left neighbour (repeated for
multi-token spans).

:func:`candidate_scores` asks for several candidates per line and expression case and
says what a user would see: exact match, whether the file still compiles with the
shown candidate in it (as the engine ranks them, and with valid candidates first), and
how often a candidate starts with whitespace the original does not have.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from dgterm.training import corpus

KINDS = ("token", "identifier", "line", "expression")
CANDIDATE_KINDS = ("line", "expression")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass
class Case:
    kind: str
    file: str
    text: str  # the file around the span (see _window)
    start: int
    end: int
    source: str = ""  # the whole file
    base: int = 0  # where ``text`` starts in ``source``

    @property
    def answer(self) -> str:
        return self.text[self.start : self.end]

    def in_file(self, new: str) -> str:
        """The whole file with ``new`` in place of the span."""
        a, b = self.base + self.start, self.base + self.end
        return self.source[:a] + new + self.source[b:]


def _window(text: str, start: int, end: int, radius: int = 1500) -> tuple[str, int, int]:
    """Cut the file down to the span and some context on both sides (keeps runs cheap)."""
    a = max(0, start - radius)
    return text[a : end + radius], start - a, end - a


def _expressions(text: str) -> list[tuple[int, int]]:
    """Character spans of one-line expressions a person might leave to the model: assigned and
    returned values, call arguments and keyword values, tests of if/while/assert; not bare
    names or constants (the identifier and token kinds cover those)."""
    from dgterm.editor.structure import char_offsets

    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    char = char_offsets(text)
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return)) and node.value is not None:
            nodes.append(node.value)
        elif isinstance(node, ast.Call):
            nodes += node.args + [k.value for k in node.keywords]
        elif isinstance(node, (ast.If, ast.While, ast.Assert)):
            nodes.append(node.test)
    out = []
    for node in nodes:
        if isinstance(node, (ast.Name, ast.Constant, ast.Starred, ast.JoinedStr)) or node.lineno != node.end_lineno \
                or node.end_col_offset is None:
            continue
        a, b = char(node.lineno, node.col_offset), char(node.end_lineno, node.end_col_offset)
        if 3 <= b - a <= 60:
            out.append((a, b))
    return out


def sample_cases(tokenizer, n: int, seed: int = 0, kinds=KINDS) -> list[Case]:
    """``n`` cases of each of ``kinds`` from held-out files, deterministic for a seed (every
    kind is drawn in turn from one generator, so a kind's cases do not depend on ``kinds``)."""
    rng = random.Random(seed)
    files = [f for f in corpus.iter_files("heldout") if len(f.text) > 2000 and f.name.endswith(".py")]
    cases = []
    for kind in KINDS:
        got = 0
        while got < n:
            f = rng.choice(files)
            text = f.text
            if kind == "token":
                pos = rng.randrange(200, len(text) - 200)
                enc = tokenizer(text[pos - 200 : pos + 200], return_offsets_mapping=True, add_special_tokens=False)
                offsets = [o for o in enc["offset_mapping"][5:-5] if text[pos - 200 + o[0] : pos - 200 + o[1]].strip()]
                if not offsets:
                    continue
                a, b = rng.choice(offsets)
                start, end = pos - 200 + a, pos - 200 + b
            elif kind == "identifier":
                matches = list(IDENT.finditer(text, 200))
                if not matches:
                    continue
                m = rng.choice(matches)
                start, end = m.span()
            elif kind == "line":
                lines = [m for m in re.finditer(r"(?m)^[ \t]*(\S[^\n]{5,80})$", text)]
                if not lines:
                    continue
                m = rng.choice(lines)
                start, end = m.span(1)
            else:
                spans = _expressions(text)
                if not spans:
                    continue
                start, end = rng.choice(spans)
            window, s, e = _window(text, start, end)
            base = start - s
            if kind in kinds:
                cases.append(Case(kind, f.name, window, s, e, text, base))
            got += 1
    return cases


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


class Baselines:
    def __init__(self, tokenizer, frequent: int):
        self.tokenizer = tokenizer
        self.frequent = frequent

    @classmethod
    def from_training_data(cls, tokenizer, files: int = 300) -> Baselines:
        counts: Counter[int] = Counter()  # token ids
        for i, f in enumerate(corpus.iter_files("train")):
            if i >= files:
                break
            counts.update(_ids(tokenizer, f.text))
        return cls(tokenizer, counts.most_common(1)[0][0])

    def predict(self, case: Case, n: int) -> dict[str, str]:
        left = _ids(self.tokenizer, case.text[: case.start])
        copy = []
        context = list(left)
        for _ in range(n):
            nxt = self.frequent
            if context:
                neighbour = context[-1]
                for j in range(len(context) - 2, -1, -1):
                    if context[j] == neighbour:
                        nxt = context[j + 1]
                        break
            copy.append(nxt)
            context.append(nxt)
        decode = self.tokenizer.decode
        return {"frequency": decode([self.frequent] * n), "copy": decode(copy)}


def infill_scores(lm, cases: list[Case], params, baselines: Baselines, progress=None, healing=(True,)) -> dict:
    """Exact-match rate per kind for the model (``model``, or with healing off ``model, not
    healed``, for each setting of token healing in ``healing``) and both baselines."""
    from dgterm.engine import tasks

    models = ["model" if h else "model, not healed" for h in healing]
    hits: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    totals: Counter[str] = Counter()
    for case in cases:
        n = len(_ids(lm.tokenizer, case.answer))
        if not 0 < n <= lm.canvas_length // 2:
            continue
        totals[case.kind] += 1
        span = tasks.SpanRequest(case.start, case.end, n)
        for heal, who in zip(healing, models):
            got = tasks.infill(lm, case.text, [span], params, heal_edges=heal).collect().best.spans[0]
            hits[case.kind][who] += got == case.answer
        for name, guess in baselines.predict(case, n).items():
            hits[case.kind][name] += guess == case.answer
        if progress:
            progress()
    return {k: {who: hits[k][who] / max(totals[k], 1) for who in (*models, "frequency", "copy")} | {"n": totals[k]}
            for k in KINDS}


def _leading_space(draft: str, answer: str) -> bool:
    """The draft starts with whitespace the original does not start with."""
    return draft[:1] in (" ", "\t") and answer[:1] not in (" ", "\t")


RANKINGS = {  # how the shown candidate is chosen
    "entropy": lambda c: c.entropy,  # the engine before scores meant something
    "likelihood": lambda c: (-c.score, c.entropy),  # the model's own log-likelihood, validity ignored
    "valid first": None,  # the engine's ranking: valid, then likelihood, then entropy
}


def candidate_scores(lm, cases: list[Case], params, baselines: Baselines, candidates: int = 4,
                     healing=(True,), progress=None) -> dict:
    """Per kind of ``CANDIDATE_KINDS`` and per setting of token healing in ``healing``, over
    ``candidates`` candidates per case: exact match and compile-in-the-file rate of the
    candidate shown first under each of ``RANKINGS``, and of any candidate; the share of
    candidates that start with whitespace the original lacks; the copy baseline's exact
    match and compile rate (it does not depend on healing)."""
    from dgterm.editor import structure
    from dgterm.engine import tasks

    counts: dict[tuple[str, bool], Counter[str]] = {(k, h): Counter() for k in CANDIDATE_KINDS for h in healing}
    for case in cases:
        if case.kind not in CANDIDATE_KINDS:
            continue
        n = len(_ids(lm.tokenizer, case.answer))
        tail = case.source[case.base + len(case.text):]

        def check(window_text, case=case, tail=tail):
            return structure.check("python", case.source[: case.base] + window_text + tail)

        if not 0 < n <= lm.canvas_length // 2 or not check(case.text).valid:
            continue
        span = tasks.SpanRequest(case.start, case.end, n)
        copy = baselines.predict(case, n)["copy"]
        for heal in healing:
            c = counts[case.kind, heal]
            c["n"] += 1
            got = tasks.infill(lm, case.text, [span], params, candidates=candidates, heal_edges=heal,
                               check=check).collect().candidates
            for name, key in RANKINGS.items():
                shown = sorted(got, key=key)[0] if key else got[0]
                c[f"exact {name}"] += shown.spans[0] == case.answer
                c[f"compiles {name}"] += bool(shown.valid)
            c["exact any"] += any(g.spans[0] == case.answer for g in got)
            c["compiles any"] += any(g.valid for g in got)
            c["leading space"] += sum(_leading_space(g.spans[0], case.answer) for g in got)
            c["drafts"] += len(got)
            c["copy exact"] += copy == case.answer
            c["copy compiles"] += check(case.text[: case.start] + copy + case.text[case.end :]).valid
        if progress:
            progress()
    out: dict[str, dict[str, dict]] = {}
    for (kind, heal), c in counts.items():
        rates = {k: v / max(c["n"], 1) for k, v in c.items() if k not in ("n", "drafts", "leading space")}
        out.setdefault(kind, {})["healed" if heal else "not healed"] = rates | {
            "leading space": c["leading space"] / max(c["drafts"], 1), "n": c["n"], "candidates": candidates}
    return out


def denoising_loss(lm, levels=(0.1, 0.3, 0.5, 0.7, 0.9), windows: int = 32, seed: int = 0,
                   self_conditioning: int | None = None) -> dict[float, float]:
    """Cross-entropy on the corrupted canvas positions of held-out windows, by noise level.
    ``self_conditioning``: a second pass self-conditioned on the first's logits, as half the
    training batches are (0: exact; K: on their top K only); None: one pass."""
    import torch
    import torch.nn.functional as F

    from dgterm.engine.local.self_conditioning import top_k_logits

    g = torch.Generator().manual_seed(seed)
    tok = lm.tokenizer
    C = lm.canvas_length
    ids: list[int] = []
    for f in corpus.iter_files("heldout"):
        ids += _ids(tok, f.text) + lm.eos_ids[:1]
    stream = torch.tensor(ids)
    P = 64
    starts = torch.randint(0, len(stream) - P - C, (windows,), generator=g)
    batch = torch.stack([stream[s : s + P + C] for s in starts.tolist()]).to(lm.device)
    prefix, clean = batch[:, :P], batch[:, P:]
    out = {}
    with torch.no_grad():
        for t in levels:
            mask = (torch.rand(clean.shape, generator=g) < t).to(lm.device)
            noise = torch.randint(0, lm.vocab_size, clean.shape, generator=g).to(lm.device)
            noisy = torch.where(mask, noise, clean)
            inputs = dict(input_ids=prefix, decoder_input_ids=noisy)
            logits = lm.model(**inputs).logits
            if self_conditioning == 0:
                logits = lm.model(**inputs, self_conditioning_logits=logits).logits
            elif self_conditioning is not None:
                logits = top_k_logits(lm.model, self_conditioning, logits, **inputs)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), clean.reshape(-1), reduction="none")
            out[t] = float((ce.view_as(clean) * mask).sum() / mask.sum().clamp(min=1))
    return out


SWEEP = [
    dict(steps=16, t_max=0.8, t_min=0.4, entropy_bound=0.1),
    dict(steps=24, t_max=0.8, t_min=0.4, entropy_bound=0.1),
    dict(steps=48, t_max=0.8, t_min=0.4, entropy_bound=0.1),
    dict(steps=24, t_max=0.5, t_min=0.1, entropy_bound=0.1),
    dict(steps=24, t_max=0.3, t_min=0.05, entropy_bound=0.1),
    dict(steps=24, t_max=0.5, t_min=0.1, entropy_bound=0.3),
]


def sweep(lm, cases: list[Case], baselines: Baselines, grid=SWEEP) -> list[dict]:
    """Infill exact match and time for each sampler setting of ``grid`` (tunes generation_config)."""
    import time

    rows = []
    for setting in grid:
        t = time.perf_counter()
        scores = infill_scores(lm, cases, lm.defaults.replace(seed=0, **setting), baselines)
        rows.append({**setting, "seconds": round(time.perf_counter() - t, 1),
                     **{k: round(v["model"], 3) for k, v in scores.items()}})
    return rows


def _spread(values: list[float]) -> float:
    return max(values) - min(values)


def ranking(lm, cases: list[Case], params, candidates: int = 4, seeds: int = 10, progress=None) -> dict:
    """Do scores rank, before (one noise draw per candidate, each candidate its own noise,
    seeded by the run: the scorer before issue 28) and after (the engine's: ``DRAWS`` draws
    shared by every candidate, from a fixed scoring seed)? Over the ``expression`` cases:

    - ``spread``: max - min of the best candidate's score over ``seeds`` seeds (nats, mean over
      cases); after, the score does not depend on the run's seed, so ``spread after, scoring
      seed varied`` gives the estimator's own spread over ``seeds`` scoring seeds;
    - ``concordance``: of the pairs (a candidate that compiles in its file, one that does not)
      of one case, the share where the one that compiles scores higher (ties count half);
    - ``top compiles``: the share of cases whose likeliest candidate compiles."""
    from dgterm.editor import structure
    from dgterm.engine import tasks
    from dgterm.engine.local.scoring import loglik

    out: defaultdict[str, float] = defaultdict(float)
    for case in cases:
        n = len(_ids(lm.tokenizer, case.answer))
        if case.kind != "expression" or not 0 < n <= lm.canvas_length // 2:
            continue
        task = tasks.infill(lm, case.text, [tasks.SpanRequest(case.start, case.end, n)], params, candidates=candidates)
        result = task.collect()
        got, canvases, windows = result.candidates, result.run.canvases, list(task.plans[0].windows())
        best = [c[got[0].row : got[0].row + 1] for c in canvases]
        before = [loglik(lm, windows, best, draws=1, seed=s)[0] for s in range(seeds)]
        out["spread before"] += _spread(before)
        varied = [loglik(lm, windows, best, seed=s)[0] for s in range(seeds)]
        out["spread after, scoring seed varied"] += _spread(varied)
        old = {c.row: loglik(lm, windows, [w[c.row : c.row + 1] for w in canvases], draws=1,
                             seed=(params.seed or 0) * 7919 + c.row)[0] for c in got}
        compiles = {c.row: structure.check("python", case.in_file(c.spans[0])).valid for c in got}
        for name, score in (("before", old), ("after", {c.row: c.score for c in got})):
            pairs = [(score[a], score[b]) for a in compiles if compiles[a] for b in compiles if not compiles[b]]
            out[f"pairs {name}"] += len(pairs)
            out[f"concordant {name}"] += sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in pairs)
            out[f"top compiles {name}"] += compiles[max(score, key=score.__getitem__)]
        out["n"] += 1
        if progress:
            progress()
    cases_n = max(out["n"], 1)
    report = {"n": int(out["n"]), "candidates": candidates, "seeds": seeds,
              "spread before": out["spread before"] / cases_n,
              "spread after": 0.0,  # the same noise whatever the run's seed
              "spread after, scoring seed varied": out["spread after, scoring seed varied"] / cases_n}
    for name in ("before", "after"):
        report[f"concordance {name}"] = out[f"concordant {name}"] / max(out[f"pairs {name}"], 1)
        report[f"top compiles {name}"] = out[f"top compiles {name}"] / cases_n
    report["pairs"] = int(out["pairs after"])
    return report
