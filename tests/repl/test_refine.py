"""/refine [P]: the last answer's doubted tokens drawn again, the rest and the prompt kept."""

from __future__ import annotations

FAST = ("--steps", "2", "--seed", "5")


def remember_answers(repl):
    """Keep the answer each /refine starts from."""
    before, real = [], repl.refine

    def refine(below):
        before.append(repl.last.answer)
        real(below)

    repl.refine, repl.before = refine, before


def redrawn_only_in_runs(task, text):
    """``text`` with only the refine's runs replaced by the best candidate's new text."""
    plan, best = task.plans[0], task.result.best
    pieces, cursor = [], 0
    for span, new in zip(plan.spans, best.spans):
        pieces += [text[cursor : span.start], new]
        cursor = span.end
    return "".join(pieces) + text[cursor:]


def test_refine_the_last_plain_answer_twice(run_repl, tiny):
    r = run_repl(["def mean(values):", "/refine 0.9", "/refine"], *FAST, "--mode", "plain", lm=tiny,
                 setup=remember_answers)
    assert r.rc == 0, r.err
    last = r.repl.last
    assert last.refined and last.context == "def mean(values):" and len(r.repl.before) == 2
    second = r.repl.before[1]  # the second refine starts from the first one's answer
    assert last.task.result.best.text == redrawn_only_in_runs(last.task, last.context + second)
    assert r.out.rstrip("\n").endswith(last.answer.rstrip("\n"))


def test_refine_a_chat_answer_updates_the_conversation(run_repl, bundled):
    r = run_repl(["What does zip do?", "/refine 0.5"], *FAST, lm=bundled, setup=remember_answers)
    assert r.rc == 0, r.err
    last = r.repl.last
    assert last.refined and last.context.startswith("<|turn>user\nWhat does zip do?")
    assert last.task.result.best.text == redrawn_only_in_runs(last.task, last.context + r.repl.before[0])
    assert r.repl.messages[-1] == {"role": "assistant", "content": last.answer}


def test_refine_says_what_is_wrong_in_one_sentence(run_repl, tiny):
    r = run_repl(["/refine", "x = 1", "/refine 2", "/refine most", "/refine 0"], *FAST, "--mode", "plain", lm=tiny)
    lines = [line for line in r.err.splitlines() if line.strip() and "steps · " not in line]
    assert lines[0] == "There is no answer to refine; send a prompt first."
    assert "The refine threshold must be a probability between 0 and 1, not 2.0." in lines
    assert "'most' is not a number; use /refine [P]." in lines
    assert "No token of the span is under the threshold 0; raise it to refine more." in lines
