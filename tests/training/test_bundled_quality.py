"""The bundled model is a real model: on held-out files it beats the frequency baseline clearly."""

from __future__ import annotations

from dgterm.bench import quality


def test_held_out_split_is_by_file_and_stable():
    names = [f.name for f in quality.corpus.iter_files("heldout")]
    assert names and len(names) == len(set(names))
    train = {f.name for f in quality.corpus.iter_files("train")}
    assert not train & set(names)
    assert all(quality.corpus.is_held_out(n) for n in names)


def test_bundled_beats_the_frequency_baseline_on_held_out_infill(bundled):
    cases = quality.sample_cases(bundled.tokenizer, 12, seed=1, kinds=("token", "identifier"))
    baselines = quality.Baselines.from_training_data(bundled.tokenizer, files=40)
    scores = quality.infill_scores(bundled, cases, bundled.defaults.replace(seed=0), baselines)
    model = sum(scores[k]["model"] * scores[k]["n"] for k in ("token", "identifier"))
    frequency = sum(scores[k]["frequency"] * scores[k]["n"] for k in ("token", "identifier"))
    assert model >= frequency + 4, scores


def test_denoising_loss_grows_with_noise(bundled):
    loss = quality.denoising_loss(bundled, levels=(0.1, 0.9), windows=4)
    assert loss[0.1] < loss[0.9]


def test_expression_cases_are_one_line_expressions_of_held_out_files(bundled):
    import ast

    cases = quality.sample_cases(bundled.tokenizer, 8, seed=3, kinds=("expression",))
    assert len(cases) == 8 and all(c.kind == "expression" for c in cases)
    for c in cases:
        assert quality.corpus.is_held_out(c.file)
        assert c.in_file(c.answer) == c.source and "\n" not in c.answer
        ast.parse(c.answer, mode="eval")


def test_candidate_scores_say_what_a_user_would_see(bundled):
    cases = quality.sample_cases(bundled.tokenizer, 2, seed=0, kinds=("line", "expression"))
    baselines = quality.Baselines.from_training_data(bundled.tokenizer, files=40)
    report = quality.candidate_scores(bundled, cases, bundled.defaults.replace(seed=0, steps=4), baselines,
                                      candidates=2, healing=(False, True))
    for kind in ("line", "expression"):
        assert report[kind]["healed"]["n"] == report[kind]["not healed"]["n"] >= 1
        for r in report[kind].values():
            assert r["candidates"] == 2 and 0 <= r["leading space"] <= 1
            for ranking in quality.RANKINGS:
                assert r[f"compiles {ranking}"] <= r["compiles any"] <= 1
                assert r[f"exact {ranking}"] <= r["exact any"]
            assert r["compiles valid first"] == r["compiles any"]  # valid ones are shown first
